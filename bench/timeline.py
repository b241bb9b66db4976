"""Timelines, continuation, streaming and exact durations (issue 14); prints one JSON object.

    .venv/bin/python bench/timeline.py [--model default] [--timelines 60] [--requests 500] [--threads 1]

Measured with the pipeline's public API on prompts from the paraphrase set
(src/motionmillion/assets/eval/paraphrases.jsonl, 45 prompts over 22 contents):

- seams: random two- and three-segment timelines (2-5 s per segment); per timeline, the largest per-frame
  joint displacement (max over joints of |j[t+1] - j[t]|) within 5 frames of a seam, divided by the 99th
  percentile of the displacements inside the segments (target <= 1.5);
- segment retrieval: the evaluator ranks the 45 prompts for each segment's frames and for a motion
  generated alone with the same prompt, duration and seed; top-1/top-3 "right content" (the best prompts
  name the segment's content) for both (target: segments within 5 points of alone);
- streaming: time from the call to the first chunk of a 10 s motion, the whole stream's time, real-time
  factor (motion seconds per wall second), and the largest joint difference between the concatenated
  chunks and the non-streamed motion of the same seed (target <= 1 mm);
- a 60 s timeline of 12 five-second segments (target <= 5 s);
- durations: random requests of 1-10 s, frames within one token (4 frames) of seconds x 30 (target >= 99%);
  with a length-conditioned generator also how often it ends there by itself (END not forced).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from motionmillion.motion.kinematics import joint_steps
from motionmillion.motion.representation import HEADING, ROOT_VEL, VELOCITIES
from motionmillion.motion.rotations import matrix_to_6d
from motionmillion.pipeline import CONTEXT_SECONDS, MotionPipeline

PARAPHRASES = Path(__file__).resolve().parents[1] / "src/motionmillion/assets/eval/paraphrases.jsonl"


def seam_ratio(motion) -> float:
    steps = joint_steps(motion.joints)
    near = np.zeros(len(steps), dtype=bool)
    for segment in motion.meta["segments"][1:]:
        seam = segment["start_frame"]
        near[max(0, seam - 5) : seam + 5] = True
    return float(steps[near].max() / np.percentile(steps[~near], 99))


def canonical(features: np.ndarray) -> np.ndarray:
    """A clip cut from a longer motion, its first frame made canonical as an imported clip's."""
    clip = np.array(features, dtype=np.float64)
    clip[0, ROOT_VEL], clip[0, VELOCITIES] = 0.0, 0.0
    clip[0, HEADING] = matrix_to_6d(np.eye(3))
    return clip


def bench_seams_and_retrieval(pipe, prompts, count: int, rng, context_seconds: float) -> dict:
    from motionmillion.evaluation.evaluator import Evaluator

    evaluator = Evaluator.from_pretrained(pipe.folder / "evaluator")
    texts = [p["prompt"] for p in prompts]
    contents = np.array([p["content"] for p in prompts])
    text_embeddings = evaluator.encode_text(texts)
    ratios, seg_clips, alone_clips, seg_contents, seconds_spent = [], [], [], [], []
    for t in range(count):
        picks = rng.choice(len(prompts), size=2 + t % 2, replace=False)
        durations = [float(rng.uniform(2.0, 5.0)) for _ in picks]
        segments = [(texts[i], d) for i, d in zip(picks, durations)]
        start = time.perf_counter()
        motion = pipe.compose(segments, seed=1000 + t, context_seconds=context_seconds)
        seconds_spent.append(time.perf_counter() - start)
        ratios.append(seam_ratio(motion))
        for i, segment in zip(picks, motion.meta["segments"]):
            seg_clips.append(canonical(motion.features[segment["start_frame"] : segment["end_frame"]]))
            alone = pipe(texts[i], seconds=segment["seconds"], seed=segment["seed"])[0]
            alone_clips.append(canonical(alone.features))
            seg_contents.append(contents[i])
    seg_contents = np.array(seg_contents)

    def right_content(clips, k: int) -> float:
        similarity = evaluator.encode_motion(clips) @ text_embeddings.T
        top = np.argsort(-similarity, axis=1)[:, :k]
        return float(np.mean([content in contents[row] for content, row in zip(seg_contents, top)]))

    ratios = np.array(ratios)
    return {
        "seams": {
            "context_seconds": context_seconds,
            "timelines": count,
            "seams": int(sum(1 + t % 2 for t in range(count))),
            "ratio_to_p99_inside_median": round(float(np.median(ratios)), 3),
            "ratio_to_p99_inside_p90": round(float(np.percentile(ratios, 90)), 3),
            "ratio_to_p99_inside_max": round(float(ratios.max()), 3),
            "timelines_within_1_5x": round(float(np.mean(ratios <= 1.5)), 3),
            "compose_seconds_median": round(statistics.median(seconds_spent), 3),
        },
        "segment_retrieval": {
            "segments": len(seg_clips),
            "candidates": f"{len(texts)} paraphrase prompts, {len(set(contents))} contents",
            "segment_top1_right_content": round(right_content(seg_clips, 1), 3),
            "alone_top1_right_content": round(right_content(alone_clips, 1), 3),
            "segment_top3_right_content": round(right_content(seg_clips, 3), 3),
            "alone_top3_right_content": round(right_content(alone_clips, 3), 3),
        },
    }


def bench_streaming(pipe, prompts, repeats: int) -> dict:
    texts = [p["prompt"] for p in prompts]
    list(pipe.stream(texts[0], seconds=10.0, seed=0))  # warm-up (and the decoder-reach probe)
    first, whole_stream, whole_batch, gaps = [], [], [], []
    for r in range(repeats):
        prompt = texts[r % len(texts)]
        start = time.perf_counter()
        chunks = []
        for chunk in pipe.stream(prompt, seconds=10.0, seed=r):
            if not chunks:
                first.append(time.perf_counter() - start)
            chunks.append(chunk)
        whole_stream.append(time.perf_counter() - start)
        start = time.perf_counter()
        motion = pipe(prompt, seconds=10.0, seed=r)[0]
        whole_batch.append(time.perf_counter() - start)
        joints = np.concatenate([c.joints for c in chunks])
        if joints.shape != motion.joints.shape:
            gaps.append(float("inf"))
        else:
            gaps.append(float(np.linalg.norm(joints - motion.joints, axis=-1).max()))
    seconds = 10.0
    timeline = [(texts[3], 3.0), (texts[12], 2.0), (texts[20], 3.0)]
    chunks = list(pipe.stream(timeline, seed=5))
    composed = pipe.compose(timeline, seed=5)
    timeline_gap = float(np.linalg.norm(np.concatenate([c.joints for c in chunks]) - composed.joints, axis=-1).max())
    return {
        "motion_seconds": seconds,
        "decoder_reach_tokens": pipe.decoder_reach,
        "first_chunk_seconds_median": round(statistics.median(first), 4),
        "first_chunk_seconds_max": round(max(first), 4),
        "stream_seconds_median": round(statistics.median(whole_stream), 3),
        "batch_seconds_median": round(statistics.median(whole_batch), 3),
        "real_time_factor_stream": round(seconds / statistics.median(whole_stream), 1),
        "real_time_factor_batch": round(seconds / statistics.median(whole_batch), 1),
        "stream_vs_batch_max_joint_mm": round(1000 * max(gaps), 4),
        "stream_vs_batch_median_joint_mm": round(1000 * statistics.median(gaps), 4),
        "streams": repeats,
        "timeline_stream_vs_compose_max_joint_mm": round(1000 * timeline_gap, 4),
    }


def bench_long_timeline(pipe, prompts, repeats: int) -> dict:
    texts = [p["prompt"] for p in prompts]
    segments = [(texts[(7 * i) % len(texts)], 5.0) for i in range(12)]
    pipe.compose(segments[:2], seed=0)  # warm-up
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        motion = pipe.compose(segments, seed=r)
        times.append(time.perf_counter() - start)
    return {"segments": 12, "requested_seconds": 60.0, "frames": motion.num_frames,
            "seconds_median": round(statistics.median(times), 3), "repeats": repeats,
            "seam_ratio": round(seam_ratio(motion), 3)}  # fmt: skip


def bench_durations(pipe, prompts, count: int, rng) -> dict:
    from motionmillion.generator.engine import sample_tokens
    from motionmillion.generator.sampling import SamplingOptions
    from motionmillion.pipeline.requests import token_budget

    texts = [p["prompt"] for p in prompts]
    chosen = [texts[i] for i in rng.integers(0, len(texts), size=count)]
    seconds = [round(float(s), 2) for s in rng.uniform(1.0, 10.0, size=count)]
    start = time.perf_counter()
    motions = pipe(chosen, seconds=seconds, seed=0)
    elapsed = time.perf_counter() - start
    frames = np.array([m.num_frames for m in motions])
    error = frames - np.array(seconds) * pipe.fps
    fpt = pipe.frames_per_token
    result = {
        "requests": count,
        "length_condition": bool(pipe.generator.config.length_condition),
        "within_one_token": round(float(np.mean(np.abs(error) <= fpt)), 4),
        "frame_error_mean": round(float(error.mean()), 2),
        "frame_error_min_max": [round(float(error.min()), 2), round(float(error.max()), 2)],
        "seconds_for_all": round(elapsed, 2),
    }
    for target in (4.0, 10.0):
        frames_at = [pipe(texts[i % len(texts)], seconds=target, seed=i)[0].num_frames for i in range(20)]
        result[f"frames_for_{target:g}s_min_max"] = [min(frames_at), max(frames_at)]
    if pipe.generator.config.length_condition:
        # The same requests with END left to the model (window 1..max tokens): does it end where asked?
        natural = []
        for first in range(0, count, 32):
            batch_texts, batch_seconds = chosen[first : first + 32], seconds[first : first + 32]
            encoded = pipe.text_encoder.encode(batch_texts)
            targets = [token_budget(pipe.limits, s)[2] for s in batch_seconds]
            codes = sample_tokens(pipe.generator, encoded.features, encoded.mask, list(range(first, first + len(targets))),
                                  [1] * len(targets), [pipe.max_tokens] * len(targets), SamplingOptions(top_p=0.95),
                                  target_tokens=targets)  # fmt: skip
            natural += [len(c) - t for c, t in zip(codes, targets)]
        natural = np.array(natural)
        result["unforced_end_within_one_token"] = round(float(np.mean(np.abs(natural) <= 1)), 4)
        result["unforced_end_exact"] = round(float(np.mean(natural == 0)), 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="pipeline folder, or 'default' for the bundled model")
    parser.add_argument("--timelines", type=int, default=60)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--context-seconds", type=float, default=CONTEXT_SECONDS,
                        help="motion each timeline segment is conditioned on (the pipeline's default)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    pipe = MotionPipeline.from_pretrained(None if args.model == "default" else args.model, device="cpu")
    prompts = [json.loads(line) for line in PARAPHRASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    started = time.perf_counter()
    with torch.inference_mode():
        result = {"model": str(pipe.folder), "threads": args.threads,
                  "length_condition": bool(pipe.generator.config.length_condition)}  # fmt: skip
        result["streaming"] = bench_streaming(pipe, prompts, args.streams)
        result["timeline_60s_12_segments"] = bench_long_timeline(pipe, prompts, 3)
        result["durations"] = bench_durations(pipe, prompts, args.requests, rng)
        result.update(bench_seams_and_retrieval(pipe, prompts, args.timelines, rng, args.context_seconds))
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if args.json is not None:
        from motionmillion.utils.io import atomic_write_json

        atomic_write_json(args.json, result)
    print(text)


if __name__ == "__main__":
    main()

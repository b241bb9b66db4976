"""Prompt understanding (motionmillion.text.rewrite): speed and coverage figures; prints one JSON object.

    OMP_NUM_THREADS=1 .venv/bin/python bench/rewrite.py [--model default|PIPELINE] [--threads 1]

* latency: milliseconds that ``understand(pipe, [prompt], rewrite=True)`` (retrieval back-end: embed
  the prompt with the pipeline's text encoder, coverage, vote, rewrite) adds per prompt, one prompt per
  call as ``motionmillion generate`` does, over the 45 paraphrases + 126 MotionMillion-Eval prompts.
* coverage: share of prompts flagged (coverage below the bank's threshold) on the MotionMillion-Eval
  prompts labelled as about movements absent from the data / known
  (src/motionmillion/assets/eval/eval_prompt_coverage.jsonl) and on issue 6's paraphrase set; the
  threshold that the same sets would pick; a 2-fold check (threshold picked on one half of each
  set, rates measured on the other half); and the held-out check set (coverage_check.jsonl, written
  after the threshold was chosen).
* rewrite_labels: how often the retrieval rewrite lands on the paraphrase's labelled movement (text
  only; the motions are judged by ``motionmillion eval prompts``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from motionmillion.data.labels import same_movement
from motionmillion.pipeline import MotionPipeline
from motionmillion.text.rewrite import coverage_of, embed, pipeline_bank, understand

EVAL = Path(__file__).resolve().parents[1] / "src/motionmillion/assets/eval"


def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (EVAL / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def pick_threshold(absent: np.ndarray, known_para: np.ndarray, max_false: float = 0.10) -> float:
    """Highest share of absent prompts flagged with at most ``max_false`` of the paraphrases flagged."""
    candidates = np.unique(np.concatenate([absent, known_para])) + 1e-6
    best = max((t for t in candidates if (known_para < t).mean() <= max_false), key=lambda t: ((absent < t).mean(), -t))
    return float(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="pipeline folder, or 'default' for the bundled model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = MotionPipeline.from_pretrained(None if args.model == "default" else args.model, device="cpu")
    bank = pipeline_bank(pipe)
    if bank is None:
        raise SystemExit(f"{pipe.folder}: no caption bank")
    paraphrases, eval_rows = read_jsonl("paraphrases.jsonl"), read_jsonl("eval_prompt_coverage.jsonl")
    check_rows = read_jsonl("coverage_check.jsonl")
    prompts = [p["prompt"] for p in paraphrases] + [r["prompt"] for r in eval_rows]

    understand(pipe, prompts[:2], rewrite=True)  # warm-up (loads the bank)
    per_prompt = []
    for prompt in prompts:
        start = time.perf_counter()
        understand(pipe, [prompt], rewrite=True)
        per_prompt.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    understood = understand(pipe, [p["prompt"] for p in paraphrases], rewrite=True)
    batch_ms = (time.perf_counter() - start) * 1000 / len(paraphrases)

    def coverages(texts: list[str]) -> np.ndarray:
        return np.array([coverage_of(bank, e)[0] for e in embed(pipe.text_encoder, texts)])

    para_cov = coverages([p["prompt"] for p in paraphrases])
    eval_cov = coverages([r["prompt"] for r in eval_rows])
    absent = np.array([r["absent"] for r in eval_rows])
    check_cov = coverages([r["prompt"] for r in check_rows])
    check_known = np.array([r["known"] for r in check_rows])
    threshold = bank.coverage_threshold
    best = pick_threshold(eval_cov[absent], para_cov)
    # 2-fold: pick on even indices, measure on odd ones and the other way round
    folds = []
    for a, b in ((0, 1), (1, 0)):
        t = pick_threshold(eval_cov[absent][a::2], para_cov[a::2])
        folds.append({"threshold": round(t, 3), "absent_flagged": float((eval_cov[absent][b::2] < t).mean()),
                      "paraphrases_flagged": float((para_cov[b::2] < t).mean())})  # fmt: skip

    hits = []
    for item, u in zip(paraphrases, understood):
        got = u.understood_as.rsplit("(", 1)[-1].split("/")[0]  # the bank's label: a content or a movement name
        hits.append(same_movement(item["content"], got))
    print(json.dumps({
        "model": str(pipe.folder), "threads": args.threads, "bank": {"captions": len(bank), "unknown_movement_captions": len(bank.other_captions)},
        "latency_ms_per_prompt": {"median": round(statistics.median(per_prompt), 2), "p95": round(float(np.percentile(per_prompt, 95)), 2),
                                  "max": round(max(per_prompt), 2), "batched_45_paraphrases": round(batch_ms, 2), "prompts": len(per_prompt)},
        "coverage": {
            "threshold": threshold,
            "eval_absent_flagged": float((eval_cov[absent] < threshold).mean()), "eval_absent_n": int(absent.sum()),
            "eval_known_flagged": float((eval_cov[~absent] < threshold).mean()), "eval_known_n": int((~absent).sum()),
            "paraphrases_flagged": float((para_cov < threshold).mean()), "paraphrases_n": len(para_cov),
            "threshold_these_sets_pick": round(best, 3), "two_fold": folds,
            "held_out_unknown_flagged": float((check_cov[~check_known] < threshold).mean()),
            "held_out_known_flagged": float((check_cov[check_known] < threshold).mean()),
            "held_out_flagged": sorted(r["prompt"] for r, c in zip(check_rows, check_cov) if c < threshold),
            "held_out_missed_unknown": sorted(r["prompt"] for r, c in zip(check_rows, check_cov) if c >= threshold and not r["known"]),
        },
        "rewrite_labels": {"paraphrase_movement_accuracy": float(np.mean(hits)), "n": len(hits)},
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

"""Tokenizer reconstruction metrics over whole clips (fact sheet 3.6, reported in millimetres).

Each clip is cropped to a multiple of frames_per_token, normalised, encoded to tokens, decoded,
de-normalised and turned into joints with the motion core's ``decode_joints`` (same path for the
ground truth). MPJPE is pelvis-aligned per frame and averaged per clip, then over clips as in the
reference; the frame-weighted mean is reported too.
"""

from __future__ import annotations

import numpy as np
import torch

from motionmillion.evaluation.metrics import mpjpe
from motionmillion.motion import FPS, decode_joints
from motionmillion.tokenizer.fsq import code_usage


def crop_length(num_frames: int, frames_per_token: int) -> int:
    return num_frames - num_frames % frames_per_token


def clip_errors(pred_joints: np.ndarray, gt_joints: np.ndarray) -> dict[str, float]:
    """Per-clip errors in mm: pelvis-aligned MPJPE, root trajectory error, joint acceleration error."""
    pred_local = pred_joints - pred_joints[:, :1]
    gt_local = gt_joints - gt_joints[:, :1]
    errors = {
        "mpjpe_mm": mpjpe(pred_joints, gt_joints) * 1000,
        "root_error_mm": float(np.linalg.norm(pred_joints[:, 0] - gt_joints[:, 0], axis=-1).mean() * 1000),
    }
    if len(gt_joints) >= 3:  # second differences of the pelvis-aligned joints, in mm/s^2
        acc_pred = pred_local[2:] - 2 * pred_local[1:-1] + pred_local[:-2]
        acc_gt = gt_local[2:] - 2 * gt_local[1:-1] + gt_local[:-2]
        errors["accel_error_mm_s2"] = float(np.linalg.norm(acc_pred - acc_gt, axis=-1).mean() * 1000 * FPS**2)
    return errors


@torch.no_grad()
def evaluate_clips(model, clips, max_clips: int | None = None, device: str | torch.device = "cpu") -> dict:
    """Metrics of ``model`` (a MotionTokenizer) on ``clips`` (a data.MotionClips); whole clips, batch 1."""
    was_training = model.training
    model.eval()
    fpt = model.frames_per_token
    count = len(clips) if max_clips is None else min(max_clips, len(clips))
    per_clip: list[dict[str, float]] = []
    frames: list[int] = []
    all_ids: list[torch.Tensor] = []
    too_short: list[str] = []
    for k in range(count):
        features = clips.clip(k)
        length = crop_length(len(features), fpt)
        if length < fpt:
            too_short.append(clips.names[k])
            continue
        features = features[:length]
        x = torch.from_numpy(clips.normalizer.normalize(features).astype(np.float32)).to(device)[None]
        recon, ids = model(x)
        recon = clips.normalizer.denormalize(recon[0].float().cpu().numpy().astype(np.float64))
        per_clip.append(clip_errors(decode_joints(recon), decode_joints(features.astype(np.float64))))
        frames.append(length)
        all_ids.append(ids.flatten().cpu())
    model.train(was_training)
    if not per_clip:
        raise ValueError("no clip long enough to evaluate")
    weights = np.array(frames, dtype=np.float64)
    result: dict = {"clips": len(per_clip), "frames": int(weights.sum())}
    for key in per_clip[0]:
        values = np.array([c[key] for c in per_clip if key in c])
        result[key] = float(values.mean())
    result["mpjpe_mm_frame_weighted"] = float(np.average([c["mpjpe_mm"] for c in per_clip], weights=weights))
    usage, perplexity = code_usage(torch.cat(all_ids), model.codebook_size)
    result.update(code_usage=usage, perplexity=perplexity, codebook_size=model.codebook_size,
                  frames_per_token=fpt, skipped_too_short=too_short)  # fmt: skip
    return result


def evaluate_tokenizer(model_dir: str, data_root: str, split: str = "test", kind: str = "tokenizer_96",
                       max_clips: int | None = None) -> dict:  # fmt: skip
    """Load a tokenizer folder (or training run) and evaluate it on a dataset split."""
    from motionmillion.tokenizer.data import MotionClips
    from motionmillion.tokenizer.model import MotionTokenizer, stored_normalization

    model = MotionTokenizer.from_pretrained(model_dir)
    clips = MotionClips(data_root, split, kind=kind, min_frames=model.frames_per_token)
    stored = stored_normalization(model_dir)
    if stored is not None:  # normalise as the tokenizer learnt, as the pipeline decodes its tokens
        clips.normalizer = stored
    result = evaluate_clips(model, clips, max_clips=max_clips)
    result.update(model=str(model_dir), data=str(data_root), split=f"{kind}/{split}",
                  normalization="the tokenizer's" if stored is not None else "the dataset's",
                  skipped=[f"{name}: {why}" for name, why in clips.skipped])  # fmt: skip
    return result

"""Encode every clip of a packed dataset to token ids for the generator (contract 5, see encoded.py).

Whole clips (mirrored copies are separate "M" clips already) are cropped to a multiple of
frames_per_token from the start and encoded one at a time (no padding, so ids do not depend on the
batch). Work is done in chunks written atomically to ENCODED/.parts/, so a killed job resumes where it
stopped; the final files are assembled at the end and the parts removed. Under ``accelerate launch``
the chunks are dealt out to the processes (chunk k to rank k % world, each on its own device) and rank 0
assembles them: the files are the same as one process writes. Clips with NaN/infinite
values or fewer frames than one token are skipped and listed in skipped.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from motionmillion.tokenizer.encoded import write_encoded
from motionmillion.tokenizer.model import stored_normalization
from motionmillion.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

CHUNK = 256  # clips per resumable part
SPLITS = ("train", "val", "test")


def _fingerprint(model_dir: Path, data_root: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update((model_dir / "config.json").read_bytes())
    digest.update((model_dir / "model.safetensors").read_bytes())
    digest.update(str(data_root.resolve()).encode())
    digest.update("\n".join(names).encode())
    return digest.hexdigest()


def encode_dataset(model_dir: str | Path, data_root: str | Path, out_dir: str | Path, progress: bool = True) -> Path:
    from accelerate import PartialState
    from tqdm.auto import tqdm

    from motionmillion.data.layout import DatasetLayoutError, MotionDataset
    from motionmillion.data.packed import open_motions
    from motionmillion.tokenizer.model import MotionTokenizer

    model_dir, data_root, out_dir = Path(model_dir), Path(data_root), Path(out_dir)
    # One process unless launched by accelerate; on CPUs accelerate joins processes (gloo) only with cpu=True.
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    device = state.device if state.device.type == "cuda" else torch.device("cpu")
    model = MotionTokenizer.from_pretrained(model_dir).to(device)
    dataset = MotionDataset(data_root)
    packed = open_motions(data_root)
    # The features are normalised as the tokenizer learnt them (its run's or bundle's mean/std), which is
    # not the dataset's own when a tokenizer encodes data it was not trained on.
    normalizer = stored_normalization(model_dir) or dataset.normalizer()
    names = list(packed.names)
    fpt = model.frames_per_token

    parts_dir = out_dir / ".parts"
    job_path = parts_dir / "job.json"
    fingerprint = _fingerprint(model_dir, data_root, names)
    if state.is_main_process:
        if job_path.is_file() and json.loads(job_path.read_text()).get("fingerprint") != fingerprint:
            log.warning("%s: tokenizer or dataset changed since the interrupted job; starting over", parts_dir)
            shutil.rmtree(parts_dir)
        parts_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(job_path, {"fingerprint": fingerprint, "clips": len(names), "chunk": CHUNK})
    state.wait_for_everyone()

    chunks = range(0, len(names), CHUNK)
    mine = [start for k, start in enumerate(chunks) if k % world == rank]
    bar = tqdm(total=sum(len(names[s : s + CHUNK]) for s in mine), disable=not progress or not state.is_main_process,
               desc="encode", dynamic_ncols=True)  # fmt: skip
    with torch.inference_mode():
        for chunk_start in mine:
            part = parts_dir / f"part_{chunk_start // CHUNK:06d}.npz"
            chunk_names = names[chunk_start : chunk_start + CHUNK]
            if part.is_file():
                bar.update(len(chunk_names))
                continue
            kept, codes, skipped = [], [], []
            for offset, name in enumerate(chunk_names):
                features = np.asarray(packed[chunk_start + offset], dtype=np.float32)
                length = len(features) - len(features) % fpt
                if length < fpt:
                    skipped.append(f"{name}: {len(features)} frames < {fpt} (one token)")
                elif not np.isfinite(features).all():
                    frame = int(np.nonzero(~np.isfinite(features).all(axis=1))[0][0])
                    skipped.append(f"{name}: NaN/infinite values (first at frame {frame})")
                else:
                    x = torch.from_numpy(normalizer.normalize(features[:length]))[None].to(device)
                    codes.append(model.encode(x)[0].cpu().numpy().astype(np.int32))
                    kept.append(name)
                bar.update(1)
            lengths = np.array([len(c) for c in codes], dtype=np.int64)
            flat = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int32)
            with atomic_path(part) as tmp, open(tmp, "wb") as f:
                np.savez(f, names=np.array(kept, dtype=str), codes=flat, lengths=lengths,
                         skipped=np.array(skipped, dtype=str))  # fmt: skip
    bar.close()
    state.wait_for_everyone()  # every part exists
    if not state.is_main_process:
        state.wait_for_everyone()  # until rank 0 has written the result
        return out_dir

    all_names, all_codes, all_lengths, all_skipped = [], [], [], []
    for k in range(len(chunks)):
        with np.load(parts_dir / f"part_{k:06d}.npz") as part:
            all_names += [str(n) for n in part["names"]]
            all_codes.append(part["codes"])
            all_lengths.append(part["lengths"])
            all_skipped += [str(s) for s in part["skipped"]]
    codes = np.concatenate(all_codes) if all_codes else np.zeros(0, dtype=np.int32)
    lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)
    encoded = set(all_names)
    splits = {}
    for split in SPLITS:
        try:
            splits[split] = [n for n in dataset.names(split, "t2m_60_300") if n in encoded]
        except DatasetLayoutError:
            log.warning("%s: no t2m_60_300/%s split; writing it empty", data_root, split)
            splits[split] = []
    write_encoded(
        out_dir, all_names, codes, lengths, texts={name: dataset.texts(name) for name in all_names}, splits=splits,
        strata=clip_strata(data_root, all_names), skipped=all_skipped,
        config={"codebook_size": model.codebook_size, "frames_per_token": fpt, "tokenizer": str(model_dir.resolve()),
                "dataset": str(data_root.resolve())},
    )  # fmt: skip
    shutil.rmtree(parts_dir)
    if all_skipped:
        log.warning("skipped %d clip(s): %s", len(all_skipped), "; ".join(all_skipped[:5]))
    state.wait_for_everyone()
    return out_dir


def clip_strata(data_root: Path, names: list[str]) -> dict[str, str]:
    """{name: stratum} from the dataset's import records (content/style for labelled sources), used by
    the generator's stratum-balanced sampling; empty for datasets without import records."""
    from motionmillion.data.records import load_records

    wanted = set(names)
    return {clip[key]: record["stratum"] for record in load_records(data_root) for clip in record["clips"]
            for key in ("name", "mirror") if clip[key] in wanted}  # fmt: skip

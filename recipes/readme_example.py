"""Rebuild docs/images/example.png: five frames of the README's main command's motion.

    .venv/bin/python recipes/readme_example.py

The motion is exactly what ``motionmillion generate "a person waves with the right hand" --seconds 4
--seed 0 --out out`` writes (same pipeline call, same seed); the frames are read back from its MP4.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from motionmillion import MotionPipeline

PROMPT, SECONDS, SEED = "a person waves with the right hand", 4.0, 0
OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "example.png"


def main() -> None:
    motion = MotionPipeline.from_pretrained(device="cpu")(PROMPT, seconds=SECONDS, seed=SEED)[0]
    with tempfile.TemporaryDirectory() as tmp:
        video = motion.render(Path(tmp) / "motion.mp4", size=400)
        frames = imageio.mimread(video, memtest=False)
    picks = np.linspace(0, len(frames) - 1, 5).round().astype(int)
    imageio.imwrite(OUT, np.concatenate([frames[i][40:, 30:-30] for i in picks], axis=1))
    print(f"{OUT}: frames {picks.tolist()} of {len(frames)} ({motion.meta['tokens']} tokens, seed {SEED})")


if __name__ == "__main__":
    main()

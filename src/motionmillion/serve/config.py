"""The server's knobs: batching and the limits that keep one client from starving the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServeConfig:
    # Dynamic batching: up to max_batch motions in one sampler call, waiting at most max_wait_ms for company.
    max_batch: int = 32
    max_wait_ms: float = 10.0
    # Batches generated at once (one per generation process of `motionmillion serve`; 1 = in this process).
    workers: int = 1
    # Limits on one request (each bad value is answered with a 422 that names it).
    max_prompt_chars: int = 500
    max_seconds: float | None = None  # None = the model's longest motion
    max_num_samples: int = 8
    max_segments: int = 16  # prompts in one timeline
    max_body_bytes: int = 16 * 1024  # larger bodies get a 413
    # Limits on the server as a whole.
    max_queue: int = 256  # requests waiting for the generator; more get a 429
    request_timeout_s: float = 60.0  # queueing + generation; longer gets a 503
    # Generated files: a folder bounded in size, oldest motions deleted first. None = a temporary folder.
    cache_dir: Path | None = None
    cache_max_bytes: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        positive = {"max_batch": self.max_batch, "workers": self.workers, "max_prompt_chars": self.max_prompt_chars,
                    "max_num_samples": self.max_num_samples, "max_segments": self.max_segments, "max_body_bytes": self.max_body_bytes,
                    "max_queue": self.max_queue, "request_timeout_s": self.request_timeout_s,
                    "cache_max_bytes": self.cache_max_bytes}  # fmt: skip
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.max_wait_ms < 0:
            raise ValueError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"--max-seconds must be positive, got {self.max_seconds}")
        if self.max_num_samples > self.max_batch:
            raise ValueError(f"--max-num-samples ({self.max_num_samples}) cannot exceed --max-batch ({self.max_batch})")
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)

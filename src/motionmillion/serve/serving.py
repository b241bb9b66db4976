"""The server object behind the routes: limits, the batch queue, the file store and every call into the pipeline.

:class:`Server` turns a checked :class:`~motionmillion.serve.protocol.GenerateBody` into a :class:`Job`
(the pipeline's checked requests), queues plans for batched generation (or runs timelines and streams on
the generation thread between batches) and publishes the motions: files in the store, JSON entries.
Generation itself is the pipeline's; the calls into it are the methods under "the pipeline" below, and
nowhere else in the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from fastapi import HTTPException

from motionmillion.motion import JOINT_NAMES, PARENTS, Motion
from motionmillion.motion.skeleton import TEMPLATE_REST_JOINTS
from motionmillion.pipeline import MIN_SECONDS, GenerationRequest
from motionmillion.pipeline import Plan as PipelinePlan
from motionmillion.serve.batcher import Batcher, QueueFullError
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.protocol import SEED_RANGE, GenerateBody, encode_entry
from motionmillion.serve.store import MotionStore

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Job:
    """A checked body and the pipeline's plan for it (requests for the batch queue, or a timeline)."""

    body: GenerateBody
    plan: PipelinePlan

    @property
    def requests(self) -> tuple[GenerationRequest, ...]:
        return self.plan.requests

    @property
    def timeline(self) -> bool:
        return self.plan.kind == "timeline"

    @property
    def prompt(self) -> str:
        return " / ".join(r.prompt for r in self.requests) if self.timeline else self.requests[0].prompt

    @property
    def text_warnings(self) -> list[str]:
        """What may make the text encoder misread each distinct prompt (emoji, non-English), for the client."""
        return list(dict.fromkeys(r.meta["text_warning"] for r in self.requests if "text_warning" in r.meta))


class Server:
    """Everything a request handler needs: the pipeline, the limits, the batch queue and the file store."""

    def __init__(self, pipe, config: ServeConfig, generate: Callable[[Sequence], list[Motion]] | None = None):
        """``generate``: what runs a batch of requests (e.g. a :class:`~motionmillion.serve.worker.GenerationPool`);
        default: ``pipe.run`` on the generation thread."""
        self.pipe = pipe
        self._generate_batch = generate
        self.config = config
        self.max_seconds = min(config.max_seconds or pipe.max_seconds, pipe.max_seconds)
        if config.workers > 1 and generate is None:
            raise ValueError("workers > 1 needs a thread-safe generate (e.g. serve.worker.GenerationPool)")
        self.batcher = Batcher(self._generate, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000,
                               max_queue=config.max_queue, workers=config.workers)  # fmt: skip
        self.store = MotionStore(config.cache_dir, config.cache_max_bytes)
        self.exclusive_jobs = 0  # timelines and streams waiting for or on the generation thread

    @property
    def fps(self) -> float:
        return float(self.pipe.fps)

    # ------------------------------------------------------------------ the pipeline
    def _plan(self, body: GenerateBody, seed: int, understand: bool) -> PipelinePlan:
        """The pipeline's checked plan for a body (PromptError, a ValueError, names a bad field). A rewrite
        (and, for a stream, coverage) is understood here, before queueing: the queue joins several jobs'
        requests in one batch, and a stream's motion is built from its chunks."""
        options = {**body.options, "fix_feet": body.fix_feet}
        if body.segments is not None:
            plan = self.pipe.plan(timeline=[segment.model_dump() for segment in body.segments], seed=seed, **options)
        else:
            plan = self.pipe.plan(body.prompt, body.seconds, body.num_samples, seed, rewrite=body.rewrite,
                                  batch_size=self.config.max_batch, **options)  # fmt: skip
        return self.pipe.understood(plan) if understand or body.rewrite else plan

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[Motion]:
        """Runs on the generation thread: one batched pipeline run for the requests of every queued job."""
        if self._generate_batch is not None:
            return self._generate_batch(requests)
        return list(self.pipe.run(PipelinePlan.batch(requests, self.config.max_batch)))

    def _compose(self, job: Job) -> Callable[[], list[Motion]]:
        return lambda: list(self.pipe.run(job.plan))

    def _stream(self, job: Job) -> Callable[[], Iterator]:
        """``pipe.stream`` for a job: its chunks (start_frame, joints, features) as they are made."""
        return lambda: self.pipe.stream(job.plan)

    # ------------------------------------------------------------------ checking
    def plan(self, body: GenerateBody, understand: bool = True) -> Job:
        """The server's own limits, then the pipeline's checks: every bad field is a 422 before queueing."""
        prompts = [body.prompt] if body.segments is None else [s.prompt for s in body.segments]
        for prompt in prompts:
            if len(prompt) > self.config.max_prompt_chars:
                raise HTTPException(422, f"prompt: {len(prompt)} characters, the limit is {self.config.max_prompt_chars}")
        if body.seconds is not None and body.seconds > self.max_seconds + 1e-9:
            raise HTTPException(422, f"seconds: {body.seconds:g} is longer than the longest motion, {self.max_seconds:g} s")
        if body.num_samples > self.config.max_num_samples:
            raise HTTPException(422, f"num_samples: {body.num_samples} is more than the limit, {self.config.max_num_samples}")
        if body.segments is not None and len(body.segments) > self.config.max_segments:
            raise HTTPException(422, f"segments: {len(body.segments)} is more than the limit, {self.config.max_segments}")
        seed = body.seed if body.seed is not None else random.SystemRandom().randrange(SEED_RANGE // 2)
        try:
            return Job(body, self._plan(body, seed, understand))
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    # ------------------------------------------------------------------ generating
    def submit(self, job: Job) -> asyncio.Future:
        """Queue a job now (a full queue is a 429 here); the future resolves to its motions."""
        if job.timeline:
            return self._exclusive(self._compose(job))  # a timeline is sampled segment by segment, alone
        try:
            return self.batcher.submit(job.requests)
        except QueueFullError as err:
            raise HTTPException(429, str(err), headers={"Retry-After": "1"}) from None

    async def generate(self, job: Job) -> list[Motion]:
        return await self._within_limits(self.submit(job))

    def _exclusive(self, job) -> asyncio.Future:
        """Run ``job`` on the generation thread between batches (timelines, streams), within the queue limit."""
        if self.exclusive_jobs + self.batcher.queued >= self.config.max_queue:
            raise HTTPException(429, f"the server is busy: {self.config.max_queue} requests are queued already",
                                headers={"Retry-After": "1"})  # fmt: skip
        self.exclusive_jobs += 1
        future = self.batcher.run_in_worker(job)
        future.add_done_callback(lambda _: setattr(self, "exclusive_jobs", self.exclusive_jobs - 1))
        return future

    async def _within_limits(self, awaitable, timeout: float | None = None):
        try:
            return await asyncio.wait_for(awaitable, self.config.request_timeout_s if timeout is None else timeout)
        except TimeoutError:
            raise HTTPException(
                503, f"generation did not finish within the per-request limit of {self.config.request_timeout_s:g} s",
                headers={"Retry-After": "5"},
            ) from None
        except ValueError as err:  # the pipeline refused this request
            raise HTTPException(422, str(err)) from None

    @staticmethod
    def chunked(job: Job) -> bool:
        """Frames stream while generating with ``pipe.stream``; fix_feet cleans a whole motion at once."""
        return not job.body.fix_feet

    def open_stream(self, job: Job) -> AsyncIterator[tuple[int, np.ndarray, np.ndarray]]:
        """Queue a job now (429 here) and return its (start frame, joints, features) chunks: from
        ``pipe.stream`` on the generation thread as they are made, or the whole motion as one chunk."""
        loop = asyncio.get_running_loop()
        if not self.chunked(job):
            future = self.submit(job)

            async def whole():
                (motion,) = await self._within_limits(future)
                yield 0, motion.joints, motion.features

            return whole()
        chunks: asyncio.Queue = asyncio.Queue()
        abandoned = threading.Event()
        call = self._stream(job)

        def produce() -> None:  # on the generation thread
            try:
                for chunk in call():
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                    if abandoned.is_set():  # the client left or the time limit passed
                        return
            except Exception as err:  # noqa: BLE001 - handed to the request
                loop.call_soon_threadsafe(chunks.put_nowait, err)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        self._exclusive(produce)
        deadline = loop.time() + self.config.request_timeout_s

        async def pieces():
            try:
                while (item := await self._within_limits(chunks.get(), max(deadline - loop.time(), 0))) is not None:
                    if isinstance(item, ValueError):
                        raise HTTPException(422, str(item))
                    if isinstance(item, Exception):
                        raise item
                    yield item.start_frame, item.joints, item.features
            finally:
                abandoned.set()

        return pieces()

    # ------------------------------------------------------------------ publishing
    def streamed_motion(self, job: Job, features: Sequence[np.ndarray]) -> Motion:
        """The motion a stream's chunks of features make, to publish like any other."""
        return Motion(np.concatenate(features), fps=self.fps, text=job.prompt)

    def publish(self, job: Job, motions: Sequence[Motion], base_url: str) -> list[bytes]:
        """Store each motion and encode its JSON entry (runs in a thread pool, off the event loop)."""
        entries = []
        for j, motion in enumerate(motions):
            request = job.requests[0 if job.timeline else j]
            info = {"prompt": job.prompt, "seed": int(request.seed), "fps": float(motion.fps),
                    "frames": int(motion.num_frames), "seconds": round(motion.seconds, 3),
                    "options": {**job.body.options, "fix_feet": job.body.fix_feet}}  # fmt: skip
            if job.timeline:
                info["segments"] = motion.meta.get("segments") or [
                    {"prompt": r.prompt, "seconds": r.seconds, "seed": r.seed} for r in job.requests]
            motion_id = self.store.add(motion, info)
            entry = {"id": motion_id, **{k: info[k] for k in ("prompt", "seed", "fps", "frames")},
                     "files": self.file_urls(motion_id, base_url)}  # fmt: skip
            if job.timeline:
                entry["segments"] = info["segments"]
            understood = {**request.meta, **motion.meta}  # a streamed motion's meta lacks what the plan understood
            entry.update({k: understood[k] for k in ("coverage", "understood_as") if k in understood})
            notes = [*job.text_warnings, *([understood["warning"]] if understood.get("warning") else [])]
            if notes:
                entry["warning"] = "; ".join(notes)
            entries.append(encode_entry(entry, motion.joints))
        return entries

    def file_urls(self, motion_id: str, base_url: str) -> dict[str, str]:
        return {fmt: f"{base_url}v1/motions/{motion_id}.{fmt}" for fmt in self.store.formats}

    def model_info(self) -> dict:
        defaults = {f.name: f.default for f in dataclasses.fields(GenerationRequest)
                    if f.default is not dataclasses.MISSING and f.name != "prompt"}  # fmt: skip
        config = self.pipe.generator.config
        defaults["guidance"] = config.default_guidance if defaults.get("guidance") is None else defaults["guidance"]
        folder = Path(self.pipe.folder) if self.pipe.folder is not None else None
        card = _model_card(folder / "README.md") if folder is not None else {}
        return {
            "fps": self.fps,
            "joint_names": list(JOINT_NAMES),
            "parents": list(PARENTS),
            "units": "metres, Y up, SMPL joint order",
            # Standing still, for a viewer to show before any motion exists (pelvis at the origin, facing +Z).
            "rest_pose": np.round(TEMPLATE_REST_JOINTS, 3).tolist(),
            "min_seconds": MIN_SECONDS,
            "max_seconds": self.max_seconds,
            "sampling": {"defaults": defaults, "guidance_available": bool(config.has_null_prefix)},
            "limits": {"max_prompt_chars": self.config.max_prompt_chars, "max_num_samples": self.config.max_num_samples,
                       "max_segments": self.config.max_segments, "max_body_bytes": self.config.max_body_bytes,
                       "max_queue": self.config.max_queue, "request_timeout_s": self.config.request_timeout_s},  # fmt: skip
            "batching": {"max_batch": self.config.max_batch, "max_wait_ms": self.config.max_wait_ms},
            "formats": list(self.store.formats),
            "timelines": True,
            "streaming": "chunks while generating",
            "model": {"folder": folder.name if folder else None, "generator_preset": getattr(config, "preset", None),
                      "codebook_size": config.codebook_size},  # fmt: skip
            **card,
        }


def _model_card(readme: Path) -> dict:
    """Title, first paragraph and the licence section of a model card (README.md), as plain text."""
    if not readme.is_file():
        return {"model_card": None, "licence": None}
    text = readme.read_text(encoding="utf-8")
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and not p.lstrip().startswith(("#", "|"))]
    licence = re.search(r"^##[^\n]*licen[cs]e[^\n]*\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M | re.I)
    squash = lambda s: " ".join(s.split())  # noqa: E731
    return {"model_card": {"title": title, "summary": squash(paragraphs[0]) if paragraphs else ""},
            "licence": squash(licence.group(1))[:1500] if licence else None}  # fmt: skip

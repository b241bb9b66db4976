"""The server object behind the routes: limits, the batch queue, the file store and every call into the pipeline.

:class:`Server` turns a checked :class:`~motionmillion.serve.protocol.GenerateBody` into a :class:`Plan`
(the pipeline's checked requests), queues plans for batched generation (or runs timelines and streams on
the generation thread between batches) and publishes the motions: files in the store, JSON entries.
Generation itself is the pipeline's; the calls into it are the methods under "the pipeline" below, and
nowhere else in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import re
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from fastapi import HTTPException

from motionmillion.motion import JOINT_NAMES, PARENTS, Motion
from motionmillion.motion.skeleton import TEMPLATE_REST_JOINTS
from motionmillion.pipeline import MIN_SECONDS, GenerationRequest
from motionmillion.serve.batcher import Batcher, QueueFullError
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.protocol import SEED_RANGE, GenerateBody, encode_entry
from motionmillion.serve.store import MotionStore
from motionmillion.text.rewrite import understood_requests

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Plan:
    """A checked body: pipeline requests for the batch queue, or a timeline for ``compose``/``stream``."""

    body: GenerateBody
    requests: list[GenerationRequest]  # checked by the pipeline (one per sample, or one per segment)
    timeline: bool
    text_warnings: list[str] = dataclasses.field(default_factory=list)  # text the encoder may misread (emoji, ...)

    @property
    def prompt(self) -> str:
        return " / ".join(r.prompt for r in self.requests) if self.timeline else self.requests[0].prompt


class Server:
    """Everything a request handler needs: the pipeline, the limits, the batch queue and the file store."""

    def __init__(self, pipe, config: ServeConfig, generate: Callable[[Sequence], list[Motion]] | None = None):
        """``generate``: what runs a batch of requests (e.g. a :class:`~motionmillion.serve.worker.GenerationPool`);
        default: ``pipe.generate`` on the generation thread."""
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
    def _requests(self, body: GenerateBody, seed: int, understand: bool) -> list[GenerationRequest]:
        """The pipeline's checked requests for a body (PromptError, a ValueError, names a bad field)."""
        if body.segments is not None:
            return self.pipe.timeline([segment.model_dump() for segment in body.segments], seed, **body.options)
        requests = [GenerationRequest(body.prompt, body.seconds, seed + j, fix_feet=body.fix_feet, **body.options)
                    for j in range(body.num_samples)]  # fmt: skip
        requests = [self.pipe.check(r) for r in requests]
        if understand or body.rewrite:  # else pipe.generate understands a whole batch in one encoder pass
            requests = understood_requests(self.pipe, requests, rewrite=body.rewrite)
        return requests

    def _text_warnings(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """What the pipeline warns about each distinct prompt's text (e.g. emoji, which an English text
        encoder misreads), for the client; the pipeline warns again while generating, and that warning
        is the one logged (one line each: serve.logs)."""
        first = {r.prompt: r for r in requests}
        with _warnings_of_this_thread() as caught:
            for request in first.values():
                self.pipe.check(request, warn=True)
        return list(dict.fromkeys(caught))

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[Motion]:
        """Runs on the generation thread: one batched pipeline call for the whole batch."""
        if self._generate_batch is not None:
            return self._generate_batch(requests)
        return list(self.pipe.generate(requests, batch_size=self.config.max_batch))

    def _compose(self, plan: Plan) -> Callable[[], Motion]:
        segments = [{"prompt": r.prompt, "seconds": r.seconds} for r in plan.requests]
        return functools.partial(self.pipe.compose, segments, seed=plan.requests[0].seed, fix_feet=plan.body.fix_feet,
                                 **plan.body.options)  # fmt: skip

    def _stream(self, plan: Plan) -> Callable[[], Iterator]:
        """``pipe.stream`` for a plan: its chunks (start_frame, joints, features) as they are made."""
        first = plan.requests[0]
        if plan.timeline:
            segments = [{"prompt": r.prompt, "seconds": r.seconds} for r in plan.requests]
            return functools.partial(self.pipe.stream, segments, seed=first.seed, **plan.body.options)
        return functools.partial(self.pipe.stream, first.conditioning_text, seconds=first.seconds, seed=first.seed,
                                 **plan.body.options)  # fmt: skip

    # ------------------------------------------------------------------ checking
    def plan(self, body: GenerateBody, understand: bool = True) -> Plan:
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
            requests = self._requests(body, seed, understand)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        return Plan(body, requests, timeline=body.segments is not None, text_warnings=self._text_warnings(requests))

    # ------------------------------------------------------------------ generating
    def submit(self, plan: Plan) -> asyncio.Future:
        """Queue a plan now (a full queue is a 429 here); the future resolves to its motions."""
        if plan.timeline:
            compose = self._compose(plan)
            return self._exclusive(lambda: [compose()])  # a timeline is sampled segment by segment, alone
        try:
            return self.batcher.submit(plan.requests)
        except QueueFullError as err:
            raise HTTPException(429, str(err), headers={"Retry-After": "1"}) from None

    async def generate(self, plan: Plan) -> list[Motion]:
        return await self._within_limits(self.submit(plan))

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
    def chunked(plan: Plan) -> bool:
        """Frames stream while generating with ``pipe.stream``; fix_feet cleans a whole motion at once."""
        return not plan.body.fix_feet

    def open_stream(self, plan: Plan) -> AsyncIterator[tuple[int, np.ndarray, np.ndarray]]:
        """Queue a plan now (429 here) and return its (start frame, joints, features) chunks: from
        ``pipe.stream`` on the generation thread as they are made, or the whole motion as one chunk."""
        loop = asyncio.get_running_loop()
        if not self.chunked(plan):
            future = self.submit(plan)

            async def whole():
                (motion,) = await self._within_limits(future)
                yield 0, motion.joints, motion.features

            return whole()
        chunks: asyncio.Queue = asyncio.Queue()
        abandoned = threading.Event()
        call = self._stream(plan)

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
    def streamed_motion(self, plan: Plan, features: Sequence[np.ndarray]) -> Motion:
        """The motion a stream's chunks of features make, to publish like any other."""
        return Motion(np.concatenate(features), fps=self.fps, text=plan.prompt)

    def publish(self, plan: Plan, motions: Sequence[Motion], base_url: str) -> list[bytes]:
        """Store each motion and encode its JSON entry (runs in a thread pool, off the event loop)."""
        entries = []
        for j, motion in enumerate(motions):
            request = plan.requests[0 if plan.timeline else j]
            info = {"prompt": plan.prompt, "seed": int(request.seed), "fps": float(motion.fps),
                    "frames": int(motion.num_frames), "seconds": round(motion.seconds, 3),
                    "options": {**plan.body.options, "fix_feet": plan.body.fix_feet}}  # fmt: skip
            if plan.timeline:
                info["segments"] = motion.meta.get("segments") or [
                    {"prompt": r.prompt, "seconds": r.seconds, "seed": r.seed} for r in plan.requests]
            motion_id = self.store.add(motion, info)
            entry = {"id": motion_id, **{k: info[k] for k in ("prompt", "seed", "fps", "frames")},
                     "files": self.file_urls(motion_id, base_url)}  # fmt: skip
            if plan.timeline:
                entry["segments"] = info["segments"]
            understood = {**request.meta, **motion.meta}  # a streamed motion's meta lacks what the plan understood
            entry.update({k: understood[k] for k in ("coverage", "understood_as") if k in understood})
            notes = [*plan.text_warnings, *([understood["warning"]] if understood.get("warning") else [])]
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


_CAPTURING = threading.Lock()  # warnings.catch_warnings changes process-wide state: one capture at a time


@contextlib.contextmanager
def _warnings_of_this_thread() -> Iterator[list[str]]:
    """The messages of the warnings this thread raises inside the block, every time (not once per place
    as by default), instead of showing them; other threads' warnings are shown as usual meanwhile."""
    caught: list[str] = []
    me = threading.get_ident()
    with _CAPTURING, warnings.catch_warnings():
        shown_elsewhere = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if threading.get_ident() == me:
                caught.append(str(message))
            else:
                shown_elsewhere(message, category, filename, lineno, file, line)

        warnings.simplefilter("always")
        warnings.showwarning = show
        yield caught


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

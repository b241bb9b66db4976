"""The HTTP API and the studio page: ``create_app(pipe, config)`` -> a FastAPI app.

    GET  /                       the studio (static page, three.js vendored)
    GET  /healthz                {"status": "ok"} once the model is loaded
    GET  /v1/model               what the model can do: fps, joints, limits, sampling defaults, card, licence
    GET  /v1/stats               batching so far: batch sizes, time the generator was busy
    GET  /docs                   OpenAPI docs (Swagger UI vendored, works offline)
    POST /v1/generate            JSON in, motions (joints + file URLs) out; concurrent requests are batched;
                                 ``segments`` instead of ``prompt`` makes one motion of a timeline
    POST /v1/generate/stream     the same as Server-Sent Events: start, chunk..., done (or error)
    GET  /v1/motions/{id}.{fmt}  npy | json | bvh | mp4 (| glb): files of a generated motion

Generation itself is the pipeline's (``MotionPipeline.generate``); this module only validates, queues,
stores and encodes. Every error is a JSON body ``{"error": "...", "status": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import random
import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from motionmillion.motion import JOINT_NAMES, PARENTS, Motion
from motionmillion.serve.batcher import Batcher, QueueFullError
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.store import MEDIA_TYPES, MotionStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(files("motionmillion"))) / "serve" / "static"
SEED_RANGE = 2**31


# ---------------------------------------------------------------------- request and response shapes
class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # true is not 1, NaN is no number
    prompt: str
    seconds: float = Field(gt=0)


class GenerateBody(BaseModel):
    """A generation request: a ``prompt``, or a timeline of ``segments``; everything else is optional."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # true is not 1, NaN is no number
    prompt: str | None = Field(None, description="what the person does, in English")
    segments: list[Segment] | None = Field(
        None, description="instead of prompt: a timeline of prompts with durations, played one after another")
    seconds: float | None = Field(None, gt=0, description="duration; null = the model ends the motion itself")
    seed: int | None = Field(None, ge=0, lt=SEED_RANGE, description="null = random; sample (or segment) j uses seed + j")
    num_samples: int = Field(1, ge=1, description="motions for this prompt")
    guidance: float | None = Field(None, ge=0, description="classifier-free guidance; null = the model's default")
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(0.95, gt=0, le=1)
    fix_feet: bool = Field(False, description="remove foot sliding after generation")
    rewrite: bool = Field(False, description="rewrite the prompt into the training captions' wording first "
                          "(and estimate the duration when seconds is null)")

    @model_validator(mode="after")
    def _prompt_or_segments(self) -> GenerateBody:
        if (self.prompt is None) == (self.segments is None):
            raise ValueError("give either prompt or segments")
        if self.segments is not None and (self.seconds is not None or self.num_samples != 1):
            raise ValueError("with segments, durations go in the segments and num_samples is 1")
        return self

    @property
    def options(self) -> dict:
        return {"guidance": self.guidance, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}


class MotionFiles(BaseModel):
    bvh: str
    npy: str
    mp4: str
    json_: str = Field(alias="json")
    glb: str | None = None


class MotionOut(BaseModel):
    id: str
    prompt: str
    seed: int
    fps: float
    frames: int
    joints: list[list[list[float]]] = Field(description="(frames, 22, 3) metres, Y up, SMPL joint order")
    files: MotionFiles
    segments: list[dict] | None = Field(None, description="a timeline's segments: prompt, seed, frame range")
    coverage: float | None = Field(None, description="0-1: how close the prompt is to what the model was trained on")
    understood_as: str | None = Field(None, description="what the prompt was understood as (the rewrite, with rewrite)")
    warning: str | None = Field(None, description="only when the model knows no movement like the prompt")


class GenerateResponse(BaseModel):
    motions: list[MotionOut]


class ErrorBody(BaseModel):
    error: str
    status: int


ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (404, 413, 422, 429, 503)}


@dataclasses.dataclass
class Plan:
    """A checked body: pipeline requests for the batch queue, or a timeline for ``compose``/``stream``."""

    body: GenerateBody
    requests: list  # GenerationRequest, checked by the pipeline (one per sample, or one per segment)
    timeline: bool

    @property
    def prompt(self) -> str:
        return " / ".join(r.prompt for r in self.requests) if self.timeline else self.requests[0].prompt


# ---------------------------------------------------------------------- the server object
class Server:
    """Everything a request handler needs: the pipeline, the limits, the batch queue and the file store."""

    def __init__(self, pipe, config: ServeConfig, generate: Callable[[Sequence], list[Motion]] | None = None):
        """``generate``: what runs a batch of requests (e.g. a :class:`~motionmillion.serve.worker.GenerationProcess`);
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

    def _generate(self, requests: Sequence) -> list[Motion]:
        """Runs on the generation thread: one batched pipeline call for the whole batch."""
        if self._generate_batch is not None:
            return self._generate_batch(requests)
        return list(self.pipe.generate(requests, batch_size=self.config.max_batch))

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
            if body.segments is not None:
                segments = [segment.model_dump() for segment in body.segments]
                return Plan(body, self.pipe.timeline(segments, seed, **body.options), timeline=True)
            from motionmillion.pipeline import GenerationRequest
            from motionmillion.pipeline.understanding import understood_requests

            requests = [GenerationRequest(body.prompt, body.seconds, seed + j, fix_feet=body.fix_feet, **body.options)
                        for j in range(body.num_samples)]  # fmt: skip
            requests = [self.pipe.check(r) for r in requests]
            if understand or body.rewrite:  # else pipe.generate understands a whole batch in one encoder pass
                requests = understood_requests(self.pipe, requests, rewrite=body.rewrite)
            return Plan(body, requests, timeline=False)
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    # ------------------------------------------------------------------ generating
    def submit(self, plan: Plan) -> asyncio.Future:
        """Queue a plan now (a full queue is a 429 here); the future resolves to its motions."""
        if plan.timeline:
            segments = [{"prompt": r.prompt, "seconds": r.seconds} for r in plan.requests]
            compose = functools.partial(self.pipe.compose, segments, seed=plan.requests[0].seed,
                                        fix_feet=plan.body.fix_feet, **plan.body.options)  # fmt: skip
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
        first = plan.requests[0]
        if plan.timeline:
            segments = [{"prompt": r.prompt, "seconds": r.seconds} for r in plan.requests]
            call = functools.partial(self.pipe.stream, segments, seed=first.seed, **plan.body.options)
        else:
            call = functools.partial(self.pipe.stream, first.conditioning_text, seconds=first.seconds, seed=first.seed,
                                     **plan.body.options)  # fmt: skip

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
            entry.update({k: understood[k] for k in ("coverage", "understood_as", "warning") if k in understood})
            entries.append(encode_entry(entry, motion.joints))
        return entries

    def file_urls(self, motion_id: str, base_url: str) -> dict[str, str]:
        return {fmt: f"{base_url}v1/motions/{motion_id}.{fmt}" for fmt in self.store.formats}

    def model_info(self) -> dict:
        from motionmillion.pipeline import MIN_SECONDS, GenerationRequest

        defaults = {f.name: f.default for f in dataclasses.fields(GenerationRequest)
                    if f.default is not dataclasses.MISSING and f.name != "prompt"}  # fmt: skip
        config = self.pipe.generator.config
        defaults["guidance"] = config.default_guidance if defaults.get("guidance") is None else defaults["guidance"]
        folder = Path(self.pipe.folder) if self.pipe.folder is not None else None
        card = _model_card(folder / "README.md") if folder is not None else {}
        return {
            "fps": float(self.pipe.fps),
            "joint_names": list(JOINT_NAMES),
            "parents": list(PARENTS),
            "units": "metres, Y up, SMPL joint order",
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


def encode_entry(entry: dict, joints: np.ndarray) -> bytes:
    """One motion's JSON, joints rounded to the millimetre (float64 rounding keeps the text short).
    orjson writes the array directly: the standard library takes ~50x longer for ~9,000 floats."""
    rounded = np.round(np.asarray(joints, dtype=np.float64), 3)
    return orjson.dumps({**entry, "joints": rounded}, option=orjson.OPT_SERIALIZE_NUMPY)


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


class BodyLimit:
    """413 with the JSON error body for a request body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body larger than the limit of {self.max_bytes} bytes"
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await JSONResponse({"error": message, "status": 413}, 413)(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, message)  # answered by the app's HTTP error handler
            return event

        await self.app(scope, counted_receive, send)


def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"



# ---------------------------------------------------------------------- the app
def create_app(pipe, config: ServeConfig | None = None, generate: Callable[[Sequence], list[Motion]] | None = None) -> FastAPI:
    """The app around ``pipe``; ``generate`` runs the batches (see :class:`Server`)."""
    config = config or ServeConfig()
    server = Server(pipe, config, generate)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.batcher.start()
        try:
            yield
        finally:
            await server.batcher.stop()
            server.store.close()

    app = FastAPI(title="MotionMillion", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  summary="Text to 3D human motion: a batched HTTP API and a browser studio.")  # fmt: skip
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.state.server = server

    # ---------------------------------------------------------------- errors: one JSON shape, never a traceback
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
        return JSONResponse({"error": message, "status": err.status_code}, err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for item in err.errors():
            if item.get("type") == "json_invalid":
                parts.append(f"body: not valid JSON ({item.get('ctx', {}).get('error', 'decode error')})")
                continue
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {item.get('msg', 'invalid').removeprefix('Value error, ')}")
        return JSONResponse({"error": "; ".join(parts), "status": 422}, 422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}", "status": 500}, 500)

    async def checked(body: GenerateBody) -> Plan:
        # Only a rewrite is understood per request here (the batch call understands its prompts together),
        # so the checks are cheap and run on the event loop: a lone request saves a thread hop.
        if body.rewrite:
            return await run_in_threadpool(server.plan, body)
        return server.plan(body, understand=False)

    def checked_for_stream(body: GenerateBody) -> Plan:  # a thread: a stream does not go through pipe.generate
        return server.plan(body)

    # ---------------------------------------------------------------- routes
    @app.get("/", include_in_schema=False)
    async def studio() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """The OpenAPI docs with a vendored Swagger UI (FastAPI's default loads it from a CDN)."""
        vendor = "/static/vendor/swagger-ui"
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="MotionMillion API",
                                   swagger_js_url=f"{vendor}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{vendor}/swagger-ui.css", swagger_favicon_url="data:,")  # fmt: skip

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/stats")
    async def stats() -> dict:
        """Batching so far: how many batches of which size, and how long the generator was busy."""
        batches = server.batcher.stats
        return {"batches": batches.batches, "motions": batches.items, "largest_batch": batches.largest_batch,
                "batch_sizes": dict(sorted(batches.sizes.items())),
                "generating_seconds": round(batches.generating_seconds, 3), "queued": server.batcher.queued}  # fmt: skip

    @app.get("/v1/model")
    async def model() -> dict:
        return server.model_info()

    @app.post("/v1/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES)
    async def generate(request: Request, plan: Plan = Depends(checked)) -> Response:
        motions = await server.generate(plan)
        entries = await run_in_threadpool(server.publish, plan, motions, str(request.base_url))
        # Pre-encoded: FastAPI's generic encoder is slow on ~9,000 floats per motion.
        return Response(b'{"motions":[' + b",".join(entries) + b"]}", media_type="application/json")

    @app.post("/v1/generate/stream", responses=ERROR_RESPONSES, response_class=StreamingResponse)
    async def generate_stream(request: Request, plan: Plan = Depends(checked_for_stream)) -> StreamingResponse:
        """Server-Sent Events: ``start`` ({"prompt", "seed", "fps", "chunked"}), ``chunk`` events
        ({"start": first frame, "joints": [...]}) while the motion is generated, then ``done`` (the motion
        as in /v1/generate, without joints) or ``error`` ({"error", "status"})."""
        if plan.body.num_samples != 1:
            raise HTTPException(422, "num_samples: streaming makes one motion per request")
        chunked = server.chunked(plan)
        chunks = server.open_stream(plan)  # queued now: a full queue is a 429, not an error inside a 200 stream

        async def events() -> AsyncIterator[bytes]:
            note = "frames arrive while the motion is generated" if chunked else (
                "fix_feet cleans the whole motion at once: one chunk")
            yield _sse("start", orjson.dumps({"prompt": plan.prompt, "seed": plan.requests[0].seed,
                                               "fps": float(pipe.fps), "chunked": chunked, "note": note}))  # fmt: skip
            features = []
            try:
                async for start, joints, piece in chunks:
                    features.append(piece)
                    yield _sse("chunk", encode_entry({"start": int(start)}, joints))
            except HTTPException as err:
                yield _sse("error", orjson.dumps({"error": err.detail, "status": err.status_code}))
                return
            finally:
                await chunks.aclose()  # a client that left stops the generation
            motion = Motion(np.concatenate(features), fps=pipe.fps, text=plan.prompt)
            (entry,) = await run_in_threadpool(server.publish, plan, [motion], str(request.base_url))
            done = orjson.loads(entry)
            done.pop("joints")
            yield _sse("done", orjson.dumps(done))

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/motions/{motion_id}.{fmt}", responses=ERROR_RESPONSES)
    async def motion_file(motion_id: str, fmt: str) -> FileResponse:
        path = await run_in_threadpool(server.store.path, motion_id, fmt)
        if path is None:
            raise HTTPException(404, f"no motion file {motion_id}.{fmt} (ids come from /v1/generate; old ones "
                                     f"are deleted when the cache is full; formats: {', '.join(server.store.formats)})")  # fmt: skip
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"motion_{motion_id[:8]}.{fmt}")

    return app

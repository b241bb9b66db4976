"""The HTTP API and the studio page: ``create_app(pipe, config)`` -> a FastAPI app.

    GET  /                       the studio (static page, three.js vendored)
    GET  /healthz                {"status": "ok"} once the model is loaded
    GET  /v1/model               what the model can do: fps, joints, limits, sampling defaults, card, licence
    POST /v1/generate            JSON in, motions (joints + file URLs) out; concurrent requests are batched
    POST /v1/generate/stream     the same as Server-Sent Events: start, chunk..., done (or error)
    GET  /v1/motions/{id}.{fmt}  npy | json | bvh | mp4 (| glb): files of a generated motion

Generation itself is the pipeline's (``MotionPipeline.generate``); this module only validates, queues,
stores and encodes. Every error is a JSON body ``{"error": "...", "status": N}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
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
class GenerateBody(BaseModel):
    """A generation request; only ``prompt`` is required."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(description="what the person does, in English")
    seconds: float | None = Field(None, gt=0, description="duration; null = the model ends the motion itself")
    seed: int | None = Field(None, ge=0, lt=SEED_RANGE, description="null = random; sample j uses seed + j")
    num_samples: int = Field(1, ge=1, description="motions for this prompt")
    guidance: float | None = Field(None, ge=0, description="classifier-free guidance; null = the model's default")
    temperature: float = Field(1.0, ge=0, description="0 = greedy")
    top_k: int | None = Field(None, ge=1)
    top_p: float | None = Field(0.95, gt=0, le=1)
    fix_feet: bool = Field(False, description="remove foot sliding after generation")


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


class GenerateResponse(BaseModel):
    motions: list[MotionOut]


class ErrorBody(BaseModel):
    error: str
    status: int


ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (404, 413, 422, 429, 503)}


# ---------------------------------------------------------------------- the server object
class Server:
    """Everything a request handler needs: the pipeline, the limits, the batch queue and the file store."""

    def __init__(self, pipe, config: ServeConfig):
        self.pipe = pipe
        self.config = config
        self.max_seconds = min(config.max_seconds or pipe.max_seconds, pipe.max_seconds)
        self.batcher = Batcher(self._generate, max_batch=config.max_batch, max_wait_s=config.max_wait_ms / 1000,
                               max_queue=config.max_queue)  # fmt: skip
        self.store = MotionStore(config.cache_dir, config.cache_max_bytes)

    def _generate(self, requests: Sequence) -> list[Motion]:
        """Runs on the generation thread: one batched pipeline call for the whole batch."""
        return list(self.pipe.generate(requests, batch_size=self.config.max_batch))

    def requests_for(self, body: GenerateBody) -> list:
        """The pipeline's requests for one body (sample j gets seed + j), checked by the pipeline itself."""
        from motionmillion.pipeline import GenerationRequest

        seed = body.seed if body.seed is not None else random.SystemRandom().randrange(SEED_RANGE - body.num_samples)
        requests = [
            GenerationRequest(prompt=body.prompt, seconds=body.seconds, seed=seed + j, guidance=body.guidance,
                              temperature=body.temperature, top_k=body.top_k, top_p=body.top_p,
                              fix_feet=body.fix_feet)  # fmt: skip
            for j in range(body.num_samples)
        ]
        try:
            return [self.pipe.check(request) for request in requests]
        except ValueError as err:
            raise HTTPException(422, str(err)) from None

    def check(self, body: GenerateBody) -> None:
        """The server's own limits (the pipeline checks the rest and its errors become 422s too)."""
        if len(body.prompt) > self.config.max_prompt_chars:
            raise HTTPException(422, f"prompt: {len(body.prompt)} characters, the limit is {self.config.max_prompt_chars}")
        if body.seconds is not None and body.seconds > self.max_seconds + 1e-9:
            raise HTTPException(422, f"seconds: {body.seconds:g} is longer than the longest motion, {self.max_seconds:g} s")
        if body.num_samples > self.config.max_num_samples:
            raise HTTPException(422, f"num_samples: {body.num_samples} is more than the limit, {self.config.max_num_samples}")

    def submit(self, requests: Sequence) -> asyncio.Future:
        try:
            return self.batcher.submit(requests)
        except QueueFullError as err:
            raise HTTPException(429, str(err), headers={"Retry-After": "1"}) from None

    async def result(self, future: asyncio.Future) -> list[Motion]:
        """Wait for a queued request's batch; the HTTP errors of a slow server or a refused request."""
        try:
            return await asyncio.wait_for(future, self.config.request_timeout_s)
        except TimeoutError:
            raise HTTPException(
                503, f"generation did not finish within the per-request limit of {self.config.request_timeout_s:g} s",
                headers={"Retry-After": "5"},
            ) from None
        except ValueError as err:  # the pipeline refused this request (e.g. guidance on a model without it)
            raise HTTPException(422, str(err)) from None

    def publish(self, motions: Sequence[Motion], requests: Sequence, base_url: str) -> list[str]:
        """Store each motion and encode its JSON entry (runs in a thread pool, off the event loop)."""
        entries = []
        for motion, request in zip(motions, requests):
            info = {"prompt": motion.text or request.prompt, "seed": int(request.seed), "fps": float(motion.fps),
                    "frames": int(motion.num_frames), "seconds": round(motion.seconds, 3),
                    "options": {k: v for k, v in dataclasses.asdict(request).items() if k not in ("prompt", "seed", "meta")}}  # fmt: skip
            motion_id = self.store.add(motion, info)
            entry = {"id": motion_id, "prompt": info["prompt"], "seed": info["seed"], "fps": info["fps"],
                     "frames": info["frames"], "files": self.file_urls(motion_id, base_url)}  # fmt: skip
            entries.append(encode_entry(entry, motion.joints))
        return entries

    def file_urls(self, motion_id: str, base_url: str) -> dict[str, str]:
        return {fmt: f"{base_url}v1/motions/{motion_id}.{fmt}" for fmt in self.store.formats}

    def model_info(self) -> dict:
        from motionmillion.pipeline import GenerationRequest

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
            "max_seconds": self.max_seconds,
            "sampling": {"defaults": defaults, "guidance_available": bool(config.has_null_prefix)},
            "limits": {"max_prompt_chars": self.config.max_prompt_chars, "max_num_samples": self.config.max_num_samples,
                       "max_body_bytes": self.config.max_body_bytes, "max_queue": self.config.max_queue,
                       "request_timeout_s": self.config.request_timeout_s},  # fmt: skip
            "batching": {"max_batch": self.config.max_batch, "max_wait_ms": self.config.max_wait_ms},
            "formats": list(self.store.formats),
            "streaming": "chunks while generating" if hasattr(self.pipe, "stream") else "one chunk once generated",
            "model": {"folder": folder.name if folder else None, "generator_preset": getattr(config, "preset", None),
                      "codebook_size": config.codebook_size},  # fmt: skip
            **card,
        }


def encode_entry(entry: dict, joints: np.ndarray) -> str:
    """One motion's JSON, joints rounded to the millimetre (float64 rounding keeps the text short)."""
    rounded = np.round(np.asarray(joints, dtype=np.float64), 3).tolist()
    return json.dumps({**entry, "joints": rounded}, separators=(",", ":"))


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


def _sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"


# ---------------------------------------------------------------------- the app
def create_app(pipe, config: ServeConfig | None = None) -> FastAPI:
    config = config or ServeConfig()
    server = Server(pipe, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.batcher.start()
        try:
            yield
        finally:
            await server.batcher.stop()
            server.store.close()

    app = FastAPI(title="MotionMillion", version="1", lifespan=lifespan,
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
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        return JSONResponse({"error": "; ".join(parts), "status": 422}, 422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}", "status": 500}, 500)

    def checked(body: GenerateBody) -> tuple[GenerateBody, list]:
        """The body within the server's limits and its pipeline requests (422 before anything is queued)."""
        server.check(body)
        return body, server.requests_for(body)

    # ---------------------------------------------------------------- routes
    @app.get("/", include_in_schema=False)
    async def studio() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/model")
    async def model() -> dict:
        return server.model_info()

    @app.post("/v1/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES)
    async def generate(request: Request, checked_body: tuple = Depends(checked)) -> Response:
        _, requests = checked_body
        motions = await server.result(server.submit(requests))
        entries = await run_in_threadpool(server.publish, motions, requests, str(request.base_url))
        # Pre-encoded: FastAPI's generic encoder is slow on ~9,000 floats per motion.
        return Response('{"motions":[' + ",".join(entries) + "]}", media_type="application/json")

    @app.post("/v1/generate/stream", responses=ERROR_RESPONSES,
              response_class=StreamingResponse)  # fmt: skip
    async def generate_stream(request: Request, checked_body: tuple = Depends(checked)) -> StreamingResponse:
        """Server-Sent Events: ``start``, one or more ``chunk`` ({"start": frame, "joints": [...]}), then
        ``done`` (the motion without joints: id, files, ...) or ``error`` ({"error", "status"})."""
        body, requests = checked_body
        if body.num_samples != 1:
            raise HTTPException(422, "num_samples: streaming makes one motion per request")
        # Queue now, so a full queue is a 429 rather than an error event inside a 200 stream.
        future = server.submit(requests)

        async def events() -> AsyncIterator[str]:
            yield _sse("start", json.dumps({"prompt": body.prompt, "seed": requests[0].seed, "fps": float(pipe.fps),
                                            "chunked": False,
                                            "note": "this server sends the whole motion as one chunk once it is generated"}))  # fmt: skip
            try:
                motions = await server.result(future)
            except HTTPException as err:
                yield _sse("error", json.dumps({"error": err.detail, "status": err.status_code}))
                return
            (entry,) = await run_in_threadpool(server.publish, motions, requests, str(request.base_url))
            done = json.loads(entry)
            joints = done.pop("joints")
            yield _sse("chunk", json.dumps({"start": 0, "joints": joints}, separators=(",", ":")))
            yield _sse("done", json.dumps(done))

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/v1/motions/{motion_id}.{fmt}", responses=ERROR_RESPONSES)
    async def motion_file(motion_id: str, fmt: str) -> FileResponse:
        path = await run_in_threadpool(server.store.path, motion_id, fmt)
        if path is None:
            raise HTTPException(404, f"no motion file {motion_id}.{fmt} (ids come from /v1/generate; old ones "
                                     f"are deleted when the cache is full; formats: {', '.join(server.store.formats)})")  # fmt: skip
        return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=f"motion_{motion_id[:8]}.{fmt}")

    return app

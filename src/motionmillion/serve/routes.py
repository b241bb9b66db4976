"""The HTTP API and the studio page: ``create_app(pipe, config)`` -> a FastAPI app.

    GET  /                       the studio (static page, three.js vendored)
    GET  /healthz                {"status": "ok"} once the model is loaded
    GET  /v1/model               what the model can do: fps, joints, limits, sampling defaults, card, licence
    GET  /v1/stats               batching so far: batch sizes, time the generator was busy
    GET  /docs                   OpenAPI docs (Swagger UI vendored, works offline)
    POST /v1/generate            JSON in, motions (joints + file URLs) out; concurrent requests are batched;
                                 ``segments`` instead of ``prompt`` makes one motion of a timeline
    POST /v1/generate/stream     the same as Server-Sent Events: start, chunk..., done (or error)
    GET  /v1/motions/{id}.{fmt}  npy | json | bvh | mp4 | glb (| fbx where Blender is installed): files of a generated motion

This module only routes: bodies are in :mod:`~motionmillion.serve.protocol`, checking, queueing, storing
and the calls into the pipeline in :mod:`~motionmillion.serve.serving`. Every error is a JSON body
``{"error": "...", "status": N}``.
"""

from __future__ import annotations

import contextlib
import email.message
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from importlib.resources import files
from pathlib import Path

import anyio
import anyio._backends._asyncio  # noqa: F401 - what anyio runs on under uvicorn, loaded on its first call
import anyio.abc
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from motionmillion.motion import Motion
from motionmillion.serve.config import ServeConfig
from motionmillion.serve.protocol import ErrorBody, GenerateBody, GenerateResponse, encode_entry, error_body
from motionmillion.serve.serving import Job, Server
from motionmillion.serve.store import MEDIA_TYPES, warm_up_writers

log = logging.getLogger(__name__)

STATIC_DIR = Path(str(files("motionmillion"))) / "serve" / "static"
ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (404, 413, 415, 422, 429, 503)}

# Nothing is imported on a server thread in the middle of a request: Python 3.11's ast module keeps one
# recursion counter for all threads, so an import that parses (anyio's lazy importer, matplotlib's rc
# file) while another thread parses too (pytest rewriting a test module, np.load reading a header) can
# fail with "SystemError: AST constructor recursion depth mismatch", which once dropped a test's
# connection mid-response (under starlette's FileResponse -> anyio.open_file). anyio, under FileResponse,
# StaticFiles and run_in_threadpool, imports its parts on first use: all of them are imported here, by
# whoever imports the app; create_app does the rest (the OpenAPI schema, the file writers).
for _module in (anyio, anyio.abc):
    for _name in dir(_module):  # the names it imports on first use
        getattr(_module, _name)


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
            return await JSONResponse(error_body(message, 413), 413)(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            event = await receive()
            received += len(event.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, message)  # answered by the app's HTTP error handler
            return event

        await self.app(scope, counted_receive, send)


def require_json(request: Request) -> None:
    """415 for a body that is not declared JSON (FastAPI would try to validate it as text: a 422 that
    says "Input should be a valid dictionary", which does not say what to change)."""
    declared = request.headers.get("content-type", "")
    header = email.message.Message()
    header["content-type"] = declared
    subtype = header.get_content_subtype()
    if header.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        sent = f"Content-Type: {declared}" if declared else "no Content-Type"
        raise HTTPException(415, f"the request body must be JSON, sent with Content-Type: application/json ({sent} was sent)")


def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def create_app(pipe, config: ServeConfig | None = None, generate: Callable[[Sequence], list[Motion]] | None = None) -> FastAPI:
    """The app around ``pipe``; ``generate`` runs the batches (see :class:`~motionmillion.serve.serving.Server`)."""
    config = config or ServeConfig()
    server = Server(pipe, config, generate)
    warm_up_writers()  # imports on this thread, not a request's (see the anyio imports above)

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
        return JSONResponse(error_body(message, err.status_code), err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for item in err.errors():
            if item.get("type") == "json_invalid":
                parts.append(f"body: not valid JSON ({item.get('ctx', {}).get('error', 'decode error')})")
                continue
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {item.get('msg', 'invalid').removeprefix('Value error, ')}")
        return JSONResponse(error_body("; ".join(parts), 422), 422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(error_body(f"internal error: {type(err).__name__}: {err}", 500), 500)

    async def checked(body: GenerateBody) -> Job:
        # Only a rewrite is understood per request here (the batch call understands its prompts together),
        # so the checks are cheap and run on the event loop: a lone request saves a thread hop.
        if body.rewrite:
            return await run_in_threadpool(server.plan, body)
        return server.plan(body, understand=False)

    def checked_for_stream(body: GenerateBody) -> Job:  # a thread: a stream is understood before it starts
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

    @app.post("/v1/generate", response_model=GenerateResponse, responses=ERROR_RESPONSES,
              dependencies=[Depends(require_json)])  # fmt: skip
    async def generate(request: Request, job: Job = Depends(checked)) -> Response:
        motions = await server.generate(job)
        entries = await run_in_threadpool(server.publish, job, motions, str(request.base_url))
        # Pre-encoded: FastAPI's generic encoder is slow on ~9,000 floats per motion.
        return Response(b'{"motions":[' + b",".join(entries) + b"]}", media_type="application/json")

    @app.post("/v1/generate/stream", responses=ERROR_RESPONSES, response_class=StreamingResponse,
              dependencies=[Depends(require_json)])  # fmt: skip
    async def generate_stream(request: Request, job: Job = Depends(checked_for_stream)) -> StreamingResponse:
        """Server-Sent Events: ``start`` ({"prompt", "seed", "fps", "chunked"}), ``chunk`` events
        ({"start": first frame, "joints": [...]}) while the motion is generated, then ``done`` (the motion
        as in /v1/generate, without joints) or ``error`` ({"error", "status"})."""
        if job.body.num_samples != 1:
            raise HTTPException(422, "num_samples: streaming makes one motion per request")
        chunked = server.chunked(job)
        chunks = server.open_stream(job)  # queued now: a full queue is a 429, not an error inside a 200 stream

        async def events() -> AsyncIterator[bytes]:
            note = "frames arrive while the motion is generated" if chunked else (
                "fix_feet cleans the whole motion at once: one chunk")
            yield _sse("start", orjson.dumps({"prompt": job.prompt, "seed": job.requests[0].seed,
                                               "fps": server.fps, "chunked": chunked, "note": note}))  # fmt: skip
            features = []
            try:
                async for start, joints, piece in chunks:
                    features.append(piece)
                    yield _sse("chunk", encode_entry({"start": int(start)}, joints))
            except HTTPException as err:
                yield _sse("error", orjson.dumps(error_body(err.detail, err.status_code)))
                return
            finally:
                await chunks.aclose()  # a client that left stops the generation
            motion = server.streamed_motion(job, features)
            (entry,) = await run_in_threadpool(server.publish, job, [motion], str(request.base_url))
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

    app.openapi()  # cached: built here, not on a request's thread (pydantic imports its JSON-schema code then)
    return app

"""``motionmillion serve``: the HTTP API and the studio page on one port."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import typer

from motionmillion.serve.config import ServeConfig
from motionmillion.serve.logs import configure_logging

log = logging.getLogger(__name__)


def serve_command(
    model: Path | None = typer.Option(None, "--model", help="Pipeline folder (default: the bundled model)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (the API has no authentication)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    max_batch: int = typer.Option(ServeConfig.max_batch, "--max-batch", help="Most motions in one batched sampler call."),
    max_wait_ms: float = typer.Option(ServeConfig.max_wait_ms, "--max-wait-ms", help="Longest wait for company before a batch starts."),
    workers: int = typer.Option(2, "--workers", min=1, help="Generation processes, each running one batch with one CPU thread."),
    max_queue: int = typer.Option(ServeConfig.max_queue, "--max-queue", help="Requests waiting for the generator; more get a 429."),
    request_timeout: float = typer.Option(ServeConfig.request_timeout_s, "--request-timeout", help="Seconds a request may queue + generate."),
    max_prompt_chars: int = typer.Option(ServeConfig.max_prompt_chars, "--max-prompt-chars"),
    max_num_samples: int = typer.Option(ServeConfig.max_num_samples, "--max-num-samples"),
    max_seconds: float | None = typer.Option(None, "--max-seconds", help="Longest motion (default: the model's)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Folder for generated files (default: temporary)."),
    cache_max_mb: float = typer.Option(ServeConfig.cache_max_bytes / 2**20, "--cache-max-mb", help="Size of that folder; oldest motions go first."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the browser studio at /."""
    from motionmillion.pipeline import MotionPipeline, Plan
    from motionmillion.serve.routes import create_app
    from motionmillion.serve.worker import GenerationPool, warm_up

    config = ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, workers=workers, max_queue=max_queue,
                         request_timeout_s=request_timeout, max_prompt_chars=max_prompt_chars,
                         max_num_samples=max_num_samples, max_seconds=max_seconds, cache_dir=cache_dir,
                         cache_max_bytes=int(cache_max_mb * 2**20))  # fmt: skip
    configure_logging()
    start = time.perf_counter()
    # Batches run in child processes (serve/worker.py), one batch each; this process keeps the model for the
    # checks, timelines and streams it serves itself, and encodes each batch's texts for the children.
    pipe = MotionPipeline.from_pretrained(model, device=device)
    encoder = pipe.text_encoder
    info = {"name": encoder.name, "dim": encoder.dim, "max_length": encoder.max_length}
    with GenerationPool(workers, model, device, config.max_batch, encode_texts=encoder.encode, text_encoder_info=info) as generation:
        warm_up(lambda requests: list(pipe.run(Plan.batch(requests))))
        generation.wait_ready()
        app = create_app(pipe, config, generate=generation.generate)
        log.info("model loaded in %.1f s; studio at http://%s:%d/, API docs at /docs", time.perf_counter() - start, host, port)
        run_server(app, host, port)


def run_server(app, host: str, port: int) -> None:
    """Serve ``app`` with uvicorn until SIGINT or SIGTERM, then stop gracefully (requests in progress finish,
    the app's shutdown runs) and return, saying both in the log: uvicorn itself says nothing at log level
    warning, and would die of the signal at the end (exit status 143 for SIGTERM) instead of returning."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame) -> None:
            if not self.should_exit:
                log.info("%s received: shutting down after the requests in progress", signal.Signals(sig).name)
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    # uvicorn puts back the handlers it found and raises the signal again after its graceful shutdown;
    # finding handle_exit there, that second delivery only sets the stopped server's flags, and run() returns.
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")


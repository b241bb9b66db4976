import threading
import time

import httpx
import pytest
import uvicorn

from motionmillion.serve.routes import create_app
from motionmillion.serve.config import ServeConfig


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread (requests really run concurrently)."""

    def __init__(self, app):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.server.config.load()  # uvicorn's imports here, not on the server thread (see serve.routes)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def bundled_pipe():
    import torch

    from motionmillion.pipeline import MotionPipeline

    torch.set_num_threads(1)
    return MotionPipeline.from_pretrained(device="cpu")


@pytest.fixture(scope="module")
def live(bundled_pipe, tmp_path_factory):
    config = ServeConfig(cache_dir=tmp_path_factory.mktemp("cache"), max_body_bytes=4096)
    app = create_app(bundled_pipe, config)
    with LiveServer(app) as server:
        server.app = app
        yield server


"""Batched generation in a child process, so that the server's own Python work cannot stall it.

The sampler makes thousands of small torch calls per batch, each of which releases and retakes the GIL. In
the server's process every Python step of the event loop (HTTP parsing, validation, publishing files and
JSON) is then a wait for the generating thread: a thread busy 30% of the time slowed batch-16 generation
1.8x here (152 -> 274 ms). The child process has its own interpreter and GIL and loads its own copy of the
pipeline; batches go to it over a pipe and come back as finished motions (joints already computed, so the
server only writes them out).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


class GenerationProcess:
    """``generate(requests) -> motions`` answered by a child process holding its own pipeline.

    One call at a time (the batcher's single generation thread); a child that dies is started again and
    the batch it held fails with a RuntimeError.
    """

    def __init__(self, model: str | Path | None, device: str | None, batch_size: int, start_timeout_s: float = 120.0):
        """``model``/``device`` as :meth:`MotionPipeline.from_pretrained` takes them (None: the bundled model,
        the default device). The child starts loading at once; :meth:`wait_ready` waits for it."""
        self.model = None if model is None else str(model)
        self.device, self.batch_size = device, batch_size
        self.start_timeout_s = start_timeout_s
        self._context = multiprocessing.get_context("spawn")  # no forked torch state
        self._lock = threading.Lock()
        self._process = None
        self._connection = None
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_child_main, args=(child, self.model, self.device),
                                              name="motionmillion-generate", daemon=True)  # fmt: skip
        self._process.start()
        child.close()
        self._connection = parent

    def wait_ready(self) -> None:
        """Block until the child has loaded its pipeline and warmed up; its load error is raised here."""
        if not self._connection.poll(self.start_timeout_s):
            raise RuntimeError(f"the generation process did not start within {self.start_timeout_s:g} s")
        try:
            status, payload = self._receive()
        except EOFError:
            self._process.join(timeout=5)
            raise RuntimeError(f"the generation process exited before loading the model (exit code "
                               f"{self._process.exitcode})") from None  # fmt: skip
        if status != "ready":
            raise RuntimeError(f"the generation process could not load the model: {payload}")

    def generate(self, requests: Sequence) -> list:
        with self._lock:
            try:
                self._connection.send(("generate", list(requests), self.batch_size))
                status, payload = self._receive()
            except (EOFError, OSError, BrokenPipeError) as err:
                log.error("the generation process stopped (%s); starting it again", err)
                self._restart()
                raise RuntimeError("the generation process stopped while generating; it was restarted") from None
        if status == "ok":
            return payload
        kind, message = payload
        raise (ValueError if kind == "ValueError" else RuntimeError)(message)

    def _receive(self):
        return self._connection.recv()

    def _restart(self) -> None:
        self._stop_process()
        self._start()
        self.wait_ready()

    def close(self) -> None:
        with self._lock:
            self._stop_process()

    def _stop_process(self) -> None:
        if self._process is None:
            return
        try:
            self._connection.send(("stop",))
        except (OSError, BrokenPipeError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._connection.close()
        self._process = None

    def __enter__(self) -> GenerationProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child_main(connection, model: str | None, device: str | None) -> None:
    """The child: load the pipeline, warm it up, then answer batches until told to stop."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which then stops this child
    try:
        from motionmillion.pipeline import GenerationRequest, MotionPipeline

        pipe = MotionPipeline.from_pretrained(model, device=device)
        list(pipe.generate([GenerationRequest("a person walks forward", seconds=1.0, seed=0)]))  # lazy inits
    except Exception as err:  # noqa: BLE001 - reported to the server, which stops with it
        connection.send(("error", f"{type(err).__name__}: {err}"))
        return
    connection.send(("ready", None))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if message[0] == "stop":
            return
        _, requests, batch_size = message
        try:
            motions = list(pipe.generate(requests, batch_size=batch_size))
            for motion in motions:
                motion.joints  # noqa: B018 - computed here (a cached property travels with the motion)
            connection.send(("ok", motions))
        except Exception as err:  # noqa: BLE001 - handed back to the batch that caused it
            kind = "ValueError" if isinstance(err, ValueError) else type(err).__name__
            connection.send(("error", (kind, str(err))))

"""Batched generation in a child process, so that the server's own Python work cannot stall it.

The sampler makes thousands of small torch calls per batch, each of which releases and retakes the GIL. In
the server's process every Python step of the event loop (HTTP parsing, validation, publishing files and
JSON) is then a wait for the generating thread: a thread busy 30% of the time slowed batch-16 generation
1.8x here (152 -> 274 ms). The child process has its own interpreter and GIL and loads its own copy of the
pipeline; batches go to it over a pipe and come back as finished motions (joints already computed, so the
server only writes them out).

With ``encode_texts`` (the server's own text encoder) the server encodes each batch's texts and sends the
features along, so a child loads no text encoder: a server with two children (one per core of a 2-core
CPU) peaks at 1.3 GB, against 1.6 GB with an encoder in each. :class:`GenerationPool` hands batches to
free children.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def warm_up(generate: Callable[[Sequence], list]) -> None:
    """One tiny generation so that the first user does not pay for lazy initialisation (~0.2 s)."""
    from motionmillion.pipeline import GenerationRequest

    list(generate([GenerationRequest("a person walks forward", seconds=1.0, seed=0)]))


class GenerationProcess:
    """``generate(requests) -> motions`` answered by a child process holding its own pipeline.

    One call at a time (a :class:`GenerationPool` gives each batch a free child); a child that dies is
    started again and the batch it held fails with a RuntimeError.
    """

    def __init__(self, model: str | Path | None, device: str | None, batch_size: int, start_timeout_s: float = 120.0,
                 encode_texts: Callable | None = None, text_encoder_info: dict | None = None):  # fmt: skip
        """``model``/``device`` as :meth:`MotionPipeline.from_pretrained` takes them (None: the bundled model,
        the default device). ``encode_texts(texts) -> TextEncoderOutput`` (with ``text_encoder_info``: its
        name, dim and max_length): the server's encoder, so the child loads none. The child starts loading
        at once; :meth:`wait_ready` waits for it."""
        self.model = None if model is None else str(model)
        self.device, self.batch_size = device, batch_size
        self.encode_texts, self.text_encoder_info = encode_texts, text_encoder_info
        self.start_timeout_s = start_timeout_s
        self._context = multiprocessing.get_context("spawn")  # no forked torch state
        self._lock = threading.Lock()
        self._process = None
        self._connection = None
        self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_child_main, args=(child, self.model, self.device,
                                              self.text_encoder_info), name="motionmillion-generate", daemon=True)  # fmt: skip
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
        if self.encode_texts is not None:  # the child cannot warm itself up without text features
            warm_up(self.generate)

    def generate(self, requests: Sequence) -> list:
        with self._lock:
            texts = None
            if self.encode_texts is not None:  # the child has no encoder: send what it would compute
                distinct = list(dict.fromkeys(r.conditioning_text for r in requests))
                encoded = self.encode_texts(distinct)
                texts = (distinct, encoded.features.cpu().numpy(), encoded.mask.cpu().numpy())
            try:
                self._connection.send(("generate", list(requests), self.batch_size, texts))
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


class GivenTextFeatures:
    """A child's text encoder: returns the features the server sent with the batch (no model loaded)."""

    def __init__(self, name: str, dim: int, max_length: int):
        self.name, self.dim, self.max_length = name, dim, max_length
        self._rows: dict[str, int] = {}
        self._features = self._mask = None

    def give(self, texts: list[str], features, mask) -> None:
        import torch

        self._rows = {text: i for i, text in enumerate(texts)}
        self._features, self._mask = torch.from_numpy(features), torch.from_numpy(mask)

    def encode(self, texts: list[str]):
        from motionmillion.text.encoders import TextEncoderOutput

        missing = [t for t in texts if t not in self._rows]
        if missing:
            raise RuntimeError(f"no text features were sent for {missing[0]!r}")
        rows = [self._rows[t] for t in texts]
        return TextEncoderOutput(self._features[rows], self._mask[rows])

    def to(self, device) -> GivenTextFeatures:
        return self


def _child_main(connection, model: str | None, device: str | None, text_encoder_info: dict | None) -> None:
    """The child: load the pipeline, warm it up, then answer batches until told to stop."""
    import signal

    from motionmillion.serve.logs import configure_logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which then stops this child
    configure_logging()  # its stderr is the server's: the same one-line format (e.g. for the pipeline's warnings)
    try:
        from motionmillion.pipeline import MotionPipeline, Plan

        given = GivenTextFeatures(**text_encoder_info) if text_encoder_info else None
        pipe = MotionPipeline.from_pretrained(model, device=device, text_encoder=given)
        if given is None:
            warm_up(lambda requests: list(pipe.run(Plan.batch(requests))))
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
        _, requests, batch_size, texts = message
        try:
            if given is not None:
                given.give(*texts)
            motions = list(pipe.run(Plan.batch(requests, batch_size)))
            for motion in motions:
                motion.joints  # noqa: B018 - computed here (a cached property travels with the motion)
            connection.send(("ok", motions))
        except Exception as err:  # noqa: BLE001 - handed back to the batch that caused it
            kind = "ValueError" if isinstance(err, ValueError) else type(err).__name__
            connection.send(("error", (kind, str(err))))


class GenerationPool:
    """``generate(requests)`` on whichever of ``size`` children is free (one batch per child at a time)."""

    def __init__(self, size: int, *args, **kwargs):
        self.processes = [GenerationProcess(*args, **kwargs) for _ in range(size)]
        self._free: queue.Queue[GenerationProcess] = queue.Queue()
        for process in self.processes:
            self._free.put(process)

    def wait_ready(self) -> None:
        for process in self.processes:
            process.wait_ready()

    def generate(self, requests: Sequence) -> list:
        process = self._free.get()
        try:
            return process.generate(requests)
        finally:
            self._free.put(process)

    def close(self) -> None:
        for process in self.processes:
            process.close()

    def __enter__(self) -> GenerationPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

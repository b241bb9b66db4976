"""``motionmillion serve`` as a process: its log lines (warnings on one line) and a graceful stop on SIGTERM/SIGINT."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

SERVER = textwrap.dedent("""
    import sys, warnings
    from fastapi import FastAPI
    from motionmillion.serve.cli import run_server
    from motionmillion.serve.logs import configure_logging

    configure_logging()
    warnings.warn("prompt 'a person dances \\U0001F483' contains emoji or symbols; the text encoder was trained on English")
    app = FastAPI()
    app.get("/healthz")(lambda: {"status": "ok"})
    run_server(app, "127.0.0.1", int(sys.argv[1]))
    print("run_server returned")
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], port: int, timeout: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the server did not come up: {process.communicate()[1][-2000:]}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen, sig: int) -> tuple[str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{signal.Signals(sig).name} did not stop the server: {process.communicate()[1][-2000:]}")
    assert process.returncode == 0, err
    return out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_gracefully_and_says_so(sig):
    port = _free_port()
    process = _start([sys.executable, "-c", SERVER, str(port)], port, timeout=60)
    out, err = _stop(process, sig)
    lines = err.strip().splitlines()
    assert f"INFO motionmillion.serve.cli: {signal.Signals(sig).name} received: shutting down" in lines[-2]
    assert lines[-1].endswith("INFO motionmillion.serve.cli: stopped")
    assert out.strip() == "run_server returned"  # the caller goes on (closes its generation processes)
    # A warning is one log line: no file name, no source line.
    (warning,) = [line for line in lines if "emoji" in line]
    assert re.fullmatch(r"\S+ \S+ WARNING motionmillion.serve: prompt 'a person dances 💃' contains emoji or symbols; "
                        r"the text encoder was trained on English", warning)  # fmt: skip
    assert len(lines) == 3 and "warnings.warn" not in err


@pytest.mark.slow
def test_the_real_command_logs_an_emoji_prompt_on_one_line_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "motionmillion.cli", "serve", "--port", str(port), "--workers", "1",
               "--device", "cpu", "--cache-dir", str(tmp_path)]  # fmt: skip
    process = _start(command, port, timeout=300)
    body = {"prompt": "a person dances 💃", "seconds": 1, "seed": 0}
    response = httpx.post(f"http://127.0.0.1:{port}/v1/generate", json=body, timeout=120)
    assert response.status_code == 200 and "emoji" in response.json()["motions"][0]["warning"]
    with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/generate/stream", json=body, timeout=120) as stream:
        done = json.loads([line for line in stream.iter_lines() if line.startswith("data: ")][-1][len("data: "):])
    assert "emoji" in done["warning"]
    _, err = _stop(process, signal.SIGTERM)
    lines = err.strip().splitlines()
    assert "model loaded in" in lines[0] and "SIGTERM received: shutting down" in lines[-2] and lines[-1].endswith("stopped")
    warned = [line for line in lines if "emoji" in line]
    # Once by the generation process, once by the server for the stream, each one line.
    assert len(warned) == 2 and all(" WARNING motionmillion.serve: prompt 'a person dances 💃'" in line for line in warned)
    assert "UserWarning" not in err and "warn(" not in err

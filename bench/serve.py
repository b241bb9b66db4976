"""Load benchmark of ``motionmillion serve``; prints one JSON object.

    OMP_NUM_THREADS=1 .venv/bin/python bench/serve.py [--clients 32] [--requests 640] [--sequential 40]
        [--rounds 4] [--seconds 4] [--max-time 120]

Starts the server (the bundled model unless --model) on 127.0.0.1 as a user would, waits for /healthz,
then runs, over loopback only and bounded in count and time, ``--rounds`` rounds of two phases (alternating,
so that both phases see the same mix of other jobs on a shared machine):
  - one client at a time: ``--sequential`` requests in all, one after another;
  - ``--clients`` concurrent clients, each sending its next request as soon as the last one is answered,
    ``--requests`` in all;
and after each round, while the server idles, one ``pipe.generate`` call of ``--clients`` requests in this
process: the most motions/s that batching them can give.
Every request is ``POST /v1/generate {"prompt", "seconds": 4, "seed"}`` (one motion). Reports requests/s,
motions/s, latency p50/p95/p99, errors and lost requests for both, the server's startup time to /healthz
200 and its peak resident memory (process tree, sampled every 50 ms), and the Python API's time for the
same call (``pipe.generate([GenerationRequest(...)])`` in this process, right after each one-at-a-time
request, so that both see the same machine load).
The load average is reported because other jobs on a shared machine change every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil

PROMPTS = ["a person walks forward", "a person waves with the right hand", "someone runs in a circle",
           "a person bows politely", "a person kicks with the left leg", "a man jumps up and down",
           "a person turns around", "a person dances happily"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PeakMemory(threading.Thread):
    """Samples the resident memory of a process and its children."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(self.every)


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    api_seconds: list[float] = field(default_factory=list)  # the Python API's time for the same calls
    motions: int = 0
    refused: int = 0  # answered, but not with a 200
    lost: int = 0  # no answer at all
    wall: float = 0.0  # client time, less the Python API calls made in between


def summary(runs: list[Run], stats: list[tuple[dict, dict]]) -> dict:
    """One phase over all rounds: throughput, latency percentiles, errors, and the server's batching."""
    latencies = np.array([x for run in runs for x in run.latencies] or [float("nan")])
    wall = sum(run.wall for run in runs)
    errors = sum(run.refused + run.lost for run in runs)
    batches = sum(after["batches"] - before["batches"] for before, after in stats)
    motions = sum(after["motions"] - before["motions"] for before, after in stats)
    busy = sum(after["generating_seconds"] - before["generating_seconds"] for before, after in stats)
    return {
        "requests": int(np.isfinite(latencies).sum()) + errors,
        "requests_per_second": round(float(np.isfinite(latencies).sum()) / wall, 2),
        "motions_per_second": round(sum(run.motions for run in runs) / wall, 2),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3),
        "latency_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "errors": errors,
        "lost": sum(run.lost for run in runs),
        "wall_s": round(wall, 2),
        "batching": {"batches": batches, "mean_batch": round(motions / max(batches, 1), 2),
                     "generator_busy": round(busy / wall, 3)},  # fmt: skip
    }


async def load(url: str, clients: int, total: int, seconds: float, max_time: float, seed0: int,
               python_api=None) -> Run:  # fmt: skip
    """``clients`` closed-loop clients sending ``total`` requests in all (or until ``max_time``).

    ``python_api(body)``, if given, makes the same motion through the Python API right after each answer,
    so that both see the same load on a shared machine."""
    run = Run()
    counter = iter(range(total))
    deadline = time.perf_counter() + max_time
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one_client() -> None:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                body = {"prompt": PROMPTS[i % len(PROMPTS)], "seconds": seconds, "seed": seed0 + i}
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/generate", json=body)
                except httpx.HTTPError:
                    run.lost += 1
                    continue
                if response.status_code != 200:
                    run.refused += 1
                    continue
                run.latencies.append(time.perf_counter() - start)
                run.motions += response.content.count(b'"id":')  # counted, not parsed: clients stay cheap
                if python_api is not None:
                    start = time.perf_counter()
                    python_api(body)
                    run.api_seconds.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        run.wall = time.perf_counter() - start - sum(run.api_seconds)
    return run


def python_api(model: str | None):
    """The Python API's call for the same body: ``pipe.generate([GenerationRequest(...)])`` + joints."""
    from motionmillion.pipeline import GenerationRequest, MotionPipeline

    pipe = MotionPipeline.from_pretrained(model)
    list(pipe.generate([GenerationRequest(PROMPTS[0], seconds=1.0, seed=0)]))  # warm-up, as the server does

    def call(body: dict) -> None:
        (motion,) = pipe.generate([GenerationRequest(body["prompt"], seconds=body["seconds"], seed=body["seed"])])
        motion.joints  # the server sends joints, so they are part of the call's work

    def batch_ceiling(seconds: float, size: int, repeats: int = 2) -> float:
        """Motions/s of one pipe.generate call for ``size`` requests: what the server's batching can reach."""
        requests = [GenerationRequest(PROMPTS[i % len(PROMPTS)], seconds=seconds, seed=i) for i in range(size)]
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for motion in pipe.generate(requests, batch_size=size):
                motion.joints
            times.append(time.perf_counter() - start)
        return size / statistics.median(times)

    call.batch_ceiling = batch_ceiling
    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640, help="requests in the concurrent run")
    parser.add_argument("--sequential", type=int, default=40, help="requests in the one-at-a-time run")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each motion")
    parser.add_argument("--rounds", type=int, default=4, help="the two phases alternate this many times")
    parser.add_argument("--max-time", type=float, default=120.0, help="upper bound on each phase of a round, seconds")
    args = parser.parse_args()

    api = python_api(args.model)  # loaded before the server starts, so it does not slow the startup
    port = free_port()
    command = [sys.executable, "-m", "motionmillion.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.model:
        command += ["--model", args.model]
    url = f"http://127.0.0.1:{port}"
    load_before = os.getloadavg()
    start = time.perf_counter()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(server.pid)
    memory.start()
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > 120:
                raise SystemExit("the server did not answer /healthz within 120 s")
            time.sleep(0.05)
        startup = time.perf_counter() - start
        cpu = psutil.Process(server.pid).cpu_times()
        startup_cpu = cpu.user + cpu.system  # what startup costs on an idle machine, whatever the load now
        # Rounds that alternate the phases, so that both see the same mix of other jobs on a shared machine.
        ones, manys, one_stats, many_stats, ceilings = [], [], [], [], []
        for r in range(args.rounds):
            before = httpx.get(url + "/v1/stats").json()
            ones.append(asyncio.run(load(url, 1, args.sequential // args.rounds, args.seconds, args.max_time,
                                         seed0=1000 * r, python_api=api)))  # fmt: skip
            middle = httpx.get(url + "/v1/stats").json()
            manys.append(asyncio.run(load(url, args.clients, args.requests // args.rounds, args.seconds,
                                          args.max_time, seed0=100_000 + 10_000 * r)))  # fmt: skip
            after = httpx.get(url + "/v1/stats").json()
            one_stats.append((before, middle))
            many_stats.append((middle, after))
            ceilings.append(api.batch_ceiling(args.seconds, args.clients))  # while the server idles
    finally:
        server.terminate()
        server.wait(30)
        memory.stopped.set()
        memory.join()
    one, many = summary(ones, one_stats), summary(manys, many_stats)
    api_p50 = statistics.median([x for run in ones for x in run.api_seconds])
    ceiling = statistics.median(ceilings)
    speedup = many["motions_per_second"] / max(one["motions_per_second"], 1e-9)
    result = {
        "model": args.model or "bundled",
        "motion_seconds": args.seconds,
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "startup_to_healthz_s": round(startup, 2),
        "startup_cpu_s": round(startup_cpu, 2),
        "server_peak_rss_mb": round(memory.peak / 2**20, 1),
        "one_client_at_a_time": one,
        f"{args.clients}_concurrent_clients": many,
        "python_api_p50_s": round(api_p50, 3),
        "lone_request_vs_python_api": round(one["latency_p50_s"] / api_p50, 3),
        "concurrent_vs_one_motions_per_second": round(speedup, 2),
        f"python_api_batch{args.clients}_motions_per_second": round(ceiling, 2),
        f"python_api_batch{args.clients}_vs_one_at_a_time": round(ceiling * api_p50, 2),
        "targets": {
            "concurrent >= 5x one-at-a-time motions/s": speedup >= 5,
            "concurrent p99 <= 3 s": many["latency_p99_s"] <= 3.0,
            "0 errors, 0 lost": many["errors"] == 0 and many["lost"] == 0 and one["errors"] == 0,
            "lone request within 20% of the Python API": one["latency_p50_s"] <= 1.2 * api_p50,
            "startup <= 15 s": startup <= 15.0,
            "peak memory <= 1.5 GB": memory.peak <= 1.5 * 2**30,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

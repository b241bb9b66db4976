"""No module is imported on a server thread while it answers requests (see the comment in serve/routes.py).

Python 3.11's ast module is not thread-safe, and an import can parse (anyio's lazy importer, matplotlib's rc
file): a server thread importing while the test's thread parses failed once with "SystemError: AST
constructor recursion depth mismatch" and a dropped connection. A fresh interpreter is needed to see which
imports are left for the server threads, hence the subprocess (in this one, other tests imported them all).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from motionmillion.export.fbx import find_blender

TESTS = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from types import SimpleNamespace

    import numpy as np

    from motionmillion.motion import Motion
    from motionmillion.motion.kinematics import rotations_from_positions
    from motionmillion.motion.representation import encode_272
    from motionmillion.motion.skeleton import TEMPLATE_REST_JOINTS
    from motionmillion.pipeline import ModelLimits, make_plan
    from motionmillion.serve.config import ServeConfig
    from motionmillion.serve.routes import create_app
    from serve.conftest import LiveServer

    class StillPipe:  # a pipeline whose every motion stands still: no model to load
        fps, max_seconds, folder = 30.0, 10.0, None
        generator = SimpleNamespace(config=SimpleNamespace(default_guidance=1.0, has_null_prefix=False, codebook_size=8))
        limits = ModelLimits(frames_per_token=4, max_motion_tokens=75, has_null_prefix=False, default_guidance=1.0,
                             length_condition=True)

        def plan(self, *args, **kwargs):  # the real checks, on the server thread as in the real server
            return make_plan(self.limits, *args, **kwargs)

        def understood(self, plan):
            return plan

        def run(self, plan):
            joints = np.repeat(TEMPLATE_REST_JOINTS[None], 10, axis=0)
            for request in plan.requests:
                yield Motion(encode_272(joints, rotations_from_positions(joints)), fps=self.fps, text=request.prompt)

    late = []

    class Spy:  # asked for every module not imported yet
        def find_spec(self, name, path=None, target=None):
            if threading.current_thread() is not threading.main_thread():
                late.append(f"{name} (on {threading.current_thread().name})")

    app = create_app(StillPipe(), ServeConfig(cache_dir=sys.argv[1]))
    with LiveServer(app) as server:
        sys.meta_path.insert(0, Spy())
        client = server.client
        statuses = [client.get(path).status_code for path in ("/", "/static/studio.js", "/static/studio.css",
                    "/static/vendor/three/three.module.js", "/docs", "/openapi.json", "/healthz", "/v1/model")]
        response = client.post("/v1/generate", json={"prompt": "a person stands", "seconds": 1, "seed": 0})
        statuses.append(response.status_code)
        statuses += [client.get(url).status_code for url in response.json()["motions"][0]["files"].values()]
        statuses += [client.post("/v1/generate", content=body, headers={"content-type": kind}).status_code
                     for body, kind in ((b"{", "application/json"), (b"{}", "text/plain"),
                                        (b"x" * 20000, "application/json"))]
        statuses.append(client.get("/v1/motions/0123.json").status_code)
        statuses.append(client.get("/v1/stats").status_code)
    print(json.dumps({"statuses": statuses, "late": late}))
""")


def test_requests_import_nothing_on_server_threads(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent / "src"), str(TESTS)])}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    files = 6 if find_blender() else 5  # npy json bvh mp4 glb, and fbx where Blender is installed
    assert result["statuses"] == [200] * 9 + [200] * files + [422, 415, 413, 404, 200], result["statuses"]
    assert result["late"] == []

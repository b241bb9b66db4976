import json
from pathlib import Path

from typer.testing import CliRunner

from motionmillion.cli import app

FIXTURE_BVH = Path(__file__).parent.parent / "fixtures" / "bvh"


def test_import_pack_stats_commands(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(app, ["data", "import-bvh", str(FIXTURE_BVH / "cmu-dance"), "--recipe", "cmu-dance", "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "imported 2 files" in result.output
    result = runner.invoke(app, ["data", "pack", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "packed/frames.npy").is_file()
    result = runner.invoke(app, ["data", "stats", str(out), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["clips"] == 4 and stats["clips_by_source"] == {"cmu-dance": 4}
    result = runner.invoke(app, ["data", "import-bvh", str(FIXTURE_BVH), "--recipe", "nope", "--out", str(out)])
    assert result.exit_code != 0 and "nope" in result.output
    result = runner.invoke(app, ["data", "stats", str(tmp_path / "missing")])
    assert result.exit_code == 2

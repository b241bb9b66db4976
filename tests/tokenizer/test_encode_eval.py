import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from motionmillion.tokenizer import encode as encode_module
from motionmillion.cli import app as root_app
from motionmillion.tokenizer.cli import app
from motionmillion.tokenizer.config import PRESETS
from motionmillion.tokenizer.data import MotionClips
from motionmillion.tokenizer.encode import encode_dataset
from motionmillion.tokenizer.encoded import EncodedTokens, EncodedTokensError
from motionmillion.tokenizer.evaluate import clip_errors
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.training import preset


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    torch.manual_seed(0)
    MotionTokenizer(preset(PRESETS, "tiny").model).save_pretrained(folder)
    return folder


def test_encode_writes_every_clip_and_resumes(tiny_dataset, model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(encode_module, "CHUNK", 4)
    out = tmp_path / "encoded"
    calls = {"n": 0}
    real_encode = MotionTokenizer.encode

    def dying_encode(self, x):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # killed in the third chunk
        return real_encode(self, x)

    monkeypatch.setattr(MotionTokenizer, "encode", dying_encode)
    with pytest.raises(KeyboardInterrupt):
        encode_dataset(model_dir, tiny_dataset, out, progress=False)
    assert len(list((out / ".parts").glob("part_*.npz"))) == 2
    monkeypatch.setattr(MotionTokenizer, "encode", real_encode)
    encode_dataset(model_dir, tiny_dataset, out, progress=False)
    assert not (out / ".parts").exists()

    tokens = EncodedTokens(out)
    model = MotionTokenizer.from_pretrained(model_dir)
    clips = MotionClips(tiny_dataset, "all", kind="t2m_60_300", min_frames=1)
    assert tokens.codebook_size == 125 and tokens.frames_per_token == 4
    assert "src/clip_10" not in tokens.names  # NaN clip skipped and listed
    assert any("src/clip_10: NaN" in s for s in json.loads((out / "skipped.json").read_text()))
    assert "src/Mclip_00" in tokens.names and len(tokens.codes("src/Mclip_00")) == 41 // 4  # odd length cropped
    for name in ("src/clip_03", "src/Mclip_00", "src/clip_short"):
        features = clips.clip(clips.names.index(name))
        length = len(features) - len(features) % 4
        x = torch.from_numpy(clips.normalizer.normalize(features[:length]))[None]
        assert np.array_equal(tokens.codes(name), model.encode(x)[0].numpy())
    assert tokens.codes(0).dtype == np.int32
    assert tokens.texts("src/clip_03") == ["a person moves (src/clip_03)"]
    assert [tokens.names[i] for i in tokens.split("test")] == ["src/clip_14", "src/clip_15", "src/clip_16"]

    np.save(out / "codes.npy", np.full(3, 999, dtype=np.int32))
    with pytest.raises(EncodedTokensError, match="codes.npy"):
        EncodedTokens(out)


def test_encode_writes_the_strata_of_imported_clips(model_dir, tmp_path):
    from pathlib import Path

    from motionmillion.data.importers import import_bvh
    from motionmillion.data.packed import pack_dataset

    dataset = tmp_path / "ds"
    import_bvh(Path(__file__).parents[1] / "fixtures/bvh/bandai", dataset, "bandai", workers=1, progress=False)
    pack_dataset(dataset, progress=False)
    encode_dataset(model_dir, dataset, tmp_path / "encoded", progress=False)
    strata = EncodedTokens(tmp_path / "encoded").strata()
    assert strata["bandai/dataset-1_bye_normal_001"] == strata["bandai/Mdataset-1_bye_normal_001"] == "bandai-1/bye"
    assert len(strata) == 6 and EncodedTokens(tmp_path / "encoded").names  # every clip has its stratum


def test_clip_errors_are_pelvis_aligned_millimetres():
    gt = np.random.default_rng(0).normal(size=(10, 22, 3))
    assert clip_errors(gt, gt)["mpjpe_mm"] == 0
    shifted = gt + np.array([1.0, 0.0, 0.0])  # a global shift: no pose error, 1 m root error
    errors = clip_errors(shifted, gt)
    assert errors["mpjpe_mm"] == pytest.approx(0, abs=1e-9) and errors["root_error_mm"] == pytest.approx(1000)
    bent = gt.copy()
    bent[:, 5] += np.array([0.0, 0.01, 0.0])  # one joint 1 cm off
    assert clip_errors(bent, gt)["mpjpe_mm"] == pytest.approx(10 / 22)


def test_eval_command_writes_json(tiny_dataset, model_dir, tmp_path):
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(root_app, ["eval", "tokenizer", "--model", str(model_dir), "--data", str(tiny_dataset),
                                           "--split", "test", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["clips"] == 3 and metrics["mpjpe_mm"] > 0 and 0 < metrics["code_usage"] <= 1
    for key in ("root_error_mm", "accel_error_mm_s2", "perplexity", "mpjpe_mm_frame_weighted"):
        assert key in metrics
    assert CliRunner().invoke(app, ["train", "--help"]).exit_code == 0


def test_eval_tokenizer_defaults_to_the_bundled_model_and_reads_an_unpacked_dataset(tiny_dataset, tmp_path):
    import shutil

    unpacked = tmp_path / "unpacked"
    shutil.copytree(tiny_dataset, unpacked, ignore=shutil.ignore_patterns("packed"))
    result = CliRunner().invoke(root_app, ["eval", "tokenizer", "--data", str(unpacked), "--split", "test"])
    assert result.exit_code == 0, result.output
    metrics, _ = json.JSONDecoder().raw_decode(result.output[result.output.index("{"):])
    assert metrics["clips"] == 3 and metrics["frames_per_token"] == 4 and "default_model" in metrics["model"]


def test_eval_normalises_with_the_tokenizers_own_stats_when_it_has_them(tiny_dataset, model_dir, tmp_path):
    import shutil

    from motionmillion.motion import Normalizer
    from motionmillion.tokenizer.evaluate import evaluate_tokenizer

    plain = evaluate_tokenizer(str(model_dir), str(tiny_dataset))
    assert plain["normalization"] == "the dataset's"
    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    dataset_stats = MotionClips(tiny_dataset, "test").normalizer
    Normalizer(dataset_stats.mean + 0.5 * dataset_stats.std, dataset_stats.std * 2).save(run / "normalization")
    own = evaluate_tokenizer(str(run), str(tiny_dataset))
    assert own["normalization"] == "the tokenizer's" and own["mpjpe_mm"] != plain["mpjpe_mm"]

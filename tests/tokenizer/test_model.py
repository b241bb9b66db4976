import json

import pytest

import torch

from motionmillion.tokenizer.config import PRESETS, TokenizerConfig
from motionmillion.tokenizer.losses import tokenizer_loss
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.training import apply_overrides, preset
from motionmillion.utils.model_folder import CheckpointError


def tiny_config(**changes) -> TokenizerConfig:
    base = dict(levels=[5, 5, 5], width=16, depth=2, dilation_growth=2, down_t=1, patch_size=2)
    return TokenizerConfig(**{**base, **changes})


@pytest.mark.parametrize("down_t,patch_size,method", [(1, 1, "haar"), (1, 2, "haar"), (2, 1, "haar"), (1, 2, "db2"), (0, 4, "rearrange")])
def test_shapes_and_frames_per_token(down_t, patch_size, method):
    model = MotionTokenizer(tiny_config(down_t=down_t, patch_size=patch_size, patch_method=method))
    fpt = patch_size * 2**down_t
    assert model.frames_per_token == fpt
    x = torch.randn(3, 8 * fpt, 272)
    ids = model.encode(x)
    assert ids.shape == (3, 8) and ids.dtype == torch.long and ids.max() < model.codebook_size
    assert model.decode(ids).shape == x.shape
    assert torch.allclose(model.decode(ids), model(x)[0], atol=1e-5)


def test_length_must_be_a_multiple_of_frames_per_token():
    model = MotionTokenizer(tiny_config())
    with pytest.raises(ValueError, match="multiple of frames_per_token 4"):
        model.encode(torch.randn(1, 10, 272))


def test_causal_decoding_streams():
    torch.manual_seed(0)
    model = MotionTokenizer(tiny_config(causal=True)).eval()
    ids = torch.randint(0, model.codebook_size, (2, 12))
    full = model.decode(ids)
    for n in (1, 5, 9):
        assert torch.allclose(model.decode(ids[:, :n]), full[:, : n * 4], atol=1e-5)
    # and encoding: the first tokens do not look at later frames
    x = torch.randn(1, 48, 272)
    assert torch.equal(model.encode(x[:, :24]), model.encode(x)[:, :6])


def test_non_causal_model_is_not_streaming():
    torch.manual_seed(0)
    model = MotionTokenizer(tiny_config(causal=False)).eval()
    ids = torch.randint(0, model.codebook_size, (1, 12))
    assert not torch.allclose(model.decode(ids[:, :5]), model.decode(ids)[:, :20], atol=1e-5)


def test_save_and_load_round_trip(tmp_path):
    model = MotionTokenizer(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = MotionTokenizer.from_pretrained(tmp_path)
    assert loaded.config == model.config
    x = torch.randn(2, 16, 272)
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert json.loads((tmp_path / "config.json").read_text())["frames_per_token"] == 4


def test_fp16_weights_load_into_an_fp32_model(tmp_path):
    from motionmillion.utils.model_folder import save_model_folder

    model = MotionTokenizer(preset(PRESETS, "tiny").model)
    save_model_folder(tmp_path, "motionmillion-fsq-tokenizer", dict(model.config.__dict__), model.state_dict(), dtype=torch.float16)
    loaded = MotionTokenizer.from_pretrained(tmp_path)  # the checksum matches the fp16 file
    weight = next(loaded.parameters())
    assert weight.dtype == torch.float32
    assert torch.equal(weight, next(model.parameters()).half().float())


def test_bad_checkpoints_name_the_file(tmp_path):
    MotionTokenizer(tiny_config()).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    good = weights.read_bytes()
    config = json.loads((tmp_path / "config.json").read_text())

    weights.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(CheckpointError, match="model.safetensors: corrupt or truncated"):
        MotionTokenizer.from_pretrained(tmp_path)
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        MotionTokenizer.from_pretrained(tmp_path)

    weights.write_bytes(good)
    (tmp_path / "config.json").write_text(json.dumps({**config, "width": 32}))
    with pytest.raises(CheckpointError, match="do not match .*config.json"):
        MotionTokenizer.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "frames_per_token": 2}))
    with pytest.raises(ValueError, match="config.json: frames_per_token"):
        MotionTokenizer.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        MotionTokenizer.from_pretrained(tmp_path)


def test_presets_and_overrides():
    paper = preset(PRESETS, "paper")
    assert paper.model.codebook_size == 64_000 and paper.model.frames_per_token == 2 and paper.model.patch_size == 1
    small = preset(PRESETS, "small")
    assert small.model.patch_size > 1 and small.train.window % small.model.frames_per_token == 0
    changed = apply_overrides(small, ["train.lr=0.003", "model.patch_method=db2", "model.levels=[8,8,8,5,5,5]"])
    assert changed.train.lr == 0.003 and changed.model.patch_method == "db2" and changed.model.codebook_size == 64_000
    with pytest.raises(ValueError, match="no setting 'train.nonsense'"):
        apply_overrides(small, ["train.nonsense=1"])
    assert apply_overrides(small, ["steps=7"]).train.steps == 7  # a bare key that one section has
    with pytest.raises(ValueError, match="multiple of frames_per_token"):
        apply_overrides(small, ["train.window=90"])


def test_paper_preset_trains_one_step_and_round_trips():
    config = preset(PRESETS, "paper")
    torch.manual_seed(0)
    model = MotionTokenizer(config.model)
    assert 11.3e6 < sum(p.numel() for p in model.parameters()) < 11.4e6  # fact sheet: 11.35 M
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(1, 32, 272)
    recon, ids = model(x)
    assert ids.shape == (1, 16) and recon.shape == x.shape
    loss, _ = tokenizer_loss(recon, x, config.loss)
    loss.backward()
    before = model.encoder.model[1].weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.encoder.model[1].weight)
    model.eval()
    ids = model.encode(x)
    assert torch.allclose(model.decode(ids), model(x)[0], atol=1e-4)

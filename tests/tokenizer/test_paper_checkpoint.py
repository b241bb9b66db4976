import pytest
import torch

from motionmillion.tokenizer.config import PRESETS
from motionmillion.tokenizer.model import MotionTokenizer
from motionmillion.utils.model_folder import CheckpointError
from motionmillion.tokenizer.paper_checkpoint import load_paper_checkpoint
from motionmillion.training import preset


def released_state_dict(model: MotionTokenizer) -> dict[str, torch.Tensor]:
    """Our weights under the release's names: DDP 'module.' + 'vqvae.' prefixes and the patcher buffers."""
    state = {f"module.vqvae.{k}": v.clone() for k, v in model.state_dict().items()}
    for owner in ("encoder.model.0", "decoder.model.6"):
        state[f"module.vqvae.{owner}.wavelets"] = torch.tensor([0.7071, 0.7071])
        state[f"module.vqvae.{owner}._arange"] = torch.arange(2)
    return state


def test_released_layout_loads_and_matches(tmp_path):
    torch.manual_seed(0)
    reference = MotionTokenizer(preset(PRESETS, "paper").model).eval()
    state = released_state_dict(reference)
    # The real key names of the fact sheet are all present in the synthetic release.
    for key in ("module.vqvae.encoder.model.1.weight", "module.vqvae.encoder.model.3.0.weight",
                "module.vqvae.encoder.model.3.1.model.2.conv1.weight", "module.vqvae.encoder.model.4.weight",
                "module.vqvae.decoder.model.0.weight", "module.vqvae.decoder.model.2.0.model.0.norm1.weight",
                "module.vqvae.decoder.model.2.2.weight", "module.vqvae.decoder.model.3.weight",
                "module.vqvae.decoder.model.5.weight", "module.vqvae.quantizer.project_in.weight",
                "module.vqvae.quantizer.project_out.bias"):
        assert key in state, key
    assert state["module.vqvae.quantizer.project_in.weight"].shape == (6, 512)
    assert state["module.vqvae.decoder.model.5.weight"].shape == (272, 512, 3)
    path = tmp_path / "fsq_net_6000000.pth"
    torch.save({"net": state}, path)
    loaded = load_paper_checkpoint(path)
    x = torch.randn(1, 32, 272)
    assert torch.equal(loaded.encode(x), reference.encode(x))
    assert torch.allclose(loaded(x)[0], reference(x)[0], atol=1e-6)


def test_mismatching_release_is_rejected(tmp_path):
    reference = MotionTokenizer(preset(PRESETS, "paper").model)
    state = released_state_dict(reference)
    state["module.vqvae.quantizer.project_in.weight"] = torch.zeros(4, 512)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="bad.pth: does not match"):
        load_paper_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pth: cannot read"):
        load_paper_checkpoint(path)

"""The paper's released evaluator (``--evaluator paper:DIR``): a checkpoint in the release's exact layout,
written with torch.save the way Lightning does, gives the same embeddings through our loader as through
encoders built like the paper's; hostile pickles are refused; a missing file is a one-line CLI error.

The paper's TEMOS encoders (MotionMillion-Codes ``mld/models/architectures/temos/``, the copy in
zju3dv/MotionStreamer ``Evaluator_272/mld/...`` at 9dacb73) are not among the peer files in
../shared/peer, so the reference below is written here to their structure: sequence-first tensors,
``torch.tile`` distribution tokens, a persistent ``pe`` buffer of shape (5000, 1, D), a motion mask built
for exactly 300 frames, ``.loc`` of the returned Normal, the attribute names that make the checkpoint keys.
"""

import os
import pathlib
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from motionmillion.cli import app
from motionmillion.evaluation.paper_evaluator import (
    CHECKPOINT_NAME,
    CONVERTED_DIR,
    TEXT_MODEL_DIR,
    TOKENIZER_DIR,
    PaperEvaluator,
    PaperEvaluatorError,
    read_checkpoint_state_dict,
)
from motionmillion.evaluation.protocol import GeneratorEvalConfig, evaluate_generator
from motionmillion.utils.model_folder import file_sha256

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "person", "someone", "walks", "forward", "kick", "##s",
         "the", "with", "right", "left", "leg", "hand", "bows", "wave", "politely", "says", "goodbye", "."]  # fmt: skip
LATENT, FF, HEADS = 16, 32, 4
# The reference keeps the paper's sequence-first layers, for which torch warns that it cannot use nested tensors.
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


# ----------------------------------------------------------------------------- reference, paper-shaped


class RefPositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-np.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return self.dropout(x + self.pe[: x.shape[0], :])


class RefVaeHead(nn.Module):
    def __init__(self, num_layers):
        super().__init__()
        self.mu_token = nn.Parameter(torch.randn(LATENT))
        self.logvar_token = nn.Parameter(torch.randn(LATENT))
        self.sequence_pos_encoding = RefPositionalEncoding(LATENT)
        layer = nn.TransformerEncoderLayer(d_model=LATENT, nhead=HEADS, dim_feedforward=FF, dropout=0.1, activation="gelu")
        self.seqTransEncoder = nn.TransformerEncoder(layer, num_layers=num_layers)

    def distribution(self, x, mask):
        """x (L, B, D) sequence-first, mask (B, L) -> Normal over (B, D)."""
        bs = x.shape[1]
        mu_token = torch.tile(self.mu_token, (bs,)).reshape(bs, -1)
        logvar_token = torch.tile(self.logvar_token, (bs,)).reshape(bs, -1)
        xseq = torch.cat((mu_token[None], logvar_token[None], x), 0)
        aug_mask = torch.cat((torch.ones((bs, 2), dtype=bool), mask), 1)
        final = self.seqTransEncoder(self.sequence_pos_encoding(xseq), src_key_padding_mask=~aug_mask)
        return torch.distributions.Normal(final[0], final[1].exp().pow(0.5))


class RefTextEncoder(RefVaeHead):
    def __init__(self, tokenizer_dir):
        super().__init__(num_layers=2)
        from transformers import AutoConfig, AutoTokenizer, DistilBertModel

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
        self.text_model = DistilBertModel(AutoConfig.from_pretrained(tokenizer_dir, local_files_only=True))
        self.projection = nn.Sequential(nn.ReLU(), nn.Linear(self.text_model.config.dim, LATENT))

    def forward(self, texts):
        enc = self.tokenizer(texts, return_tensors="pt", padding=True)
        # DistilBERT's own tokenizer returns these two only (this BERT-class one adds token_type_ids).
        hidden = self.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return self.distribution(self.projection(hidden).permute(1, 0, 2), enc["attention_mask"].to(dtype=bool))


class RefMotionEncoder(RefVaeHead):
    def __init__(self):
        super().__init__(num_layers=3)
        self.skel_embedding = nn.Linear(272, LATENT)
        self.max_len = 300

    def forward(self, features, lengths):
        mask = torch.arange(self.max_len).expand(len(lengths), self.max_len) < lengths.unsqueeze(1)
        return self.distribution(self.skel_embedding(features).permute(1, 0, 2), mask)


class FakeDictConfig:
    """Pickles as omegaconf.dictconfig.DictConfig does (NEWOBJ + BUILD with nested metadata)."""

    __module__, __qualname__ = "omegaconf.dictconfig", "DictConfig"

    def __init__(self, content):
        self._content = content
        self._metadata = {"ref_type": __import__("typing").Any, "object_type": dict}


def write_release(folder, monkeypatch, extra=None):
    """A release folder: epoch=199.ckpt (Lightning layout), mean/std, a tiny DistilBERT repository folder."""
    from transformers import DistilBertConfig

    torch.manual_seed(0)
    tokenizer_dir = folder / TOKENIZER_DIR
    tokenizer_dir.mkdir(parents=True)
    (tokenizer_dir / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    DistilBertConfig(vocab_size=len(WORDS), dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64).save_pretrained(tokenizer_dir)
    text, motion = RefTextEncoder(tokenizer_dir).eval(), RefMotionEncoder().eval()
    state = {f"textencoder.{k}": v for k, v in text.state_dict().items()}
    state.update({f"motionencoder.{k}": v for k, v in motion.state_dict().items()})
    state["motiondecoder.final.weight"] = torch.randn(272, LATENT)  # TEMOS's decoder: not part of the evaluator
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.dictconfig = types.ModuleType("omegaconf.dictconfig")
    omegaconf.dictconfig.DictConfig = FakeDictConfig
    monkeypatch.setitem(sys.modules, "omegaconf", omegaconf)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", omegaconf.dictconfig)
    checkpoint = {
        "epoch": 199, "global_step": 12345, "pytorch-lightning_version": "1.7.0", "state_dict": state,
        "hyper_parameters": {"cfg": FakeDictConfig({"lr": 1e-4, "folder": pathlib.PurePosixPath("/exp/tmr")}),
                             "best": np.float64(0.5)},
        "callbacks": {"ModelCheckpoint{'monitor': None}": {"best_model_score": torch.tensor(0.1), "dirpath": "/exp"}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}], "lr_schedulers": [],
        **(extra or {}),
    }  # fmt: skip
    torch.save(checkpoint, folder / CHECKPOINT_NAME)
    rng = np.random.default_rng(1)
    np.save(folder / "mean.npy", rng.normal(size=272))
    np.save(folder / "std.npy", rng.uniform(0.5, 1.5, size=272))
    return text, motion


def reference_motion_embeddings(motion_encoder, folder, clips):
    """The wrapper's get_motion_embeddings on de-normalised motions zero-padded to 300 frames."""
    mean, std = np.load(folder / "mean.npy"), np.load(folder / "std.npy")
    padded = torch.zeros(len(clips), 300, 272)
    for i, clip in enumerate(clips):
        padded[i, : len(clip)] = torch.from_numpy(clip)
    normalized = (padded - torch.from_numpy(mean)) / torch.from_numpy(std)
    with torch.no_grad():
        return motion_encoder(normalized.float(), torch.tensor([len(c) for c in clips])).loc.numpy()


@pytest.fixture
def release(tmp_path, monkeypatch):
    folder = tmp_path / "paper_evaluator"
    text, motion = write_release(folder, monkeypatch)
    return folder, text, motion


def test_same_embeddings_as_the_paper_encoders(release):
    folder, text, motion = release
    ev = PaperEvaluator.from_release(folder)
    assert ev.checksum == file_sha256(folder / CHECKPOINT_NAME)
    assert (ev.config.text_layers, ev.config.motion_layers, ev.config.latent_dim, ev.config.ff_size) == (2, 3, LATENT, FF)
    assert (folder / CONVERTED_DIR / TEXT_MODEL_DIR / "tokenizer.json").is_file()  # the vocabulary as JSON

    texts = ["a person walks forward", "someone kicks with the left leg.", "A Person BOWS politely", "wave goodbye"]
    with torch.no_grad():
        expected_text = text(texts).loc.numpy()
    np.testing.assert_allclose(ev.encode_text(texts), expected_text, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ev.encode_text(texts[2:3]), expected_text[2:3], atol=1e-5, rtol=0)  # batch-independent

    rng = np.random.default_rng(2)
    clips = [(rng.normal(size=(n, 272)) * 0.3).astype(np.float32) for n in (60, 300, 17, 200)]
    np.testing.assert_allclose(ev.encode_motion(clips), reference_motion_embeddings(motion, folder, clips), atol=1e-5, rtol=0)
    assert abs(np.linalg.norm(expected_text, axis=1) - 1).max() > 0.1  # raw means, as the paper's metrics use


def test_converted_once_and_rebuilt_when_the_release_changes(release):
    folder = release[0]
    PaperEvaluator.from_release(folder)
    config = folder / CONVERTED_DIR / "config.json"
    first = config.stat().st_mtime_ns
    PaperEvaluator.from_release(folder)
    assert config.stat().st_mtime_ns == first
    os.utime(folder / "mean.npy", ns=(first + 10**9, first + 10**9))
    PaperEvaluator.from_release(folder)
    assert config.stat().st_mtime_ns != first


def test_hostile_pickles_are_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = tmp_path / "evil"
    write_release(folder, monkeypatch, extra={"hyper_parameters": {"cfg": Evil()}})
    with pytest.raises(PaperEvaluatorError, match=r"refused: the pickle names (posix|nt)\.system") as err:
        PaperEvaluator.from_release(folder)
    assert str(folder / CHECKPOINT_NAME) in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError) and not marker.exists()

    plain = tmp_path / "plain.ckpt"  # a bare pickle, not torch.save's zip: refused before unpickling
    import pickle

    plain.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(PaperEvaluatorError, match="not a readable torch checkpoint"):
        read_checkpoint_state_dict(plain)
    assert not marker.exists()


def test_generator_eval_runs_on_the_paper_evaluator(release, fake_pipeline, synthetic_dataset):
    ev = PaperEvaluator.from_release(release[0])
    config = GeneratorEvalConfig(repeats=1, mm_texts=0, own_length=False, seed=3)
    result = evaluate_generator(fake_pipeline, ev, synthetic_dataset, config, evaluator_path=f"paper:{release[0]}", progress=False)
    assert result["protocol"]["evaluator_sha256"] == ev.checksum and result["protocol"]["evaluator_max_frames"] == 300
    gen = result["results"]["gt_length"]
    assert gen["fid"]["mean"] >= 0 and 0 <= gen["r_precision_top3"]["mean"] <= 1 and gen["diversity"]["mean"] > 0


def test_cli_names_the_missing_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    base = ["eval", "generator", "--model", str(model), "--data", str(tmp_path), "--json", str(tmp_path / "o.json")]
    result = CliRunner().invoke(app, [*base, "--evaluator", f"paper:{tmp_path / 'nowhere'}"])
    assert result.exit_code == 2 and "nowhere: paper evaluator folder not found" in result.output
    incomplete = tmp_path / "release"
    incomplete.mkdir()
    (incomplete / CHECKPOINT_NAME).write_bytes(b"")
    result = CliRunner().invoke(app, [*base, "--evaluator", f"paper:{incomplete}"])
    assert result.exit_code == 2, result.output
    assert f"{incomplete / 'mean.npy'}: missing" in result.output and len(result.output.strip().splitlines()) == 1
    prompts = ["eval", "prompts", "--prompts", str(tmp_path / "p.txt"), "--model", str(model), "--json", str(tmp_path / "o.json")]
    result = CliRunner().invoke(app, [*prompts, "--evaluator", f"paper:{incomplete}"])
    assert result.exit_code == 2 and "for `eval generator` only" in result.output

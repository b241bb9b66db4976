"""The paper's released text-motion evaluator, so generator figures can be compared with the paper's.

What the release is: ``prepare/download_t2m_evaluators_on_motionmillion.sh`` fetches one Lightning
checkpoint, ``epoch=199.ckpt``, which ``models/evaluator_wrapper_motionmillion_rpr272.py`` loads into two
TEMOS/TMR encoders (``mld/models/architectures/temos/``; fact sheet 6.1). It is not the HumanML3D
GloVe/BiGRU evaluator (``models/evaluator_wrapper.py``, unused by MotionMillion: the GloVe files are
loaded there but never read, so they are not needed here).

- Text: frozen ``distilbert-base-uncased`` (its weights are inside the checkpoint, its tokenizer is
  not) -> ReLU -> Linear(768 -> 512) -> [mu token, logvar token, words] + sinusoidal positions ->
  4-layer post-norm transformer (4 heads, FFN 1024, GELU) with a key-padding mask -> output at mu.
- Motion: (T, 272) features normalised with the MotionMillion mean/std -> Linear(272 -> 512) per frame
  -> the same token/position/transformer stack -> output at mu.
- The embedding every metric uses is that mean (``Normal(mu, sigma).loc``): 512-d, not unit length.

Release folder for ``--evaluator paper:DIR``:

    DIR/epoch=199.ckpt              the downloaded checkpoint, as released
    DIR/mean.npy, DIR/std.npy       dataset/MotionMillion/mean_std/vector_272/ of the paper's code
    DIR/distilbert-base-uncased/    config.json + tokenizer files (vocab.txt or tokenizer.json) of that
                                    Hugging Face repository (the paper's code fetches it by name)

The first use converts it into ``DIR/converted/``: ``config.json`` + ``model.safetensors`` (the two
heads and the motion encoder), ``text_model/`` (DistilBERT as a Hugging Face folder: safetensors, config,
and the vocabulary as ``tokenizer.json``, read by the project's ``TextEncoder``) and ``normalization/``.
Later uses read only that folder; it is rebuilt when a source file changes (size or modification time). The checkpoint is read
with ``torch.load(weights_only=True)``: no code from the file runs. Lightning stores hyper-parameters
and callback states beside the weights (omegaconf containers, paths, numpy scalars); those globals are
replaced by inert stand-ins, and a file naming any other global is refused.

Differences from the paper's wrapper, all without effect on the embeddings of valid inputs: the
sequences are batch-first (same weights); motions are padded to the batch's longest clip instead of
exactly 300 frames (padded frames are masked out either way) and clips longer than 300 frames, which the
paper's encoder cannot take, are centre-cropped like the project's evaluator does; texts longer than
DistilBERT's 512 positions, on which the paper's code fails, are truncated with a warning.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from motionmillion.evaluation.evaluator import NORMALIZATION_DIR, EmbeddingEvaluator
from motionmillion.motion.normalization import Normalizer
from motionmillion.motion.representation import FEATURE_DIM
from motionmillion.utils import model_folder
from motionmillion.utils.model_folder import CheckpointError, check_state_dict, file_sha256

log = logging.getLogger(__name__)

MODEL_TYPE = "motionmillion-paper-evaluator"
CHECKPOINT_NAME = "epoch=199.ckpt"
TOKENIZER_DIR = "distilbert-base-uncased"
CONVERTED_DIR = "converted"
TEXT_MODEL_DIR = "text_model"
SOURCE_FILES = (CHECKPOINT_NAME, "mean.npy", "std.npy", f"{TOKENIZER_DIR}/config.json")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json")  # those present are used
# Not recoverable from the weights: the wrapper builds both encoders with the constructors' default.
PAPER_NUM_HEADS = 4
# The paper's motion encoder builds its mask for exactly this many frames.
PAPER_MAX_FRAMES = 300

# Globals a Lightning checkpoint carries outside ``state_dict``; they become inert stand-ins.
_METADATA_MODULES = ("omegaconf.", "pytorch_lightning.", "lightning.", "lightning_fabric.", "pathlib.",
                     "argparse.", "typing.", "numpy.", "enum.", "datetime.")  # fmt: skip
_METADATA_BUILTINS = {f"builtins.{name}" for name in
                      ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bool", "bytes", "object")}


class PaperEvaluatorError(CheckpointError):
    """A release folder or checkpoint that cannot be used as the paper's evaluator."""


@dataclass
class PaperEvaluatorConfig:
    latent_dim: int = 512
    ff_size: int = 1024
    text_layers: int = 4
    motion_layers: int = 4
    num_heads: int = PAPER_NUM_HEADS
    max_frames: int = PAPER_MAX_FRAMES
    positions: int = 5000  # rows of the stored sinusoid table
    text_dim: int = 768  # DistilBERT's hidden size
    text_max_length: int = 512  # DistilBERT's positions

    @classmethod
    def from_dict(cls, data: dict) -> PaperEvaluatorConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ----------------------------------------------------------------------------------------- modules


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) float32 sin/cos position table, computed as the paper's PositionalEncoding does."""
    position = torch.arange(0, length, dtype=torch.float).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2).float() * (-np.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class GaussianTokenEncoder(nn.Module):
    """ACTOR/TEMOS head: learned mu and logvar tokens before the sequence, a fixed sinusoid table added
    to all positions, a post-norm GELU transformer; returns the output at the mu token (the mean)."""

    def __init__(self, latent_dim: int, ff_size: int, num_layers: int, num_heads: int, positions: int):
        super().__init__()
        self.mu_token = nn.Parameter(torch.zeros(latent_dim))
        self.logvar_token = nn.Parameter(torch.zeros(latent_dim))  # attended to, its output unused
        self.register_buffer("positions", torch.zeros(positions, latent_dim))  # the checkpoint's table
        layer = nn.TransformerEncoderLayer(latent_dim, num_heads, ff_size, dropout=0.0, activation="gelu", batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), mask (B, L) True at real tokens -> (B, D)."""
        tokens = torch.stack([self.mu_token, self.logvar_token]).expand(len(x), -1, -1)
        h = torch.cat([tokens, x], dim=1) + self.positions[: x.shape[1] + 2]
        keep = torch.cat([mask.new_ones(len(x), 2), mask], dim=1)
        return self.transformer(h, src_key_padding_mask=~keep)[:, 0]


class PaperTextHead(nn.Module):
    """Over DistilBERT's last hidden states (the frozen encoder lives in a TextEncoder)."""

    def __init__(self, config: PaperEvaluatorConfig):
        super().__init__()
        self.projection = nn.Linear(config.text_dim, config.latent_dim)
        self.head = GaussianTokenEncoder(config.latent_dim, config.ff_size, config.text_layers, config.num_heads, config.positions)

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """words (B, L, 768), mask (B, L) True at real tokens -> (B, D)."""
        return self.head(self.projection(torch.relu(words)), mask)


class PaperMotionEncoder(nn.Module):
    def __init__(self, config: PaperEvaluatorConfig):
        super().__init__()
        self.input_proj = nn.Linear(FEATURE_DIM, config.latent_dim)
        self.head = GaussianTokenEncoder(config.latent_dim, config.ff_size, config.motion_layers, config.num_heads, config.positions)

    def forward(self, motion: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """motion (B, T, 272) normalised, mask (B, T) True at real frames -> (B, D)."""
        return self.head(self.input_proj(motion), mask)


class PaperEvaluatorModel(nn.Module):
    def __init__(self, config: PaperEvaluatorConfig):
        super().__init__()
        self.config = config
        self.text = PaperTextHead(config)
        self.motion = PaperMotionEncoder(config)


# ----------------------------------------------------------------------------------------- release -> ours


class _Inert:
    """Stand-in for a class or function a checkpoint names in its metadata: takes anything, does nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _is_metadata_global(name: str) -> bool:
    return name.startswith(_METADATA_MODULES) or name in _METADATA_BUILTINS


def read_checkpoint_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint, read with ``weights_only=True``; raises PaperEvaluatorError."""
    path = Path(path)
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as err:  # not a zip checkpoint, truncated, ...
        raise PaperEvaluatorError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    refused = sorted(n for n in names if not _is_metadata_global(n))
    if refused:
        raise PaperEvaluatorError(f"{path}: refused: the pickle names {', '.join(refused[:3])}; only tensors, "
                                  "plain containers and Lightning/omegaconf metadata are accepted")  # fmt: skip
    stand_ins = [(type(name.rsplit(".", 1)[-1], (_Inert,), {}), name) for name in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the restricted unpickler raises several types
        raise PaperEvaluatorError(f"{path}: cannot read the checkpoint ({type(err).__name__}: {err})") from err
    state = raw.get("state_dict") if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise PaperEvaluatorError(f"{path}: expected a Lightning checkpoint whose 'state_dict' holds tensors")
    return state


def _head_keys(prefix: str, ours: str, key: str, value: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """Paper name of a GaussianTokenEncoder weight -> ours (None: not one)."""
    name = key[len(prefix) :]
    if name in ("mu_token", "logvar_token"):
        return f"{ours}.head.{name}", value
    if name == "sequence_pos_encoding.pe":  # (N, 1, D) sequence-first table
        return f"{ours}.head.positions", value.reshape(value.shape[0], -1)
    if name.startswith("seqTransEncoder."):
        return f"{ours}.head.transformer.{name[len('seqTransEncoder.'):]}", value
    return None


def convert_state_dict(state: dict[str, torch.Tensor]) -> tuple[PaperEvaluatorConfig, dict, dict]:
    """The released keys (``textencoder.*``, ``motionencoder.*``; anything else, e.g. a motion decoder,
    is left out as the wrapper does) -> the config their shapes imply, our heads' and motion encoder's
    weights, and DistilBERT's weights under its own Hugging Face names."""
    ours: dict[str, torch.Tensor] = {}
    text_model: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("textencoder.text_model."):
            name = key[len("textencoder.text_model.") :]
            if name != "embeddings.position_ids":  # a buffer older transformers versions saved
                text_model[name] = value.float() if value.is_floating_point() else value
            continue
        if key.startswith("textencoder.projection.1."):  # Sequential(ReLU, Linear)
            ours[f"text.projection.{key.rsplit('.', 1)[1]}"] = value
            continue
        if key.startswith("motionencoder.skel_embedding."):
            ours[f"motion.input_proj.{key.rsplit('.', 1)[1]}"] = value
            continue
        for prefix, side in (("textencoder.", "text"), ("motionencoder.", "motion")):
            if key.startswith(prefix):
                mapped = _head_keys(prefix, side, key, value)
                if mapped is None:
                    raise PaperEvaluatorError(f"unexpected key {key!r}: not the MotionMillion evaluator's layout")
                ours[mapped[0]] = mapped[1]
    needed = ("motion.head.mu_token", "motion.input_proj.weight", "motion.head.transformer.layers.0.linear1.weight",
              "text.projection.weight")
    missing = [k for k in needed if k not in ours]
    if missing:
        raise PaperEvaluatorError(f"missing {missing}: not the MotionMillion evaluator's layout")
    if ours["motion.input_proj.weight"].shape[1] != FEATURE_DIM:
        raise PaperEvaluatorError(f"the motion encoder takes {ours['motion.input_proj.weight'].shape[1]}-dim frames, "
                                  f"not the {FEATURE_DIM}-dim representation")  # fmt: skip

    latent_dim = int(ours["motion.head.mu_token"].shape[0])
    for side in ("text", "motion"):  # a checkpoint saved with the table as a non-persistent buffer
        ours.setdefault(f"{side}.head.positions", sinusoid_table(PaperEvaluatorConfig.positions, latent_dim))

    def layers(side: str) -> int:
        found = {int(k.split(".")[4]) for k in ours if k.startswith(f"{side}.head.transformer.layers.")}
        return len(found)

    config = PaperEvaluatorConfig(
        latent_dim=latent_dim,
        ff_size=int(ours["motion.head.transformer.layers.0.linear1.weight"].shape[0]),
        text_layers=layers("text"), motion_layers=layers("motion"),
        positions=int(ours["motion.head.positions"].shape[0]), text_dim=int(ours["text.projection.weight"].shape[1]),
    )  # fmt: skip
    return config, {k: v.float() if v.is_floating_point() else v for k, v in ours.items()}, text_model


def _fingerprint(release: Path) -> dict[str, list[int]]:
    """(size, mtime_ns) of every source file: the converted folder is rebuilt when one changes."""
    names = [*SOURCE_FILES, *(f"{TOKENIZER_DIR}/{f}" for f in TOKENIZER_FILES if (release / TOKENIZER_DIR / f).is_file())]
    stats = {name: (release / name).stat() for name in names}
    return {name: [s.st_size, s.st_mtime_ns] for name, s in stats.items()}


def check_release(release: str | Path) -> Path:
    """The release folder, or FileNotFoundError naming the first missing file."""
    release = Path(release)
    if not release.is_dir():
        raise FileNotFoundError(f"{release}: paper evaluator folder not found (it holds {CHECKPOINT_NAME}, mean.npy, "
                                f"std.npy and {TOKENIZER_DIR}/; see motionmillion.evaluation.paper_evaluator)")  # fmt: skip
    hints = {CHECKPOINT_NAME: "from prepare/download_t2m_evaluators_on_motionmillion.sh of the paper's code",
             "mean.npy": "dataset/MotionMillion/mean_std/vector_272/mean.npy of the paper's code",
             "std.npy": "dataset/MotionMillion/mean_std/vector_272/std.npy of the paper's code",
             f"{TOKENIZER_DIR}/config.json": f"the Hugging Face repository {TOKENIZER_DIR}"}  # fmt: skip
    for name, hint in hints.items():
        if not (release / name).is_file():
            raise FileNotFoundError(f"{release / name}: missing ({hint})")
    tokenizer = release / TOKENIZER_DIR
    if not any((tokenizer / f).is_file() for f in ("vocab.txt", "tokenizer.json")):  # the vocabulary
        raise FileNotFoundError(f"{tokenizer / 'vocab.txt'}: missing (the tokenizer of the Hugging Face repository {TOKENIZER_DIR})")
    return release


def convert_release(release: str | Path, out: str | Path) -> Path:
    """Convert a release folder into ``out`` (written beside it, then renamed into place); returns ``out``."""
    from transformers import AutoConfig, AutoTokenizer, DistilBertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Writing model shards" bar for one small file is noise
    release, out = check_release(release), Path(out)
    tokenizer_dir = release / TOKENIZER_DIR
    try:
        text_config = AutoConfig.from_pretrained(tokenizer_dir, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError) as err:
        raise PaperEvaluatorError(f"{tokenizer_dir}: not a readable Hugging Face model folder ({err})") from err
    if text_config.model_type != "distilbert":
        raise PaperEvaluatorError(f"{tokenizer_dir / 'config.json'}: model_type {text_config.model_type!r}, expected 'distilbert'")
    checkpoint = release / CHECKPOINT_NAME
    config, state, text_state = convert_state_dict(read_checkpoint_state_dict(checkpoint))
    config.text_max_length = int(text_config.max_position_embeddings)
    check_state_dict(PaperEvaluatorModel(config), state, f"{checkpoint}: does not match the paper's encoders")
    text_model = DistilBertModel(text_config)
    check_state_dict(text_model, text_state, f"{checkpoint}: its DistilBERT does not match {tokenizer_dir / 'config.json'}")
    text_model.load_state_dict(text_state, strict=True)
    normalizer = Normalizer.load(release)
    source = {"files": _fingerprint(release), "checkpoint_sha256": file_sha256(checkpoint)}

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        text_model.save_pretrained(work / TEXT_MODEL_DIR)
        tokenizer.save_pretrained(work / TEXT_MODEL_DIR)  # tokenizer.json: the vocabulary as JSON
        normalizer.save(work / NORMALIZATION_DIR)
        text_sha256 = file_sha256(work / TEXT_MODEL_DIR / model_folder.WEIGHTS_NAME)
        model_folder.save_model_folder(work, MODEL_TYPE, {**asdict(config), "source": source, "text_model_sha256": text_sha256}, state)
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    finally:
        if work.exists():
            shutil.rmtree(work)
    log.info("converted the paper's evaluator %s into %s", checkpoint, out)
    return out


# ----------------------------------------------------------------------------------------- evaluator


class PaperEvaluator(EmbeddingEvaluator):
    """The paper's evaluator behind the project's evaluator interface (``encode_text``, ``encode_motion``).

    >>> ev = PaperEvaluator.from_release("checkpoints/paper_evaluator")   # converts once
    >>> ev.encode_text(["a person walks forward"]).shape                  # (1, 512), not unit length
    """

    def __init__(self, model: PaperEvaluatorModel, normalizer: Normalizer, text_model_path: str | Path,
                 text_encoder=None, checksum: str = "", folder=None):  # fmt: skip
        config = model.config
        super().__init__(normalizer, config.max_frames, config.latent_dim, str(text_model_path), config.text_max_length,
                         text_encoder, checksum)  # fmt: skip
        self.model = model.eval()
        self.config = config
        self.folder = Path(folder) if folder is not None else None

    @classmethod
    def from_release(cls, release: str | Path) -> PaperEvaluator:
        """Load ``release/converted``, converting the release first when that is missing or out of date."""
        release = check_release(release)
        converted = release / CONVERTED_DIR
        try:
            stored = model_folder.read_config(converted, "converted paper evaluator").get("source", {}).get("files")
        except CheckpointError:
            stored = None
        if stored != _fingerprint(release):
            if not os.access(release, os.W_OK):
                raise PaperEvaluatorError(f"{release}: not writable; the converted evaluator goes to {converted} "
                                          "(copy the release folder somewhere writable)")  # fmt: skip
            convert_release(release, converted)
        return cls.from_pretrained(converted)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> PaperEvaluator:
        """Load a converted folder (safetensors, JSON config and vocabulary; nothing is unpickled)."""
        folder = Path(folder)
        data = model_folder.read_config(folder, "converted paper evaluator")
        model_folder.verify_checksum(folder)
        text_weights = folder / TEXT_MODEL_DIR / model_folder.WEIGHTS_NAME
        if not text_weights.is_file() or file_sha256(text_weights) != data.get("text_model_sha256"):
            raise PaperEvaluatorError(f"{text_weights}: missing or not the file {folder / model_folder.CONFIG_NAME} records; "
                                      "delete the folder to convert the release again")  # fmt: skip
        model = PaperEvaluatorModel(PaperEvaluatorConfig.from_dict(data))
        model_folder.load_weights(folder, model)
        checksum = data.get("source", {}).get("checkpoint_sha256", "")  # reports cite the released file
        return cls(model, Normalizer.load(folder / NORMALIZATION_DIR), folder / TEXT_MODEL_DIR, checksum=checksum, folder=folder)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        out = self.text_encoder.encode(texts)  # DistilBERT's last hidden states (truncated at 512 tokens, with a warning)
        return self.model.text(out.features, out.mask).numpy()

    def _embed_motions(self, batch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.motion(batch, mask)

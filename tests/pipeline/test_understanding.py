"""Prompt understanding: caption bank, coverage, retrieval and language-model rewriting."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from motionmillion.pipeline.understanding import coverage_of, understand, understood_requests
from motionmillion.text.rewrite import BANK_DIR, CaptionBank, LanguageModelRewriter, RetrievalRewriter, parse_rewrite

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests/fixtures"


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def toy_bank() -> CaptionBank:
    """Four training captions on the axes of a 4-d space and one unknown-movement caption."""
    captions = ["A person walks forward.", "A person kicks with the left leg.", "A person kicks with the right leg.",
                "A person bows sadly."]  # fmt: skip
    embeddings = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0.1, 0), unit(0, 1, -0.1, 0), unit(0, 0, 0, 1)])
    return CaptionBank(captions, ["walk", "kick", "kick", "bow"], ["normal", "normal", "normal", "sad"],
                       np.array([8.0, 3.0, 4.0, 5.0], dtype=np.float32), embeddings, "toy",
                       ["a person claps"], unit(0, 0, 1, 0)[None])  # fmt: skip


def test_bank_round_trip_keeps_captions_labels_and_cosines(tmp_path):
    bank = toy_bank()
    bank.save(tmp_path / BANK_DIR)
    loaded = CaptionBank.load(tmp_path / BANK_DIR)
    assert loaded.captions == bank.captions and loaded.contents == bank.contents and loaded.styles == bank.styles
    assert loaded.other_captions == bank.other_captions and loaded.text_encoder == "toy"
    np.testing.assert_allclose(loaded.seconds, bank.seconds)
    np.testing.assert_allclose(loaded.embeddings @ loaded.embeddings.T, bank.embeddings @ bank.embeddings.T, atol=0.02)
    assert loaded.embeddings.dtype == np.float32 and loaded.other_embeddings.shape == (1, 4)


def test_unreadable_bank_is_a_clear_error(tmp_path):
    (tmp_path / "captions.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable caption bank"):
        CaptionBank.load(tmp_path)


def test_coverage_is_high_for_known_and_low_when_an_unknown_movement_fits_better():
    bank = toy_bank()
    known, nearest, _ = coverage_of(bank, unit(1, 0, 0, 0), k=1)
    unknown, _, other = coverage_of(bank, unit(0, 0.4, 1, 0), k=1)
    assert 0.9 < known <= 1.0 and bank.captions[nearest] == "A person walks forward."
    assert 0.0 <= unknown < 0.3 and bank.other_captions[other] == "a person claps"


def test_retrieval_votes_for_a_movement_keeps_the_named_side_and_estimates_the_duration():
    rewriter = RetrievalRewriter(toy_bank(), neighbours=3)
    prompts = ["someone kicks with the left foot", "someone kicks with the right foot", "strolls ahead"]
    # The prompt embedding sits nearer the *right* kick; the word "left" must still win.
    embeddings = np.stack([unit(0, 1, -0.2, 0), unit(0, 1, -0.2, 0), unit(1, 0.1, 0, 0)])
    left, right, walk = rewriter.rewrite(prompts, embeddings)
    assert left.text == "A person kicks with the left leg." and left.seconds == pytest.approx(3.5)
    assert right.text == "A person kicks with the right leg." and right.label == "kick/normal"
    assert walk.text == "A person walks forward." and walk.seconds == pytest.approx(8.0)


def test_bank_from_a_dataset_labels_mirrors_and_studio_directions_and_adds_unknown_movements(tmp_path):
    from motionmillion.data.importers import import_bvh
    from motionmillion.pipeline import MotionPipeline
    from motionmillion.pipeline.understanding import bank_from_dataset

    import_bvh(FIXTURE / "bvh/bandai", tmp_path / "ds", "bandai", workers=1, progress=False)
    bank = bank_from_dataset(tmp_path / "ds", MotionPipeline.from_pretrained(device="cpu").text_encoder,
                             FIXTURE / "text", split="all")  # fmt: skip
    labels = {(c, m) for c, m in zip(bank.captions, bank.contents)}
    # One name per movement (data.labels.movement_family): "bye" waves the right hand, so it is wave-right,
    # and a mirrored "bye" (stored as "bye") waves the left: wave-left, as its captions say.
    assert {m for _, m in labels} == {"walk", "wave-left", "wave-right"}
    assert all(("left" in c.lower()) == (m == "wave-left") for c, m in labels if m.startswith("wave-"))
    np.testing.assert_allclose(bank.seconds, 100 / 30, rtol=1e-6)  # every fixture clip is 100 frames
    assert bank.other_captions and len(bank.other_embeddings) == len(bank.other_captions)
    assert not set(bank.other_captions) & set(bank.captions)


@pytest.mark.parametrize(
    ("reply", "text", "seconds"),
    [
        ("[A person walks forward sadly.] {4 seconds}", "A person walks forward sadly.", 4.0),
        ("Sure! Here it is: [a person bows]\n{2.5 s}", "a person bows", 2.5),
        ("{a person jumps} {3}", "a person jumps", 3.0),  # the paper also takes a {...} caption
        ("[a person runs] {40 seconds}", "a person runs", 10.0),  # capped at the model's longest motion
        ("[ a  person\nwaves ]", "a person waves", None),
    ],
)
def test_parse_rewrite(reply, text, seconds):
    parsed = parse_rewrite(reply, max_seconds=10.0)
    assert parsed is not None and parsed.text == text and parsed.seconds == seconds


def test_parse_rewrite_without_a_caption_is_none():
    assert parse_rewrite("I cannot help with that. {4 seconds}") is None
    assert parse_rewrite("") is None


# ---------------------------------------------------------------------------------------------------------
# With the bundled model and its caption bank


@pytest.fixture(scope="module")
def pipe():
    from motionmillion.pipeline import MotionPipeline

    return MotionPipeline.from_pretrained(device="cpu")


def test_bundled_model_ships_a_caption_bank_under_a_few_megabytes(pipe):
    folder = pipe.folder / BANK_DIR
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 6_000_000, f"caption bank is {size / 1e6:.1f} MB"
    info = json.loads((folder / "captions.json").read_text())
    assert info["text_encoder"] == pipe.text_encoder.name and len(info["rows"]) > 1000


def test_unknown_movements_are_flagged_and_known_ones_are_not(pipe):
    swim, sit, walk, wave = understand(pipe, ["a person swims", "a person sits down on a chair",
                                              "a person walks forward", "someone waves the right hand"])  # fmt: skip
    for known in (walk, wave):
        assert known.warning is None and known.coverage >= 0.5 and known.prompt_used == known.prompt
    for unknown in (swim, sit):
        assert 0.0 <= unknown.coverage < 0.305 and unknown.warning.startswith("the model knows no movement like")
        assert unknown.prompt in unknown.warning and unknown.nearest in pipe_bank_captions(pipe)
    assert "warning" not in walk.meta() and swim.meta()["warning"] == swim.warning


def pipe_bank_captions(pipe) -> set[str]:
    from motionmillion.pipeline.understanding import pipeline_bank

    return set(pipeline_bank(pipe).captions)


def test_retrieval_rewrite_with_the_bundled_bank(pipe):
    captions = pipe_bank_captions(pipe)
    back, left_kick = understand(pipe, ["she retreats step by step, walking backwards",
                                        "someone kicks with the left leg"], rewrite=True)  # fmt: skip
    for answer in (back, left_kick):
        assert answer.prompt_used in captions and answer.rewriter == "retrieval"
        assert 1.0 <= answer.seconds <= pipe.max_seconds and answer.understood_as.startswith(answer.prompt_used)
    assert "(walk-back/" in back.understood_as
    assert "(kick/" in left_kick.understood_as and "left" in left_kick.prompt_used.lower()


def test_understood_requests_carry_the_rewrite_into_meta_and_fill_the_duration(pipe):
    from motionmillion.pipeline import GenerationRequest

    requests = [GenerationRequest("a person bows politely", seed=1),
                GenerationRequest("a person bows politely", seconds=3.0, seed=2)]  # fmt: skip
    plain = understood_requests(pipe, requests)
    assert plain[0].seconds is None and "prompt_used" not in plain[0].meta and "coverage" in plain[0].meta
    rewritten = understood_requests(pipe, requests, rewrite=True)
    assert rewritten[0].meta["prompt_used"] in pipe_bank_captions(pipe) and rewritten[0].seconds >= 1.0
    assert rewritten[1].seconds == 3.0 and rewritten[0].prompt == "a person bows politely"
    # already understood: passed through unchanged
    assert understood_requests(pipe, rewritten, rewrite=True) == rewritten
    assert replace(rewritten[0]).meta == rewritten[0].meta


# ---------------------------------------------------------------------------------------------------------
# Language-model back-end, with a tiny randomly initialised Llama and a tokenizer built offline


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_lm")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = ["Rewrite the following description of a human motion [a person walks forward sadly.] {4 seconds}",
              "a person kicks with the left leg, waves, bows, runs, jumps"] * 20  # fmt: skip
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}\nAnswer: {% endif %}"
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_language_model_rewriter_runs_offline_and_falls_back_to_the_prompt(tiny_lm, pipe):
    answers = understand(pipe, ["a person walks forward", "a person swims"], rewrite=True, rewriter=str(tiny_lm))
    for answer in answers:  # random weights write no [caption]: the prompt is used as written
        assert answer.rewriter == str(tiny_lm) and answer.prompt_used == answer.prompt and answer.seconds is None
        assert answer.coverage is not None  # coverage comes from the bank whatever the back-end
    assert answers[1].warning is not None and "prompt_used" in answers[0].meta()


def test_language_model_rewriter_uses_the_instruction_and_parses_the_reply(tiny_lm, monkeypatch):
    rewriter = LanguageModelRewriter(str(tiny_lm), max_new_tokens=8, examples=["A person bows."])
    instruction = rewriter.instruction("someone strolls sadly")
    assert "someone strolls sadly" in instruction and "- A person bows." in instruction and instruction.endswith("Answer: ")
    reply = rewriter.tokenizer("[a person walks forward sadly.] {4 seconds}", return_tensors="pt")["input_ids"]

    def fake_generate(input_ids, **kwargs):
        import torch

        return torch.cat([input_ids, reply], dim=1)

    monkeypatch.setattr(rewriter.model, "generate", fake_generate)
    (answer,) = rewriter.rewrite(["someone strolls sadly"])
    assert answer.text == "a person walks forward sadly." and answer.seconds == 4.0


def test_language_model_rewriter_that_is_not_there_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="missing: no such folder"):
        LanguageModelRewriter(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot load a local causal language model"):
        LanguageModelRewriter(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="cannot load a local causal language model"):
        LanguageModelRewriter("meta-llama/Llama-3.1-8B-Instruct")  # a hub name that is not in the local cache


def test_pipeline_rewrites_on_request_and_reports_coverage_for_every_motion(pipe):
    from motionmillion.pipeline.understanding import RewritingPipeline

    rewriting = RewritingPipeline(pipe)
    assert rewriting.max_seconds == pipe.max_seconds
    known, unknown = rewriting(["someone strolls ahead looking gloomy", "a person swims"], seconds=[2.0, None], seed=0)
    assert known.text == "someone strolls ahead looking gloomy" and known.meta["rewriter"] == "retrieval"
    assert known.meta["prompt_used"] in pipe_bank_captions(pipe) and abs(known.seconds - 2.0) < 0.3  # given: kept
    assert "warning" not in known.meta and 0.5 <= known.meta["coverage"] <= 1.0
    assert unknown.meta["coverage"] < 0.305 and "swims" in unknown.meta["warning"]
    assert 1.0 <= unknown.seconds <= pipe.max_seconds  # estimated from the rewrite's clips

    plain, = pipe("someone strolls ahead looking gloomy", seconds=2.0, seed=0)
    assert "prompt_used" not in plain.meta and plain.meta["coverage"] == known.meta["coverage"]
    assert plain.meta["understood_as"] == plain.text  # not rewritten: understood as written


def test_generate_cli_prints_what_the_prompt_was_understood_as_and_the_warning(tmp_path):
    from typer.testing import CliRunner

    from motionmillion.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", "--prompts", str(_prompt_file(tmp_path)), "--out", str(out),
                                      "--rewrite", "--no-video", "--seed", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "prompt 1 understood as: " in result.output and "prompt 2 understood as: " in result.output
    assert "warning: prompt 2: the model knows no movement like 'a person swims'" in result.output
    assert "warning: prompt 1" not in result.output
    meta = {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}
    swim = next(m for name, m in meta.items() if "swims" in name)
    assert swim["coverage"] < 0.305 and swim["warning"] and swim["understood_as"] and swim["prompt_used"]


def _prompt_file(folder: Path) -> Path:
    path = folder / "prompts.txt"
    path.write_text("someone strolls ahead looking gloomy\na person swims\n")
    return path


def test_export_pipeline_from_a_dataset_writes_the_caption_bank(tmp_path):
    from generator.helpers import make_pipeline_folder
    from typer.testing import CliRunner

    from motionmillion.cli import app
    from motionmillion.data.importers import import_bvh
    from motionmillion.pipeline import MotionPipeline

    make_pipeline_folder(tmp_path)  # tok_run/ and gen_run/ (random weights)
    import_bvh(FIXTURE / "bvh/bandai", tmp_path / "ds", "bandai", workers=1, progress=False)
    result = CliRunner().invoke(app, ["export-pipeline", "--tokenizer", str(tmp_path / "tok_run"), "--run",
                                      str(tmp_path / "gen_run"), "--normalization", str(tmp_path / "ds"),
                                      "--text-pool", str(FIXTURE / "text"), "--out", str(tmp_path / "pipe")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pipe" / BANK_DIR / "captions.json").is_file() and "caption bank written" in result.output
    pipe = MotionPipeline.from_pretrained(tmp_path / "pipe", device="cpu")
    walk, swim = understand(pipe, ["a person walks forward", "a person swims in the sea"])
    assert walk.coverage > swim.coverage and walk.nearest in pipe_bank_captions(pipe)

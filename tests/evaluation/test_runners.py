"""Runners end to end with a fake pipeline: protocol recorded, NaN counted as failure, reports written."""

import json

import pytest

from motionmillion.evaluation.generation import generate
from motionmillion.evaluation.prompt_sets import evaluate_prompts, read_prompts
from motionmillion.evaluation.protocol import EvaluationInputError, GeneratorEvalConfig, evaluate_generator
from motionmillion.evaluation.report import write_report


def test_generate_isolates_failures(fake_pipeline):
    pipe = fake_pipeline
    prompts = ["a person walks forward", "please explode", "crash now", "someone kicks forward"]
    gen = generate(pipe, prompts, [2.0, 1.0, 1.0, 3.0], seed=0, batch_size=4)
    assert [f is None for f in gen.features] == [False, True, True, False]
    assert "NaN" in gen.errors[1] and "crashed" in gen.errors[2]
    assert len(gen.features[0]) == 60 and len(gen.features[3]) == 90


def test_evaluate_generator_end_to_end(tmp_path, fake_pipeline, synthetic_dataset, tiny_evaluator):
    run, evaluator = tiny_evaluator
    pipe = fake_pipeline
    config = GeneratorEvalConfig(repeats=2, mm_texts=4, mm_samples=3, seed=7)
    result = evaluate_generator(pipe, evaluator, synthetic_dataset, config, progress=False)
    proto = result["protocol"]
    assert proto["evaluator_sha256"] == evaluator.checksum and proto["seeds"] == [7, 1007]
    assert proto["num_clips"] == 40
    real, gen = result["results"]["real"], result["results"]["gt_length"]
    assert len(gen["fid"]["values"]) == 2 and gen["fid"]["ci95"] >= 0
    assert "multimodality" in gen and "own_length" in result["results"]
    assert gen["length_abs_error_s"]["mean"] == pytest.approx(0.0, abs=1 / 30)
    assert real["r_precision_top3"]["mean"] > 3 / 32  # the evaluator separates the 4 kinds
    assert "fid_real_test_vs_real_train" in result["sanity"]
    written = write_report(result, tmp_path / "gen.json", "test")
    stored = json.loads((tmp_path / "gen.json").read_text())
    assert "_samples" not in stored and stored["results"]["gt_length"]["diversity"]["mean"] > 0
    text = (tmp_path / "gen.md").read_text()
    assert "| fid" in text and "gen_samples.png" in text and written["lengths"].is_file()


def test_split_too_small(fake_pipeline, synthetic_dataset, tiny_evaluator):
    with pytest.raises(EvaluationInputError, match="at least 32"):
        evaluate_generator(fake_pipeline, tiny_evaluator[1], synthetic_dataset,
                           GeneratorEvalConfig(split="val", repeats=1), progress=False)


def test_read_prompt_formats(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("walk forward\n\n# comment\nbow\n")
    assert [p.prompt for p in read_prompts(txt)] == ["walk forward", "bow"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "someone strolls ahead", "content": "walk", "style": "sad"}\n')
    assert read_prompts(jsonl)[0].content == "walk"
    jsonl.write_text('{"prompt": "x", "content": "fly"}\n')
    with pytest.raises(EvaluationInputError, match="unknown content"):
        read_prompts(jsonl)
    js = tmp_path / "h.json"
    js.write_text(json.dumps({"000001": {"texts": ["a man walks#a/DET#0#0", "a man walks"]}, "x": [{"caption": "jumps"}]}))
    assert [p.prompt for p in read_prompts(js)] == ["a man walks", "jumps"]
    with pytest.raises(EvaluationInputError, match="not found"):
        read_prompts(tmp_path / "missing.txt")


def test_shipped_paraphrase_set_is_valid():
    from importlib.resources import files

    path = files("motionmillion") / "assets" / "eval" / "paraphrases.jsonl"
    items = read_prompts(str(path))
    assert len(items) >= 30 and all(it.content for it in items)
    assert len({it.content for it in items}) >= 15


def test_evaluate_prompts_counts_failures_and_content(tmp_path, fake_pipeline, tiny_evaluator):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        '{"prompt": "a person walks forward", "content": "walk"}\n'
        '{"prompt": "someone kicks forward", "content": "kick"}\n'
        '{"prompt": "explode please", "content": "bow"}\n'
    )
    result = evaluate_prompts(fake_pipeline, tiny_evaluator[1], prompts, samples=2, progress=False)
    res = result["results"]["generated"]
    assert res["failure_rate"]["mean"] == pytest.approx(1 / 3)
    assert 0.0 <= res["content_accuracy_text_candidates"]["mean"] <= 2 / 3  # the failed one never counts as right
    assert result["per_prompt"][2]["samples"][0]["error"].startswith("NaN")
    write_report(result, tmp_path / "p.json", "prompts")
    assert (tmp_path / "p.md").is_file()


def test_evaluate_prompts_scores_the_style_among_the_styles_of_the_content(tmp_path, fake_pipeline, tiny_evaluator,
                                                                           synthetic_dataset, monkeypatch):  # fmt: skip
    """With --data, a prompt labelled with a content and a style is asked which of that content's styles
    (real clips of each, unmirrored) its motion is nearest to."""
    import motionmillion.data.records as records
    from motionmillion.data.layout import MotionDataset

    def labels(root):  # synthetic clips named ".../dataset-1_<kind>_style<k>_<i>"
        out = {}
        for name in MotionDataset(root).names("all"):
            _, kind, style, _ = name.split("/")[-1].split("_")
            out[name] = records.ClipLabel(content=kind, style=style, stratum=f"{kind}/{style}", group=name, mirrored=False)
        return out

    monkeypatch.setattr(records, "clip_labels", labels)
    from motionmillion.data.layout import write_split

    import shutil

    dataset = shutil.copytree(synthetic_dataset, tmp_path / "dataset")  # the fixture is shared: add to a copy
    write_split(dataset, "t2m_60_300", "all", [n for s in ("train", "val", "test") for n in MotionDataset(dataset).names(s)])
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a person walks forward", "content": "walk", "style": "style1"}\n'
                       '{"prompt": "a person bows politely", "content": "bow", "style": "style2"}\n')  # fmt: skip
    result = evaluate_prompts(fake_pipeline, tiny_evaluator[1], prompts, samples=2, dataset_root=dataset, progress=False)
    assert 0.0 <= result["results"]["generated"]["style_accuracy_among_the_content_styles"]["mean"] <= 1.0
    retrieved = [s["retrieved_style"] for p in result["per_prompt"] for s in p["samples"]]
    assert len(retrieved) == 4 and set(retrieved) <= {"style0", "style1", "style2"}

"""One scale for every bounded metric (0-1), top-5 accuracy only where there are more than 5 classes,
and QA records that carry each context once."""

from __future__ import annotations

import json

import pytest

from tasktool import metrics


def test_every_bounded_metric_is_one_for_a_perfect_prediction():
    refs = ["the cat sat on the mat", "a dog ran in the park"]
    perfect = {
        **metrics.classification(["a", "b"], ["a", "b"]),
        **metrics.seqeval_scores([["B-PER", "O"]], [["B-PER", "O"]]),
        **metrics.squad(refs, [[r] for r in refs]),
        **metrics.rouge(refs, refs),
        **metrics.bleu_chrf(refs, refs),
    }
    assert perfect and all(value == pytest.approx(1.0) for value in perfect.values()), perfect
    errors = metrics.wer_cer(refs, refs)
    assert errors == {"wer": 0.0, "cer": 0.0}


def test_ner_f1_and_qa_f1_share_a_scale():
    half_ner = metrics.seqeval_scores([["B-PER", "O"], ["O", "O"]], [["B-PER", "O"], ["B-LOC", "O"]])[
        "recall"
    ]
    half_qa = metrics.squad(["john", "nobody"], [["john"], ["mary"]])["f1"]
    assert half_ner == half_qa == 0.5


def _classes(folder, labels):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in labels:
        (folder / label).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype="uint8")).save(folder / label / "0.png")
    return folder


@pytest.mark.parametrize(("n", "top5"), [(2, False), (6, True)])
def test_top5_accuracy_only_with_more_than_five_classes(cli, tiny, tmp_path, n, top5):
    labels = [f"class{i}" for i in range(n)]
    model = tiny("image-classification", labels=labels)
    data = _classes(tmp_path / "data", labels)
    result = cli("evaluate", "image", "--model", model, "--data", data)
    assert result.code == 0, result.err
    scores = json.loads(result.out)
    assert ("top5_accuracy" in scores) is top5
    assert 0.0 <= scores["accuracy"] <= 1.0


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory):
    from tasktool.tasks.registry import resolve

    return resolve("question-answering").build_tiny(tmp_path_factory.mktemp("qa"))


CONTEXT = "John Smith went to Paris in July. Mary stayed in London. " * 20


def test_qa_records_carry_a_shared_context_once_by_default(cli, qa_model):
    result = cli("infer", "qa", "who?", "where?", "when?", "--context", CONTEXT, "--model", qa_model)
    assert result.code == 0, result.err
    inputs = [r["input"] for r in result.records()]
    assert inputs[0]["context"] == CONTEXT
    assert all("context" not in i for i in inputs[1:])
    assert len({i["context_id"] for i in inputs}) == 1
    assert len(result.out) < 2 * len(CONTEXT)  # once, not three times


def test_qa_records_from_a_file_name_each_rows_context(cli, qa_model, tmp_path):
    data = tmp_path / "qa.jsonl"
    rows = [("who?", "John went."), ("what?", "John went."), ("who?", "Mary stayed.")]
    data.write_text("".join(json.dumps({"question": q, "context": c}) + "\n" for q, c in rows))
    inputs = [r["input"] for r in cli("infer", "qa", "--file", data, "--model", qa_model).records()]
    assert [i.get("context") for i in inputs] == ["John went.", None, "Mary stayed."]
    assert inputs[0]["context_id"] == inputs[1]["context_id"] != inputs[2]["context_id"]


@pytest.mark.parametrize(("mode", "with_text"), [("full", [True, True]), ("id", [False, False])])
def test_qa_context_in_records_full_or_id(cli, qa_model, mode, with_text):
    args = ("infer", "qa", "who?", "where?", "--context", CONTEXT, "--model", qa_model)
    records = cli(*args, "--context-in-records", mode).records()
    assert ["context" in r["input"] for r in records] == with_text
    assert all(r["input"]["context_id"] for r in records)

"""`--recheck-margin`: an int8 classifier's close rows run again on the export's float32 graph.

On tiny random models every score sits near uniform, so the margin is set between the rows' own
top-two gaps: the rows below it must carry the float32 graph's scores, the others the int8 graph's.
benchmarks/onnx_speed.py measures what it buys on the real MiniLM (labels agreeing with float32, speed).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, assert_user_error, graph_as_default

import tasktool.api as api
from tasktool.tasks.recheck import close_rows

LABELS = ["NEGATIVE", "POSITIVE", "NEUTRAL"]
TEXTS = [
    "A wonderful film",
    "Dull, far too long and badly acted",
    "ok",
    "The plot made no sense at all, yet I laughed",
    "Brilliant cast",
    "I want my two hours back",
    "fine",
    "An honest, moving story",
]


def test_close_rows_are_those_whose_two_best_scores_are_nearer_than_the_margin():
    scores = np.array([[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [0.1, 0.1, 0.8], [0.45, 0.1, 0.45]])
    assert close_rows(scores, 0.05).tolist() == [1, 3]
    assert close_rows(scores, 0.25).tolist() == [0, 1, 3]
    assert close_rows(scores[:, :1], 0.5).size == 0  # one score: nothing to compare


@pytest.fixture(scope="module")
def int8_export(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recheck") / "int8"
    api.export("text-classification", str(tiny("text-classification", labels=LABELS)), output_dir=out,
               optimize="O2", quantize="int8")  # fmt: skip
    return out


def _gap(record: dict) -> float:
    return record["labels"][0]["score"] - record["labels"][1]["score"]


def test_rows_closer_than_the_margin_get_the_float32_graphs_scores_and_the_others_keep_int8s(
    int8_export, tmp_path
):
    task = "text-classification"
    int8 = api.infer(task, TEXTS, model=str(int8_export), device="cpu", top_k=3)
    float32 = api.infer(
        task,
        TEXTS,
        model=str(graph_as_default(int8_export, "model_optimized.onnx", tmp_path)),
        device="cpu",
        top_k=3,
    )
    gaps = sorted(_gap(r) for r in int8)
    # a margin in the widest space between two middle rows' gaps (records round scores to 6 decimals)
    split = max(range(2, len(gaps) - 2), key=lambda i: gaps[i] - gaps[i - 1])
    margin = (gaps[split - 1] + gaps[split]) / 2
    mixed = api.infer(task, TEXTS, model=str(int8_export), device="cpu", top_k=3, recheck_margin=margin)
    rechecked = 0
    for got, low, high in zip(mixed, int8, float32, strict=True):
        want = high if _gap(low) < margin else low
        rechecked += want is high
        assert [x["label"] for x in got["labels"]] == [x["label"] for x in want["labels"]]
        assert [x["score"] for x in got["labels"]] == pytest.approx(
            [x["score"] for x in want["labels"]], abs=1e-5
        )
    assert rechecked == split
    # the two graphs' scores differ, so the rows above show which graph each came from
    assert any(a["labels"] != b["labels"] for a, b in zip(int8, float32, strict=True))


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_a_token_classifier_reruns_the_sentences_with_a_close_token_on_the_float32_graph(tiny, tmp_path):
    """Margin 1 makes every sentence close (some token's two best scores are always less than 1
    apart): the records are then the float32 graph's; a margin no gap is under leaves int8's."""
    task = "token-classification"
    out = tmp_path / "ner-int8"
    api.export(task, str(tiny(task, labels=NER_LABELS)), output_dir=out, optimize="O2", quantize="int8")
    float_folder = str(graph_as_default(out, "model_optimized.onnx", tmp_path))
    texts = ["John lives in Paris", "Mary met Smith in London on monday", "Berlin", "the cat sat"]
    float32 = api.infer(task, texts, model=float_folder, device="cpu")
    int8 = api.infer(task, texts, model=str(out), device="cpu")
    assert int8 != float32  # scores differ, so the records show which graph ran
    assert api.infer(task, texts, model=str(out), device="cpu", recheck_margin=1.0) == float32
    assert api.infer(task, texts, model=str(out), device="cpu", recheck_margin=1e-12) == int8
    words = [["John", "lives", "in", "Paris"], ["Berlin"]]
    rechecked = api.infer(task, words, model=str(out), device="cpu", recheck_margin=1.0)
    assert rechecked == api.infer(task, words, model=float_folder, device="cpu")


def test_the_run_says_how_many_rows_ran_again(cli, int8_export, tmp_path):
    out = tmp_path / "out.jsonl"
    result = cli("infer", "sentiment", *TEXTS, "--model", int8_export, "--recheck-margin", "1", "-o", out)
    assert result.code == 0, result.err
    assert f"{len(TEXTS)} of {len(TEXTS)} rows ran again on the float32 graph" in result.err
    assert len(out.read_text().splitlines()) == len(TEXTS)


def test_recheck_margin_where_it_cannot_apply_is_a_usage_error(cli, tiny, int8_export, tmp_path):
    torch_model = tiny("text-classification", labels=LABELS)
    assert_user_error(
        cli("infer", "sentiment", "hi", "--model", torch_model, "--recheck-margin", "0.5"),
        "int8 export",
        code=2,
    )
    float_only = graph_as_default(int8_export, "model_optimized.onnx", tmp_path)
    manifest = json.loads((float_only / "export.json").read_text())
    manifest["quantize"] = None
    (float_only / "export.json").write_text(json.dumps(manifest))
    assert_user_error(
        cli("infer", "sentiment", "hi", "--model", float_only, "--recheck-margin", "0.5"),
        "int8 export",
        code=2,
    )
    assert_user_error(
        cli("infer", "fill-mask", "a [MASK]", "--recheck-margin", "0.5"), "not to fill-mask", code=2
    )
    for bad in ("0", "1.5"):
        assert_user_error(
            cli("infer", "sentiment", "hi", "--model", int8_export, "--recheck-margin", bad),
            "--recheck-margin",
            code=2,
        )


@pytest.mark.parametrize("task", ["image-classification", "audio-classification"])
def test_image_and_audio_classifiers_rerun_their_close_rows_on_the_float32_graph(task, tiny, tmp_path):
    labels = ["cat", "dog", "bird"] if task == "image-classification" else ["zero", "three", "seven"]
    out = tmp_path / "int8"
    api.export(task, str(tiny(task, labels=labels)), output_dir=out, quantize="int8")
    if task == "image-classification":
        inputs = [str(p) for p in sorted((FIXTURES / "images").glob("*.jpg"))]
    else:
        inputs = [str(FIXTURES / "audio" / n) for n in ("3_jackson_5.wav", "7_george_5.wav")]
    float32 = api.infer(task, inputs, model=str(graph_as_default(out, "model.onnx", tmp_path)), device="cpu")
    int8 = api.infer(task, inputs, model=str(out), device="cpu")
    assert int8 != float32  # scores differ, so the records show which graph ran
    assert api.infer(task, inputs, model=str(out), device="cpu", recheck_margin=1.0) == float32
    assert api.infer(task, inputs, model=str(out), device="cpu", recheck_margin=1e-12) == int8


def test_evaluate_with_recheck_margin_scores_the_labels_infer_would_give(cli, int8_export, tmp_path):
    """Margin 1 reruns every row on the float32 graph: the metrics and predictions are then the float32
    graph's own, which differ from int8 alone on these near-uniform tiny models' scores."""
    data = tmp_path / "test.csv"
    rows = [(t, LABELS[i % 3]) for i, t in enumerate(TEXTS)]
    data.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows))
    float_folder = graph_as_default(int8_export, "model_optimized.onnx", tmp_path)
    runs = {}
    for name, model, extra in (
        ("float32", float_folder, []),
        ("int8", int8_export, []),
        ("rechecked", int8_export, ["--recheck-margin", "1"]),
    ):
        preds = tmp_path / f"{name}.jsonl"
        result = cli("evaluate", "sentiment", "--model", model, "--data", data, "--predictions", preds,
                     "--format", "json", *extra)  # fmt: skip
        assert result.code == 0, result.err
        runs[name] = [json.loads(line) for line in preds.read_text().splitlines()]
    assert runs["rechecked"] == runs["float32"] != runs["int8"]
    assert_user_error(
        cli("evaluate", "qa", "--model", int8_export, "--data", data, "--recheck-margin", "0.5"),
        "--recheck-margin",
        code=2,
    )


def test_a_ner_row_is_judged_on_the_tokens_its_record_reads():
    """Special tokens, pieces without text and padding never make a sentence close; of a word list,
    only each word's first piece (the one its tag comes from)."""
    from tasktool.tasks.token_classification.predict import _labelled

    text = {"special": [1, 0, 0, 0, 1], "offsets": [(0, 0), (0, 4), (4, 4), (5, 9), (0, 0)]}
    words = {"words": ["Johnson", "ran"], "word_ids": [None, 0, 0, 1, None]}
    assert _labelled([text, words], 6).tolist() == [
        [False, True, False, True, False, False],
        [False, True, False, True, False, False],
    ]
    scores = np.full((2, 6, 2), 0.5)  # every position tied...
    scores[:, [1, 3]] = [0.9, 0.1]  # ...but those the records read
    assert close_rows(scores, 0.5, _labelled([text, words], 6)).size == 0
    assert close_rows(scores, 0.5).tolist() == [0, 1]

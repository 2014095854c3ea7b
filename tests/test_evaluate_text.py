"""`tasktool evaluate` for text tasks: same predictions as `infer`, metrics.json reproduced, offline metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_user_error
from test_finetune_text import FAST, keyword_rows, tagging_rows

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

TEXT = FIXTURES / "text"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _finetune(spec_name: str, data: Path, base: Path, out: Path, *overrides: str) -> Path:
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve(spec_name)
    recipe = resolve_recipe(spec.name, overrides=[*overrides, *FAST])
    spec.load_trainer()(spec, recipe, {}, quiet=True).run(Source(str(data)), None, out, model=str(base))
    return out


@pytest.fixture(scope="module")
def classifier(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-cls")
    data = _jsonl(folder / "train.jsonl", keyword_rows(120, 3))
    return _finetune(
        "sentiment",
        data,
        tiny("text-classification", labels=["no", "yes"]),
        folder / "m",
        "max_steps=30",
        "lr=5e-3",
        "batch_size=16",
    )


@pytest.fixture(scope="module")
def tagger(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-ner")
    data = _jsonl(folder / "train.jsonl", tagging_rows(120, 3))
    return _finetune(
        "ner",
        data,
        tiny("token-classification", labels=["O", "B-LOC", "B-PER"]),
        folder / "m",
        "max_steps=30",
        "lr=5e-3",
        "batch_size=16",
    )


def test_classifier_evaluate_reproduces_metrics_json_on_the_saved_eval_split(cli, classifier, tmp_path):
    result = cli(
        "evaluate",
        "sentiment",
        "--model",
        classifier,
        "--data",
        classifier / "eval.jsonl",
        "--output",
        tmp_path / "m.json",
    )
    assert result.code == 0, result.err
    assert "accuracy" in result.out and "macro_f1" in result.out  # the table on screen
    saved = json.loads((classifier / "metrics.json").read_text())["eval"]
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(saved)


def test_classifier_infer_and_evaluate_give_the_same_predictions(cli, classifier, tmp_path):
    evaluated = cli(
        "evaluate",
        "sentiment",
        "--model",
        classifier,
        "--data",
        classifier / "eval.jsonl",
        "--predictions",
        tmp_path / "p.jsonl",
    )
    assert evaluated.code == 0, evaluated.err
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    inferred = cli(
        "infer", "sentiment", "--file", classifier / "eval.jsonl", "--model", classifier, "--format", "jsonl"
    ).records()
    assert [r["label"] for r in inferred] == [p["prediction"] for p in preds]
    assert [r["score"] for r in inferred] == pytest.approx([p["score"] for p in preds], abs=1e-5)


def test_ner_evaluate_reproduces_metrics_json_and_matches_infer_entities(cli, tagger, tmp_path):
    result = cli(
        "evaluate",
        "ner",
        "--model",
        tagger,
        "--data",
        tagger / "eval.jsonl",
        "--output",
        tmp_path / "m.json",
        "--predictions",
        tmp_path / "p.jsonl",
    )
    assert result.code == 0, result.err
    saved = json.loads((tagger / "metrics.json").read_text())["eval"]
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(saved)
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    texts = [
        " ".join(json.loads(line)["tokens"]) for line in (tagger / "eval.jsonl").read_text().splitlines()
    ]
    inferred = cli("infer", "ner", *texts, "--model", tagger, "--aggregation", "first", "--format", "jsonl")
    assert inferred.code == 0, inferred.err

    def spans(entities):  # infer rounds scores for display; the spans and groups must match exactly
        return [(e["entity_group"], e["word"], e["start"], e["end"]) for e in entities]

    assert [spans(r["entities"]) for r in inferred.records()] == [spans(p["entities"]) for p in preds]
    assert any(p["entities"] for p in preds)


def test_qa_evaluate_uses_the_infer_predictor_answers(cli, tiny, tmp_path):
    model = tiny("question-answering")
    result = cli(
        "evaluate",
        "qa",
        "--model",
        model,
        "--data",
        TEXT / "squad_sample.json",
        "--predictions",
        tmp_path / "p.jsonl",
        "--output",
        tmp_path / "m.json",
    )
    assert result.code == 0, result.err
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    inferred = cli("infer", "qa", "--file", TEXT / "squad_sample.json", "--model", model, "--format", "jsonl")
    assert inferred.code == 0, inferred.err
    assert [r["answer"] for r in inferred.records()] == [p["prediction"] for p in preds]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["examples"] == 14 and 0 <= metrics["exact_match"] <= metrics["f1"] <= 1


def test_evaluate_counts_labels_the_model_does_not_know_as_errors_naming_the_row(cli, classifier, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "yes"}, {"text": "b", "label": "maybe"}])
    result = cli(
        "evaluate", "sentiment", "--model", classifier, "--data", data, "--output", tmp_path / "m.json"
    )
    assert result.code == 0, result.err
    assert "d.jsonl, row 2" in result.err and "'maybe'" in result.err and "count as errors" in result.err
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] <= 0.5  # 'maybe' cannot be right


def test_evaluate_reads_integer_labels_as_label_ids(cli, classifier, tmp_path):
    rows = [{"text": r["text"], "label": 1 if r["label"] == "yes" else 0} for r in keyword_rows(20, 9)]
    named = _jsonl(tmp_path / "named.jsonl", keyword_rows(20, 9))
    ids = _jsonl(tmp_path / "ids.jsonl", rows)
    a = cli("evaluate", "sentiment", "--model", classifier, "--data", named, "--output", tmp_path / "a.json")
    b = cli("evaluate", "sentiment", "--model", classifier, "--data", ids, "--output", tmp_path / "b.json")
    assert a.code == 0 and b.code == 0, (a.err, b.err)
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_evaluate_missing_column_lists_the_columns_found(cli, classifier, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("review,stars\ngood,5\n")
    assert_user_error(
        cli("evaluate", "sentiment", "--model", classifier, "--data", data), "columns found", "review, stars"
    )


def test_evaluate_ner_on_a_conll_file_with_column_names_from_the_flags(cli, tiny, tmp_path):
    model = tiny(
        "token-classification",
        labels=["O", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
    )
    result = cli(
        "evaluate",
        "ner",
        "--model",
        model,
        "--data",
        TEXT / "conll_sample.json",
        "--tokens-column",
        "words",
        "--tags-column",
        "ner",
        "--output",
        tmp_path / "m.json",
    )
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["examples"] == 10 and set(metrics) >= {"precision", "recall", "f1", "token_accuracy"}


def test_evaluate_without_data_is_a_one_line_error(cli, classifier):
    assert_user_error(cli("evaluate", "sentiment", "--model", classifier), "--data")


# --- the metric functions ------------------------------------------------------------------------


def test_classification_metrics():
    from tasktool.metrics import classification

    m = classification(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert m["accuracy"] == 0.75
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_seqeval_scores_count_whole_entities():
    from tasktool.metrics import seqeval_scores

    refs = [["B-PER", "I-PER", "O", "B-LOC"]]
    m = seqeval_scores([["B-PER", "O", "O", "B-LOC"]], refs)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["token_accuracy"] == 0.75
    assert seqeval_scores(refs, refs)["f1"] == 1.0


def test_squad_exact_match_and_f1_use_the_best_gold_answer():
    from tasktool.metrics import squad

    m = squad(["the Eiffel Tower", "Paris France"], [["Eiffel Tower", "a tower"], ["Paris"]])
    assert m["exact_match"] == 0.5
    assert m["f1"] == pytest.approx((1.0 + 2 / 3) / 2)


def test_generation_metrics_rouge_bleu_chrf_wer_and_perplexity():
    import math

    from tasktool.metrics import bleu_chrf, perplexity, rouge, wer_cer

    same = "the cat sat on the mat"
    assert rouge([same], [same])["rouge1"] == pytest.approx(1.0)
    assert rouge(["a dog ran"], [same])["rouge2"] == 0.0
    scores = bleu_chrf([same], [same])
    assert scores["bleu"] == pytest.approx(1.0) and scores["chrf"] == pytest.approx(1.0)
    assert bleu_chrf(["the cat"], [["a dog", "the cat"]])["chrf"] == pytest.approx(1.0)
    errors = wer_cer(["the cat sat"], ["the cat sat down"])
    assert errors["wer"] == pytest.approx(0.25) and 0 < errors["cer"] < 0.5
    assert perplexity(2 * math.log(4), 2)["perplexity"] == pytest.approx(4.0)

"""The bad-input catalogue: each mistake is one line naming the problem, a non-zero exit, no traceback."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-classification", labels=["NEG", "POS"])


@pytest.fixture
def files(tmp_path):
    made = {}

    def make(name, content: bytes | str):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        made[name] = path
        return path

    return make


def _infer(cli, model, *args, input=None):
    return cli("infer", "sentiment", *args, "--model", model, input=input)


# (case id, arguments after `infer sentiment`, words the error must contain, exit code)
OPTION_CASES = [
    ("bad-device", ["hi", "--device", "tpu"], ["--device", "cpu"], 2),
    ("bad-dtype", ["hi", "--dtype", "fp8"], ["--dtype", "bfloat16"], 2),
    ("bad-on-error", ["hi", "--on-error", "ignore"], ["--on-error", "skip"], 2),
    ("bad-aggregation", ["hi", "--aggregation", "mean"], ["--aggregation", "average"], 2),
    ("bad-format", ["hi", "--format", "xml"], ["--format"], 2),
    ("zero-batch-size", ["hi", "--batch-size", "0"], ["batch-size"], 2),
    ("resume-without-output", ["hi", "--resume"], ["--resume", "--output"], 2),
    ("two-input-sources", ["hi", "--file", "x.txt"], ["one way"], 2),
]


@pytest.mark.parametrize("case,args,words,code", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_bad_option_values(cli, model, case, args, words, code):
    assert_user_error(_infer(cli, model, *args), *words, code=code)


def test_unknown_task(cli):
    assert_user_error(cli("infer", "sentimant-analysis", "x"), "unknown task", "sentiment-analysis", code=2)


def test_unknown_option_is_a_usage_error(cli, model):
    result = _infer(cli, model, "hi", "--temprature", "1")
    assert result.code == 2 and "Traceback" not in result.err and "temprature" in result.err


def test_missing_file(cli, model, tmp_path):
    assert_user_error(_infer(cli, model, "--file", tmp_path / "missing.csv"), "not found", code=2)


def test_folder_given_as_file(cli, model, tmp_path):
    assert_user_error(_infer(cli, model, "--file", tmp_path), "is a folder", code=2)


def test_unsupported_file_type(cli, model, files):
    assert_user_error(
        _infer(cli, model, "--file", files("in.xlsx", "x")), "unsupported input file type", ".xlsx"
    )


def test_empty_text_file(cli, model, files):
    assert_user_error(_infer(cli, model, "--file", files("empty.txt", "")), "no inputs")


def test_empty_jsonl_file(cli, model, files):
    assert_user_error(_infer(cli, model, "--file", files("empty.jsonl", "\n")), "no inputs")


def test_empty_stdin(cli, model):
    assert_user_error(_infer(cli, model, "-", input=""), "no inputs")


def test_header_only_csv(cli, model, files):
    assert_user_error(_infer(cli, model, "--file", files("h.csv", "text\n")), "no inputs")


def test_wrong_column_lists_columns(cli, model, files):
    path = files("in.jsonl", json.dumps({"review": "good", "stars": 5}) + "\n")
    assert_user_error(
        _infer(cli, model, "--file", path, "--column", "text"), "column 'text' not found", "review"
    )


def test_no_default_column_lists_columns(cli, model, files):
    path = files("in.csv", "review,stars\ngood,5\n")
    assert_user_error(_infer(cli, model, "--file", path), "no text column", "review", "stars")


def test_invalid_jsonl_line_names_the_line(cli, model, files):
    path = files("in.jsonl", '{"text": "ok"}\n{"text": broken\n')
    assert_user_error(_infer(cli, model, "--file", path), "line 2", "not valid JSON")


def test_invalid_json_file(cli, model, files):
    assert_user_error(_infer(cli, model, "--file", files("in.json", '{"text": ')), "not valid JSON")


def test_non_utf8_text(cli, model, files):
    path = files("latin1.txt", "caf\xe9 cr\xe8me\n".encode("latin-1"))
    assert_user_error(_infer(cli, model, "--file", path), "cannot read", "UTF-8")


def test_corrupt_parquet(cli, model, files):
    assert_user_error(_infer(cli, model, "--file", files("in.parquet", b"not parquet")), "parquet")


def test_blank_text_in_a_table_fails_by_default_and_is_recorded_with_skip(cli, model, files):
    path = files("in.csv", 'text\ngood\n""\nbad\n')
    assert_user_error(_infer(cli, model, "--file", path), "input 1", "empty", code=1)
    skipped = _infer(cli, model, "--file", path, "--on-error", "skip")
    assert skipped.code == 0
    records = skipped.records()
    assert [r["id"] for r in records] == [0, 1, 2] and "error" in records[1] and "label" in records[2]


def test_nan_in_csv_is_an_item_error(cli, model, files):
    path = files("nan.csv", "text,x\nfine,1\n,2\n")
    assert_user_error(_infer(cli, model, "--file", path), "empty")


def test_huge_line_is_truncated_not_fatal(cli, model, files):
    path = files("huge.txt", ("word " * 200_000) + "\nshort\n")
    result = _infer(cli, model, "--file", path)
    assert result.code == 0, result.err
    assert len(result.records()) == 2


def test_model_folder_without_config(cli, tmp_path):
    (tmp_path / "m").mkdir()
    assert_user_error(cli("infer", "sentiment", "x", "--model", tmp_path / "m"), "no config.json")


def test_model_folder_without_weights(cli, model, tmp_path):
    import shutil

    folder = tmp_path / "noweights"
    shutil.copytree(model, folder)
    (folder / "model.safetensors").unlink()
    assert_user_error(cli("infer", "sentiment", "x", "--model", folder), "cannot load model")


def test_model_of_the_wrong_task(cli, tiny):
    qa = tiny("question-answering")
    assert_user_error(cli("infer", "sentiment", "x", "--model", qa), "question-answering model")


def test_offline_hub_id(cli):
    assert_user_error(
        cli("infer", "sentiment", "x", "--model", "acme/sentiment-model"), "unreachable", "--model"
    )


def test_missing_model_path(cli, tmp_path):
    assert_user_error(cli("infer", "sentiment", "x", "--model", f"{tmp_path}/nope/"), "not found")


def test_output_in_a_missing_folder(cli, model, tmp_path):
    assert_user_error(_infer(cli, model, "hi", "--output", tmp_path / "no" / "out.jsonl"), "does not exist")


def test_output_under_a_file(cli, model, files):
    blocker = files("blocker", "x")
    assert_user_error(_infer(cli, model, "hi", "--output", blocker / "out.jsonl"), "does not exist")


def test_output_with_unknown_extension(cli, model, tmp_path):
    assert_user_error(_infer(cli, model, "hi", "--output", tmp_path / "out.xml"), "unknown output type")


def test_output_that_is_a_folder(cli, model, tmp_path):
    (tmp_path / "o.jsonl").mkdir()
    assert_user_error(_infer(cli, model, "hi", "--output", tmp_path / "o.jsonl"), "is a folder")


def test_offline_dataset_name(cli, model):
    assert_user_error(_infer(cli, model, "--dataset", "acme/reviews"), "dataset", "unreachable")


def test_qa_without_context(cli, tiny):
    qa = tiny("question-answering")
    assert_user_error(cli("infer", "qa", "who?", "--model", qa), "context")

"""question-answering inference: windows over long contexts, span mapping, and the CLI.

A random tiny model answers at random, so the long-context checks use a hand-set "needle" model:
no transformer layers, and one word whose embedding alone lights up the start and end logits.
Whatever window holds that word must win, so the answer says exactly where it was found.
"""

from __future__ import annotations

import csv
import json
import random
import shutil

import pytest
from conftest import assert_user_error

from tasktool.tiny.text import WORDS

CONTEXT = "John Smith went to Paris in July. The best film of the year was made in London by Mary."
QUESTIONS = ["who went to paris?", "where was the film made?", "when", "what was made in london by mary?"]
NEEDLE = "river"  # starts and ends an answer
END = "mountain"  # may only end one
FILLER = [w for w in WORDS if w not in (NEEDLE, END)]


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("qa")


@pytest.fixture(scope="module")
def needle_model(tiny, tmp_path_factory):
    """A BERT QA model whose start and end logits are high on NEEDLE, middling on [CLS], low elsewhere.

    So it answers like a SQuAD v2 model: NEEDLE when the context has it, "no answer" otherwise.
    END has an even higher end logit (and a low start logit): "NEEDLE ... END" beats NEEDLE alone.
    With no layers and zero position embeddings each token's logits depend on that token alone:
    start logit = hidden dim 0, end logit = hidden dim 2, after the embedding LayerNorm.
    """
    import torch
    import transformers as tf

    out = tmp_path_factory.mktemp("needle-qa")
    base = tiny("qa")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).exists():
            shutil.copy(base / name, out / name)
    tok = tf.AutoTokenizer.from_pretrained(out)
    needle_id, end_id = tok.convert_tokens_to_ids([NEEDLE, END])
    assert tok.tokenize(f"{NEEDLE} {END}") == [NEEDLE, END], "each must be one token"
    config = tf.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=0,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
    )
    model = tf.BertForQuestionAnswering(config)
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.zero_()
        words = emb.word_embeddings.weight
        words[:, 1] = 1.0  # every token: dims 0 and 2 are ~-0.18 after LayerNorm
        words[needle_id] = 0.0
        words[needle_id, 0] = words[needle_id, 2] = 1.0  # the needle: dims 0 and 2 ~+3.9
        words[end_id] = 0.0
        words[end_id, 2] = 1.0  # END: dim 2 ~+5.6, dim 0 ~-0.18
        words[tok.cls_token_id, 0] = 0.5  # [CLS]: dim 0 ~+2.4, dim 2 ~-0.25: no answer scores ~2.1
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
        model.qa_outputs.weight.zero_()
        model.qa_outputs.weight[0, 0] = 1.0  # start logits read dim 0
        model.qa_outputs.weight[1, 2] = 1.0  # end logits read dim 2
        model.qa_outputs.bias.zero_()
    model.save_pretrained(out)
    return out


def _haystack(n_words: int, at: int, seed: int) -> tuple[str, int]:
    """A context of single-token words with NEEDLE as word number `at`; returns it and NEEDLE's offset."""
    rng = random.Random(seed)
    words = rng.choices(FILLER, k=n_words)
    words[at] = NEEDLE
    text = " ".join(words)
    return text, len(" ".join(words[:at])) + (1 if at else 0)


def _inputs(records) -> list[dict]:
    """The records' question/context pairs: a context is written once, later records name its context_id."""
    contexts = {r["input"]["context_id"]: r["input"]["context"] for r in records if "context" in r["input"]}
    return [
        {"question": r["input"]["question"], "context": contexts[r["input"]["context_id"]]} for r in records
    ]


def _check(records, payloads):
    assert _inputs(records) == payloads
    for r, p in zip(records, payloads, strict=True):
        assert 0 <= r["start"] <= r["end"] <= len(p["context"])
        assert p["context"][r["start"] : r["end"]] == r["answer"]
        assert 0.0 <= r["score"] <= 1.0
        assert r.get("no_answer", False) == (r["answer"] == "")


def test_answer_placed_after_the_first_window_is_found(cli, needle_model):
    from transformers import AutoTokenizer

    question = "where is the needle?"
    context, offset = _haystack(400, 300, seed=1)
    first_window = AutoTokenizer.from_pretrained(needle_model)(
        question, context, truncation="only_second", max_length=128, return_offsets_mapping=True
    )
    assert max(end for _, end in first_window["offset_mapping"]) < offset  # not in the first window
    result = cli("infer", "qa", "--question", question, "--context", context, "--model", needle_model)
    assert result.code == 0, result.err
    record = result.records()[0]
    assert (record["answer"], record["start"], record["end"]) == (NEEDLE, offset, offset + len(NEEDLE))
    assert "no_answer" not in record


def test_each_item_keeps_its_own_windows_in_a_batch(cli, needle_model, tmp_path):
    # needles early, late and in the middle, in contexts of different lengths, batched together
    cases = [_haystack(30, 5, 2), _haystack(400, 390, 3), _haystack(250, 120, 4), _haystack(400, 0, 5)]
    rows = [{"question": "where is it", "context": c} for c, _ in cases]
    data = tmp_path / "needles.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for batch in ("1", "3"):
        result = cli("infer", "qa", "--file", data, "--model", needle_model, "--batch-size", batch)
        assert result.code == 0, result.err
        got = [(r["answer"], r["start"]) for r in result.records()]
        assert got == [(NEEDLE, offset) for _, offset in cases]


@pytest.mark.parametrize("stride", ["0", "1000"])
def test_any_stride_still_covers_the_whole_context(cli, needle_model, stride):
    context, offset = _haystack(400, 222, seed=6)
    result = cli(
        "infer",
        "qa",
        "--question",
        "where",
        "--context",
        context,
        "--model",
        needle_model,
        "--stride",
        stride,
    )
    assert result.code == 0, result.err
    assert (result.records()[0]["answer"], result.records()[0]["start"]) == (NEEDLE, offset)


def test_no_needle_means_no_answer(cli, needle_model):
    # every window's [CLS] (no answer) beats its spans once the needle is gone
    context, _ = _haystack(200, 0, seed=7)
    context = context.replace(NEEDLE, "city")
    record = cli(
        "infer", "qa", "--question", "where", "--context", context, "--model", needle_model
    ).records()[0]
    assert (record["answer"], record["start"], record["end"], record["no_answer"]) == ("", 0, 0, True)


def test_max_answer_length_bounds_the_span(cli, needle_model):
    context = f"the {NEEDLE} and the old {END} went"  # a 5-token answer from NEEDLE to END
    args = ("infer", "qa", "--question", "where", "--context", context, "--model", needle_model)
    wide = cli(*args, "--max-answer-length", "5").records()[0]
    assert (wide["answer"], wide["start"]) == (f"{NEEDLE} and the old {END}", 4)
    short = cli(*args, "--max-answer-length", "4").records()[0]
    assert (short["answer"], short["start"]) == (NEEDLE, 4)


def test_literal_jsonl_csv_and_stdin_inputs_agree(cli, model, tmp_path):
    payloads = [{"question": q, "context": CONTEXT} for q in QUESTIONS]
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(p) + "\n" for p in payloads))
    table = tmp_path / "in.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "context"])
        w.writerows([[p["question"], p["context"]] for p in payloads])
    runs = [
        cli("infer", "qa", *QUESTIONS, "--context", CONTEXT, "--model", model),
        cli("infer", "qa", "--file", jsonl, "--model", model),
        cli("infer", "qa", "--file", table, "--model", model),
        cli("infer", "qa", "-", "--context", CONTEXT, "--model", model, input="\n".join(QUESTIONS) + "\n"),
    ]
    for run in runs:
        assert run.code == 0, run.err
        _check(run.records(), payloads)
    answers = [[(r["answer"], r["start"]) for r in run.records()] for run in runs]
    assert answers[0] == answers[1] == answers[2] == answers[3]


def test_output_file_holds_the_same_records(cli, model, tmp_path):
    out = tmp_path / "out.jsonl"
    shown = cli("infer", "qa", *QUESTIONS, "--context", CONTEXT, "--model", model)
    written = cli("infer", "qa", *QUESTIONS, "--context", CONTEXT, "--model", model, "--output", out)
    assert written.code == 0, written.err
    assert [json.loads(line) for line in out.read_text().splitlines()] == shown.records()


def test_batched_equals_unbatched(cli, model):
    long_context = " ".join([CONTEXT] * 12)  # several windows per item
    questions = [*QUESTIONS, "why"]
    args = ("infer", "qa", *questions, "--context", long_context, "--model", model)
    one = cli(*args, "--batch-size", "1").records()
    many = cli(*args, "--batch-size", "3").records()
    _check(many, [{"question": q, "context": long_context} for q in questions])
    assert [(r["answer"], r["start"], r["end"]) for r in one] == [
        (r["answer"], r["start"], r["end"]) for r in many
    ]
    assert [r["score"] for r in one] == pytest.approx([r["score"] for r in many], abs=1e-4)


def test_question_without_context_is_a_one_line_error(cli, model):
    assert_user_error(cli("infer", "qa", "who went?", "--model", model), "question", "context")


def test_empty_context_in_a_file_is_a_one_line_error(cli, model, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"question": "who?", "context": "  "}) + "\n")
    assert_user_error(cli("infer", "qa", "--file", data, "--model", model), "empty context")


def test_empty_question_is_skipped_with_an_error_record(cli, model, tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(
        json.dumps({"question": "", "context": CONTEXT})
        + "\n"
        + json.dumps({"question": "who", "context": CONTEXT})
        + "\n"
    )
    result = cli("infer", "qa", "--file", data, "--model", model, "--on-error", "skip")
    assert result.code == 0, result.err
    first, second = result.records()
    assert "empty question" in first["error"] and "answer" not in first
    assert "error" not in second and CONTEXT[second["start"] : second["end"]] == second["answer"]

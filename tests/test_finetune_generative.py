"""`tasktool finetune`/`evaluate` for summarization, translation, text-generation and fill-mask.

Tiny random models learn small synthetic tasks: a copy task (summary = the document) over ten
number words, its reverse as a 'translation', and random sentences for the language models.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from conftest import assert_user_error

pytestmark = pytest.mark.slow  # fine-tuning runs / several processes: `make test-fast` leaves these out

FAST = ["warmup_ratio=0", "save_steps=1000", "eval_steps=1000", "logging_steps=10"]
NUMBERS = "one two three four five six seven eight nine ten".split()


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def copy_rows(n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(summarization rows whose summary is the document, translation rows whose target is it reversed)."""
    rng = random.Random(seed)
    copies, reverses = [], []
    for _ in range(n):
        words = rng.choices(NUMBERS, k=rng.randint(3, 6))
        copies.append({"document": " ".join(words), "summary": " ".join(words)})
        reverses.append({"translation": {"en": " ".join(words), "fr": " ".join(reversed(words))}})
    return copies, reverses


def train(task: str, data: Path, out: Path, model: Path, overrides: list[str]):
    """Fine-tune through the Python API (as the CLI does); returns the trainer object."""
    from tasktool.io.readers import Source
    from tasktool.recipes import resolve_recipe
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    recipe = resolve_recipe(spec.name, overrides=[*overrides, *FAST])
    trainer = spec.load_trainer()(spec, recipe, {}, quiet=True)
    trainer.run(Source(str(data)), None, out, model=str(model))
    return trainer


def losses(folder: Path) -> list[float]:
    rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def log_keys(folder: Path) -> set[str]:
    return {k for line in (folder / "train_log.jsonl").read_text().splitlines() for k in json.loads(line)}


@pytest.fixture(scope="module")
def seq2seq_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s2s-data")
    copies, reverses = copy_rows(160)
    return _write_jsonl(folder / "copy.jsonl", copies), _write_jsonl(folder / "reverse.jsonl", reverses)


@pytest.fixture(scope="module")
def summarizer(tiny, seq2seq_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft-sum") / "model"
    train(
        "summarization",
        seq2seq_data[0],
        out,
        tiny("summarization"),
        [
            "max_steps=100",
            "lr=5e-3",
            "batch_size=16",
            "num_beams=1",
            "generation_max_new_tokens=12",
            "max_length=32",
        ],
    )
    return out


@pytest.fixture(scope="module")
def translator(tiny, seq2seq_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft-mt") / "model"
    train(
        "translation",
        seq2seq_data[1],
        out,
        tiny("translation"),
        [
            "max_steps=40",
            "lr=5e-3",
            "batch_size=16",
            "num_beams=1",
            "generation_max_new_tokens=12",
            "source_lang=en",
            "target_lang=fr",
        ],
    )
    return out


# ---------------------------------------------------------------------------------- seq2seq


def test_seq2seq_loss_falls_by_half_on_a_copy_task(summarizer):
    curve = losses(summarizer)
    assert len(curve) >= 5
    assert curve[-1] <= 0.5 * curve[0], curve
    # predict_with_generate: evaluation during training generated summaries and scored them with ROUGE
    assert {"eval_loss", "eval_rouge1", "eval_rougeL"} <= log_keys(summarizer)
    for name in (
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "metrics.json",
        "train_log.jsonl",
        "loss_curve.png",
        "README.md",
        "recipe.yaml",
        "eval.jsonl",
    ):
        assert (summarizer / name).exists(), name
    metrics = json.loads((summarizer / "metrics.json").read_text())
    assert {"rouge1", "rouge2", "rougeL"} <= set(metrics["eval"]) and metrics["train"]["global_step"] == 100


def test_summarizer_evaluate_reproduces_metrics_json_and_matches_infer(cli, summarizer, tmp_path):
    saved = json.loads((summarizer / "metrics.json").read_text())["eval"]
    result = cli(
        "evaluate",
        "summarization",
        "--model",
        summarizer,
        "--data",
        summarizer / "eval.jsonl",
        "--output",
        tmp_path / "m.json",
        "--predictions",
        tmp_path / "p.jsonl",
    )
    assert result.code == 0, result.err
    assert "rouge1" in result.out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics == pytest.approx(saved)
    evaluated = [json.loads(line)["prediction"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    inferred = cli(
        "infer",
        "summarization",
        "--model",
        summarizer,
        "--file",
        summarizer / "eval.jsonl",
        "--format",
        "jsonl",
    )
    assert inferred.code == 0, inferred.err
    assert [r["summary_text"] for r in inferred.records()] == evaluated


def test_summarizer_folder_loads_in_plain_transformers_and_generates_what_infer_does(cli, summarizer):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    doc = json.loads((summarizer / "eval.jsonl").read_text().splitlines()[0])["document"]
    tok = AutoTokenizer.from_pretrained(summarizer)
    model = AutoModelForSeq2SeqLM.from_pretrained(summarizer).eval()
    ids = model.generate(
        **tok(doc, return_tensors="pt")
    )  # the saved generation config: 12 new tokens, greedy
    plain = tok.decode(ids[0], skip_special_tokens=True).strip()
    inferred = cli("infer", "summarization", "--model", summarizer, doc, "--format", "jsonl")
    assert inferred.code == 0, inferred.err
    assert inferred.records()[0]["summary_text"] == plain


def test_translation_loss_falls_and_bleu_chrf_are_reproduced_by_evaluate(cli, translator, tmp_path):
    curve = losses(translator)
    assert curve[-1] < 0.8 * curve[0], curve
    saved = json.loads((translator / "metrics.json").read_text())["eval"]
    assert set(saved) - {"baseline", "baseline_bleu", "baseline_chrf", "beats_baseline"} == {
        "bleu",
        "chrf",
        "examples",
    }
    eval_rows = [json.loads(line) for line in (translator / "eval.jsonl").read_text().splitlines()]
    assert set(eval_rows[0]["translation"]) == {"en", "fr"}
    result = cli(
        "evaluate",
        "translation",
        "--model",
        translator,
        "--data",
        translator / "eval.jsonl",
        "--output",
        tmp_path / "m.json",
        "--predictions",
        tmp_path / "p.jsonl",
    )
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "m.json").read_text()) == pytest.approx(saved)
    # infer with no language flags feeds the model what it was trained on
    sources = [row["translation"]["en"] for row in eval_rows]
    inferred = cli("infer", "translation", "--model", translator, *sources, "--format", "jsonl")
    assert inferred.code == 0, inferred.err
    evaluated = [json.loads(line)["prediction"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [r["translation_text"] for r in inferred.records()] == evaluated


def test_translation_reads_source_and_target_columns_named_by_flags(cli, tiny, tmp_path):
    rows = [
        {"en_text": " ".join(NUMBERS[i : i + 3]), "fr_text": " ".join(reversed(NUMBERS[i : i + 3]))}
        for i in range(6)
    ]
    data = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    result = cli(
        "finetune",
        "translation",
        "--data",
        data,
        "--model",
        tiny("translation"),
        "--output-dir",
        tmp_path / "out",
        "--source-column",
        "en_text",
        "--target-column",
        "fr_text",
        "--max-steps",
        "2",
        "--quiet",
        "num_beams=1",
        "generation_max_new_tokens=4",
        *FAST,
    )
    assert result.code == 0, result.err
    saved = [json.loads(line) for line in (tmp_path / "out" / "eval.jsonl").read_text().splitlines()]
    assert all(set(r["translation"]) == {"en", "ro"} for r in saved)  # the recipe's default pair names
    assert {r["translation"]["en"] for r in saved} <= {r["en_text"] for r in rows}


def test_t5_summarization_prefix_is_saved_so_inference_uses_the_trained_one(
    cli, tiny, seq2seq_data, tmp_path
):
    from transformers import AutoConfig

    from tasktool.tasks.seq2seq.predict import summarization_prefix

    out = tmp_path / "t5"
    trainer = train(
        "summarization",
        seq2seq_data[0],
        out,
        tiny("summarization", family="t5"),
        ["max_steps=3", "num_beams=1", "generation_max_new_tokens=4", "source_prefix=shorten: "],
    )
    assert trainer.prefix == "shorten: "
    assert summarization_prefix(AutoConfig.from_pretrained(out))[0] == "shorten: "
    result = cli("infer", "summarization", "--model", out, "one two three", "--format", "jsonl")
    assert result.code == 0, result.err


def test_t5_translation_uses_the_inference_prefix_and_saves_the_trained_pair(
    cli, tiny, seq2seq_data, tmp_path
):
    from transformers import AutoConfig

    from tasktool.tasks.seq2seq.predict import translation_prefix

    out = tmp_path / "t5"
    trainer = train(
        "translation",
        seq2seq_data[1],
        out,
        tiny("summarization", family="t5"),
        ["max_steps=3", "num_beams=1", "generation_max_new_tokens=4", "source_lang=en", "target_lang=fr"],
    )
    assert trainer.prefix == "translate English to French: "
    # with no --source-lang/--target-lang, inference derives the same prefix from the saved config
    assert translation_prefix(AutoConfig.from_pretrained(out))[0] == trainer.prefix
    result = cli("infer", "translation", "--model", out, "one two three", "--format", "jsonl")
    assert result.code == 0, result.err


def test_mbart_language_codes_are_saved_so_infer_needs_no_language_flags(cli, seq2seq_data, tmp_path):
    """Language-code models: source code on the tokenizer, target code forced at generation, both saved."""
    import torch
    import transformers as tf

    base = tmp_path / "mbart"
    tok = tf.MBartTokenizer()  # no vocabulary: only special and language-code tokens, which is enough here
    tok.save_pretrained(base)
    config = tf.MBartConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    tf.MBartForConditionalGeneration(config).save_pretrained(base)
    out = tmp_path / "out"
    train(
        "translation",
        seq2seq_data[1],
        out,
        base,
        ["max_steps=2", "num_beams=1", "generation_max_new_tokens=4", "source_lang=en", "target_lang=fr"],
    )
    saved = tf.AutoTokenizer.from_pretrained(out)
    assert (saved.src_lang, saved.tgt_lang) == ("en_XX", "fr_XX")
    gen = tf.GenerationConfig.from_pretrained(out)
    assert gen.forced_bos_token_id == saved.convert_tokens_to_ids("fr_XX")
    result = cli("infer", "translation", "--model", out, "one two", "--format", "jsonl")
    assert result.code == 0, result.err


# ---------------------------------------------------------------------------------- language models


LM_TASKS = {"text-generation": "AutoModelForCausalLM", "fill-mask": "AutoModelForMaskedLM"}


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory):
    from tasktool.tiny.samples import text_lines

    folder = tmp_path_factory.mktemp("lm-data")
    (folder / "train.txt").write_text("\n".join(text_lines(200, seed=0)) + "\n")
    (folder / "test.txt").write_text("\n".join(text_lines(30, seed=1)) + "\n")
    return folder / "train.txt", folder / "test.txt"


@pytest.fixture(scope="module", params=list(LM_TASKS))
def lm(request, tiny, lm_data, tmp_path_factory):
    task = request.param
    out = tmp_path_factory.mktemp("ft-" + task) / "model"
    train(task, lm_data[0], out, tiny(task), ["max_steps=60", "lr=5e-3", "batch_size=8", "block_size=64"])
    return task, out


def test_language_model_loss_falls_and_held_out_perplexity_drops(cli, tiny, lm, lm_data, tmp_path):
    task, out = lm
    curve = losses(out)
    assert curve[-1] < 0.85 * curve[0], curve
    scores = {}
    for name, model in (("before", tiny(task)), ("after", out)):
        result = cli(
            "evaluate", task, "--model", model, "--data", lm_data[1], "--output", tmp_path / f"{name}.json"
        )
        assert result.code == 0, result.err
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert math.isfinite(scores[name]["perplexity"]) and scores[name]["tokens"] > 0
    assert scores["after"]["perplexity"] < 0.7 * scores["before"]["perplexity"], scores


def test_language_model_evaluate_reproduces_metrics_json_at_any_batch_size(cli, lm, tmp_path):
    task, out = lm
    saved = json.loads((out / "metrics.json").read_text())["eval"]
    assert saved["perplexity"] == pytest.approx(math.exp(saved["loss"]))
    result = cli(
        "evaluate",
        task,
        "--model",
        out,
        "--data",
        out / "eval.jsonl",
        "--batch-size",
        "3",
        "--output",
        tmp_path / "m.json",
        "--predictions",
        tmp_path / "p.jsonl",
    )
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics == pytest.approx(saved, rel=1e-4)
    blocks = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(blocks) == saved["blocks"] and sum(b["tokens"] for b in blocks) == saved["tokens"]


def test_language_model_folder_loads_in_infer_and_plain_transformers(cli, lm):
    import transformers

    task, out = lm
    prompt = "the city [MASK] big ." if task == "fill-mask" else "the city is"
    extra = ["--max-new-tokens", "5"] if task == "text-generation" else []
    result = cli("infer", task, "--model", out, prompt, "--format", "jsonl", *extra)
    assert result.code == 0, result.err
    record = result.records()[0]
    if task == "fill-mask":
        assert len(record["predictions"]) == 5 and all(
            math.isfinite(p["score"]) for p in record["predictions"]
        )
    else:
        assert record["generated_text"].startswith(prompt) and record["continuation"]
    model = getattr(transformers, LM_TASKS[task]).from_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size >= len(tok)


def test_whole_file_mode_holds_out_the_last_lines_of_one_document(tiny, lm_data, tmp_path):
    out = tmp_path / "lm"
    train(
        "text-generation",
        lm_data[1],
        out,
        tiny("text-generation"),
        ["max_steps=2", "line_by_line=false", "eval_fraction=0.2", "block_size=32"],
    )
    held_out = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    lines = lm_data[1].read_text().splitlines(keepends=True)
    assert len(held_out) == 1 and held_out[0]["text"] == "".join(lines[-6:])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval"]["examples"] == 1 and metrics["train"]["train_examples"] == 1


def test_language_model_trains_on_a_named_text_column_of_a_jsonl_file(cli, tiny, tmp_path):
    from tasktool.tiny.samples import text_lines

    data = _write_jsonl(
        tmp_path / "d.jsonl", [{"note": line, "n": i} for i, line in enumerate(text_lines(20))]
    )
    out = tmp_path / "o"
    result = cli(
        "finetune",
        "text-generation",
        "--data",
        data,
        "--text-column",
        "note",
        "--model",
        tiny("text-generation"),
        "--output-dir",
        out,
        "--max-steps",
        "2",
        "--quiet",
        *FAST,
    )
    assert result.code == 0, result.err
    assert "perplexity" in result.out
    held_out = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert len(held_out) == 2 and all(row["text"] in text_lines(20) for row in held_out)


def test_masked_lm_evaluation_masking_is_reproducible():
    from tasktool.tasks.fill_mask.evaluate import mask_block

    ids, special = list(range(100, 140)), [1] + [0] * 38 + [1]
    first = mask_block(ids, special, 4, 500, 0.15, random.Random("42-0"))
    assert first == mask_block(ids, special, 4, 500, 0.15, random.Random("42-0"))
    inputs, labels = first
    masked = [i for i, label in enumerate(labels) if label != -100]
    assert masked and 0 not in masked and 39 not in masked  # special tokens are never masked
    assert all(labels[i] == ids[i] for i in masked)
    assert all(inputs[i] == ids[i] for i in range(40) if i not in masked)


# ---------------------------------------------------------------------------------- bad data


@pytest.mark.parametrize(
    ("task", "flag"),
    [
        ("summarization", "--source-column"),
        ("translation", "--source-column"),
        ("text-generation", "--text-column"),
        ("fill-mask", "--text-column"),
    ],
)
def test_missing_column_lists_the_columns_found(cli, tiny, tmp_path, task, flag):
    data = _write_jsonl(tmp_path / "d.jsonl", [{"note": "some words", "abstract_": "words"}] * 4)
    result = cli("finetune", task, "--data", data, "--model", tiny(task), "--output-dir", tmp_path / "o")
    assert_user_error(result, "columns found", "note", "abstract_", flag)
    assert not (tmp_path / "o").exists()


def test_named_target_column_that_is_missing_suggests_the_nearest(cli, tiny, tmp_path):
    data = _write_jsonl(tmp_path / "d.jsonl", [{"document": "a b c", "summary": "a"}] * 4)
    result = cli(
        "finetune",
        "summarization",
        "--data",
        data,
        "--model",
        tiny("summarization"),
        "--target-column",
        "sumary",
        "--output-dir",
        tmp_path / "o",
    )
    assert_user_error(
        result, "'sumary' not found", "columns found: document, summary", "did you mean 'summary'"
    )


@pytest.mark.parametrize("task", ["summarization", "text-generation", "fill-mask"])
@pytest.mark.parametrize("name", ["empty.txt", "empty.jsonl"])
def test_empty_data_file_is_a_one_line_error(cli, tiny, tmp_path, task, name):
    (tmp_path / name).write_text("")
    result = cli(
        "finetune", task, "--data", tmp_path / name, "--model", tiny(task), "--output-dir", tmp_path / "o"
    )
    assert_user_error(result, name, "no rows")


def test_evaluate_on_an_empty_file_is_a_one_line_error(cli, tiny, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    result = cli(
        "evaluate", "text-generation", "--model", tiny("text-generation"), "--data", tmp_path / "empty.txt"
    )
    assert_user_error(result, "empty.txt", "no rows")


def test_translation_pair_without_the_recipe_languages_names_the_languages_found(
    cli, tiny, seq2seq_data, tmp_path
):
    result = cli(
        "finetune",
        "translation",
        "--data",
        seq2seq_data[1],
        "--model",
        tiny("translation"),
        "--output-dir",
        tmp_path / "o",
    )
    assert_user_error(result, "holds the languages en, fr", "source_lang=en target_lang=fr")


def test_empty_target_text_names_the_row(cli, tiny, tmp_path):
    rows = [{"document": "one two", "summary": "one"}, {"document": "three four", "summary": " "}]
    data = _write_jsonl(tmp_path / "d.jsonl", rows)
    result = cli(
        "finetune",
        "summarization",
        "--data",
        data,
        "--model",
        tiny("summarization"),
        "--output-dir",
        tmp_path / "o",
    )
    assert_user_error(result, "row 2", "empty target text", "'summary'")

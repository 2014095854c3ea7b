"""summarization and translation inference through the CLI with tiny random BART, Marian, T5 and mBART.

The tiny models are built with a larger random-init scale (init_std) so their outputs depend on
the input: with the default scale every input gives the same text, and a batching bug that mixed
rows up would go unseen.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import assert_user_error

TEXTS = [
    "Hello world",
    "The city of paris is a big city with many people",
    "a",
    "john went to london on monday",
]
NEW = "8"
CASES = {  # task -> (tiny builder arguments, output field)
    "summarization": ({}, "summary_text"),
    "translation": ({}, "translation_text"),
    "t5-summarization": ({"family": "t5"}, "summary_text"),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tiny):
    name = request.param
    kwargs, field = CASES[name]
    task = name.removeprefix("t5-")
    return SimpleNamespace(task=task, model=tiny(task, init_std=0.2, **kwargs), field=field)


def _run(cli, case, *args, input=None):
    result = cli("infer", case.task, *args, "--model", case.model, "--max-new-tokens", NEW, input=input)
    assert result.code == 0, result.err
    return result.records()


def _check(records, case, texts=TEXTS):
    assert [r["input"] for r in records] == texts
    assert [r["id"] for r in records] == list(range(len(texts)))
    for r in records:
        assert set(r) == {"id", "input", case.field}
        assert isinstance(r[case.field], str) and r[case.field].strip(), r


def test_literal_texts_give_one_output_each_in_order(cli, case):
    _check(_run(cli, case, *TEXTS), case)


def test_batched_equals_one_at_a_time(cli, case):
    one = _run(cli, case, *TEXTS, "--batch-size", "1")
    many = _run(cli, case, *TEXTS, "--batch-size", "3")
    assert one == many
    assert len({r[case.field] for r in one}) > 1  # outputs really depend on the input


def _predictor(task: str, model, **opts):
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    return spec.load_predictor()(spec, InferOptions(model=str(model), device="cpu", **opts))


@pytest.mark.parametrize("beams", [None, 2])
def test_at_most_max_new_tokens_are_generated(case, beams):
    predictor = _predictor(case.task, case.model, max_new_tokens=int(NEW), num_beams=beams)
    generate, lengths = predictor.model.generate, []

    def spy(**kwargs):
        out = generate(**kwargs)
        lengths.append(out.shape[1])
        return out

    predictor.model.generate = spy
    records = predictor.predict([predictor.prepare(t) for t in TEXTS])
    assert len(records) == len(TEXTS)
    assert lengths and max(lengths) <= int(NEW) + 1  # + the decoder start token


def test_beam_search_runs(cli, case):
    _check(_run(cli, case, *TEXTS, "--num-beams", "2"), case)


def test_sampling_without_a_seed_just_works(cli, case):
    records = _run(cli, case, *TEXTS, "--do-sample", "--top-p", "0.9")
    assert [r["input"] for r in records] == TEXTS
    assert all(isinstance(r[case.field], str) for r in records)


# --- T5 task prefixes -------------------------------------------------------------------------------

T5 = SimpleNamespace(model_type="t5")


def test_t5_summarization_prefix_is_summarize():
    from tasktool.tasks.seq2seq.predict import summarization_prefix

    assert summarization_prefix(T5) == ("summarize: ", {})
    assert summarization_prefix(SimpleNamespace(model_type="bart")) == ("", {})


def test_task_specific_params_give_the_prefix_and_generation_settings():
    from tasktool.tasks.seq2seq.predict import summarization_prefix, translation_prefix

    params = {
        "summarization": {"prefix": "sum: ", "num_beams": 4, "max_length": 200},
        "translation_en_to_de": {"prefix": "translate English to German: ", "num_beams": 3},
    }
    config = SimpleNamespace(model_type="t5", task_specific_params=params)
    assert summarization_prefix(config) == ("sum: ", {"num_beams": 4, "max_length": 200})
    assert translation_prefix(config, "en", "de") == ("translate English to German: ", {"num_beams": 3})


def test_t5_translation_prefix_from_language_flags_and_defaults():
    from tasktool.tasks.seq2seq.predict import translation_prefix

    assert translation_prefix(T5)[0] == "translate English to French: "  # the Hugging Face default
    assert translation_prefix(T5, "en", "de")[0] == "translate English to German: "
    assert translation_prefix(T5, "German", "english")[0] == "translate German to English: "
    assert translation_prefix(T5, None, "ro")[0] == "translate English to Romanian: "
    only_de_fr = SimpleNamespace(model_type="t5", task_specific_params={"translation_de_to_fr": {}})
    assert translation_prefix(only_de_fr)[0] == "translate German to French: "
    assert translation_prefix(only_de_fr, "de")[0] == "translate German to French: "


def test_t5_translation_without_a_target_it_cannot_infer_is_an_error():
    from tasktool.errors import TaskToolError
    from tasktool.tasks.seq2seq.predict import translation_prefix

    with pytest.raises(TaskToolError, match="cannot tell") as exc:
        translation_prefix(T5, "de")
    assert "--target-lang" in exc.value.hint
    with pytest.raises(TaskToolError, match="unknown language code 'xq'"):
        translation_prefix(T5, "en", "xq")


def test_t5_prefix_reaches_the_model(cli, tiny):
    """Each task puts its own prefix in front of the text the T5 model reads."""
    t5 = tiny("summarization", family="t5", init_std=0.2)
    summary = cli("infer", "summarization", "john went to london", "--model", t5, "--max-new-tokens", NEW)
    translation = cli(
        "infer",
        "translation",
        "john went to london",
        "--model",
        t5,
        "--max-new-tokens",
        NEW,
        "--target-lang",
        "de",
    )
    assert summary.code == 0 and translation.code == 0, summary.err + translation.err
    # translation with "translate English to German: " and summarization with "summarize: " see different
    # inputs, so the same model writes different text
    assert summary.records()[0]["summary_text"] != translation.records()[0]["translation_text"]
    for task, opts, prefix in [
        ("summarization", {}, "summarize: john"),
        ("translation", {"target_lang": "de"}, "translate English to German: john"),
    ]:
        predictor = _predictor(task, t5, **opts)
        ids = predictor.prepare("john went to london")["input_ids"]
        assert predictor.tokenizer.decode(ids, skip_special_tokens=True).startswith(prefix)


def test_t5_translation_with_an_unknown_direction_is_a_one_line_error(cli, tiny):
    t5 = tiny("summarization", family="t5", init_std=0.2)
    result = cli("infer", "translation", "hallo welt", "--model", t5, "--source-lang", "de")
    assert_user_error(result, "cannot tell which language", "--target-lang")


# --- mBART / NLLB language codes --------------------------------------------------------------------


@pytest.fixture(scope="module")
def mbart(tmp_path_factory):
    """A tiny mBART: the real MBartTokenizer (language-code tokens) and a 1-layer random model."""
    import torch
    import transformers as tf

    out = tmp_path_factory.mktemp("tiny-mbart")
    tok = tf.MBartTokenizer()
    tok.save_pretrained(out)
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
    model = tf.MBartForConditionalGeneration(config)
    model.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    return out


def test_mbart_without_target_language_is_a_one_line_error(cli, mbart):
    result = cli("infer", "translation", "hello", "--model", mbart, "--max-new-tokens", NEW)
    assert_user_error(result, "target language", "--target-lang")


def test_mbart_unknown_language_code_is_a_one_line_error(cli, mbart):
    result = cli("infer", "translation", "hello", "--model", mbart, "--target-lang", "xx_YY")
    assert_user_error(result, "unknown language code 'xx_YY'", "--target-lang")


def test_mbart_target_code_is_forced_as_first_token(cli, mbart):
    from transformers import AutoTokenizer

    predictor = _predictor("translation", mbart, source_lang="de", target_lang="fr", max_new_tokens=4)
    tok = AutoTokenizer.from_pretrained(mbart)
    assert predictor.tokenizer.src_lang == "de_DE"  # short codes resolve when unambiguous
    assert predictor.gen_kwargs["forced_bos_token_id"] == tok.convert_tokens_to_ids("fr_XX")
    inputs = predictor.collate([predictor.prepare("hello")], keys=("input_ids", "attention_mask"))
    assert inputs["input_ids"][0, -1].item() == tok.convert_tokens_to_ids("de_DE")  # source code on the input
    out = predictor.model.generate(**inputs, **predictor.gen_kwargs)
    assert out[0, 1].item() == tok.convert_tokens_to_ids("fr_XX")  # after the decoder start token
    result = cli(
        "infer", "translation", "hello", "--model", mbart, "--max-new-tokens", NEW, "--target-lang", "fr_XX"
    )
    assert result.code == 0, result.err
    assert isinstance(result.records()[0]["translation_text"], str)


def test_nllb_codes_found_and_short_forms_resolved():
    import transformers as tf

    from tasktool.errors import TaskToolError
    from tasktool.tasks.seq2seq.predict import language_codes, language_kwargs, pick_code

    tok = tf.NllbTokenizer()
    codes = language_codes(tok)
    assert "fra_Latn" in codes and "eng_Latn" in codes
    assert pick_code("fra", codes, "--target-lang") == "fra_Latn"
    gen = SimpleNamespace(forced_bos_token_id=None, decoder_start_token_id=2)
    kwargs = language_kwargs(tok, codes, gen, None, "fra_Latn")
    assert kwargs == {"forced_bos_token_id": tok.convert_tokens_to_ids("fra_Latn")}
    assert tok.src_lang == "eng_Latn"
    with pytest.raises(TaskToolError, match="target language") as exc:
        language_kwargs(tok, codes, gen, "deu_Latn", None)
    assert "--target-lang" in exc.value.hint


def test_marian_and_bpe_tokenizers_need_no_language_codes(tiny):
    from transformers import AutoTokenizer

    from tasktool.tasks.seq2seq.predict import language_codes

    assert language_codes(AutoTokenizer.from_pretrained(tiny("translation"))) is None

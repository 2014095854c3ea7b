"""text-generation inference through the CLI with a tiny random GPT-2."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error

PROMPTS = [
    "Hello world",
    "The city of paris is a big city with many people and",
    "a",
    "john went to london on",
]
NEW = "8"


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-generation")


def _gen(cli, model, *args, input=None):
    result = cli("infer", "text-generation", *args, "--model", model, "--max-new-tokens", NEW, input=input)
    assert result.code == 0, result.err
    return result.records()


def _check(records, prompts):
    """generated_text = prompt + a non-empty continuation."""
    assert [r["input"] for r in records] == prompts
    assert [r["id"] for r in records] == list(range(len(prompts)))
    for r, prompt in zip(records, prompts, strict=True):
        assert isinstance(r["generated_text"], str) and isinstance(r["continuation"], str)
        assert r["generated_text"] == prompt + r["continuation"]
        assert r["continuation"].strip(), r


def test_literal_prompts_give_prompt_plus_continuation_in_order(cli, model):
    _check(_gen(cli, model, *PROMPTS), PROMPTS)


def test_left_padded_batches_equal_one_prompt_at_a_time(cli, model):
    one = _gen(cli, model, *PROMPTS, "--batch-size", "1")
    many = _gen(cli, model, *PROMPTS, "--batch-size", "3")
    assert one == many
    assert len({r["continuation"] for r in one}) > 1  # the prompts really lead to different texts


def _predictor(model, **opts):
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve("text-generation")
    return spec.load_predictor()(spec, InferOptions(model=str(model), device="cpu", **opts))


def _new_token_counts(predictor, prompts):
    """Run predict on one batch, spying on generate: how many tokens each call added."""
    generate, counts = predictor.model.generate, []

    def spy(**kwargs):
        out = generate(**kwargs)
        counts.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    predictor.model.generate = spy
    records = predictor.predict([predictor.prepare(p) for p in prompts])
    assert len(records) == len(prompts)
    return counts


@pytest.mark.parametrize("beams", [None, 2])
def test_at_most_max_new_tokens_are_generated(model, beams):
    counts = _new_token_counts(_predictor(model, max_new_tokens=int(NEW), num_beams=beams), PROMPTS)
    assert counts and max(counts) <= int(NEW)


def test_greedy_decoding_is_repeatable(cli, model):
    assert _gen(cli, model, *PROMPTS) == _gen(cli, model, *PROMPTS)


def test_beam_search_runs_and_respects_the_length_limit(cli, model):
    _check(_gen(cli, model, *PROMPTS, "--num-beams", "2", "--batch-size", "2"), PROMPTS)


def test_sampling_without_a_seed_still_gives_well_formed_records(cli, model):
    records = _gen(cli, model, *PROMPTS, "--do-sample", "--temperature", "0.9", "--top-k", "20")
    assert [r["input"] for r in records] == PROMPTS
    for r, prompt in zip(records, PROMPTS, strict=True):
        assert r["generated_text"] == prompt + r["continuation"]


def test_prompt_longer_than_the_context_keeps_its_end(cli, model):
    # the tiny model's context is 128 tokens: a 300-word prompt must be cut from the left
    long_prompt = " ".join(["the"] * 299 + ["end"])
    result = cli("infer", "text-generation", long_prompt, "--model", model, "--max-new-tokens", NEW)
    assert result.code == 0, result.err
    assert "keeps only its last" in result.err
    record = result.records()[0]
    assert record["generated_text"] == long_prompt + record["continuation"]


def test_truncate_left_keeps_the_last_tokens_and_a_leading_bos():
    from tasktool.tasks.text_generation.predict import truncate_left

    assert truncate_left([1, 2, 3, 4, 5], 3) == [3, 4, 5]
    assert truncate_left([0, 2, 3, 4, 5], 3, bos_id=0) == [0, 4, 5]
    assert truncate_left([1, 2], 3, bos_id=0) == [1, 2]


def test_max_new_tokens_beyond_the_context_is_a_one_line_error(cli, model):
    result = cli("infer", "text-generation", "hello", "--model", model, "--max-new-tokens", "500")
    assert_user_error(result, "--max-new-tokens 500", "context of 128")


def test_model_generation_config_sampling_is_overridden_by_greedy_default(cli, model, tmp_path):
    import shutil

    copy = tmp_path / "sampler"
    shutil.copytree(model, copy)
    gen = json.loads((copy / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=0.7, top_p=0.9, max_new_tokens=5)
    (copy / "generation_config.json").write_text(json.dumps(gen))
    result = cli("infer", "text-generation", *PROMPTS, "--model", copy)
    assert result.code == 0, result.err
    again = cli("infer", "text-generation", *PROMPTS, "--model", copy)
    assert result.records() == again.records()  # greedy, so repeatable
    _check(result.records(), PROMPTS)
    assert (
        max(_new_token_counts(_predictor(copy), PROMPTS)) <= 5
    )  # the model's own max_new_tokens is the default


def test_generation_batches_32_prompts_by_default_and_a_given_batch_size_wins(model, tiny):
    """A decode step costs about the same for 8 rows as for 32 (it is mostly reading the weights), so
    text generation batches more by default than the other tasks; --batch-size always wins."""
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    def batch_size(task, folder, **given):
        opts = InferOptions(model=str(folder), device="cpu", **given)
        build_predictor(resolve(task), opts, quiet=True)
        return opts.batch_size

    assert batch_size("text-generation", model) == 32
    assert batch_size("text-generation", model, batch_size=4) == 4
    # a classifier given a token budget only (on a CPU it otherwise batches by tokens: 64 rows)
    assert batch_size("text-classification", tiny("text-classification"), max_batch_tokens=4096) == 8

"""Chat inference with a tiny Llama-style model and its chat template: messages in, response out."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error

CONVERSATIONS = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
    [{"role": "user", "content": "What is the city of paris like in summer"}],
    [
        {"role": "user", "content": "name a river"},
        {"role": "assistant", "content": "the long one"},
        {"role": "user", "content": "another"},
    ],
    [{"role": "user", "content": "a"}],
]
NEW = "8"


@pytest.fixture(scope="module")
def model(tiny):
    return tiny("text-generation", family="llama", init_std=0.2)


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, messages in enumerate(CONVERSATIONS):
            fh.write(json.dumps({"id": f"c{i}", "messages": messages}) + "\n")
    return path


def _predictor(model, **opts):
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    spec = resolve("text-generation")
    return spec.load_predictor()(spec, InferOptions(model=str(model), device="cpu", **opts))


def _chat(cli, model, *args):
    result = cli(
        "infer", "text-generation", *args, "--model", model, "--max-new-tokens", NEW, "--format", "jsonl"
    )
    assert result.code == 0, result.err
    return result.records()


def test_rendered_prompt_equals_apply_chat_template_with_the_generation_prompt(model):
    predictor = _predictor(model, max_new_tokens=4)
    tok = predictor.tokenizer
    for messages in CONVERSATIONS:
        want = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        assert predictor.prepare(messages)["input_ids"] == list(want["input_ids"])
    text = tok.decode(predictor.prepare(CONVERSATIONS[0])["input_ids"])
    assert text.endswith("<|user|>\nHello there</s>\n<|assistant|>\n")  # the generation prompt is there
    # --chat: a plain prompt is one user turn after the --system one
    wrapped = _predictor(model, max_new_tokens=4, chat=True, system="Be brief.")
    want = tok.apply_chat_template(CONVERSATIONS[0], add_generation_prompt=True, tokenize=True)["input_ids"]
    assert wrapped.prepare("Hello there")["input_ids"] == list(want)


def test_messages_file_gives_a_response_beside_the_messages_in_input_order(cli, model, chats):
    records = _chat(cli, model, "--file", chats)
    assert [r["id"] for r in records] == [f"c{i}" for i in range(len(CONVERSATIONS))]
    for record, messages in zip(records, CONVERSATIONS, strict=True):
        assert record["messages"] == messages
        assert record["input"] == messages[-1]["content"]  # the table shows the last turn
        assert isinstance(record["response"], str) and record["response"].strip()
        assert record["finish_reason"] in ("stop", "length")


def test_batched_chat_equals_one_conversation_at_a_time_under_greedy_decoding(cli, model, chats):
    one = _chat(cli, model, "--file", chats, "--batch-size", "1")
    many = _chat(cli, model, "--file", chats, "--batch-size", "3")
    assert one == many
    assert len({r["response"] for r in one}) > 1  # the conversations really lead to different replies


def test_seed_makes_sampling_repeatable(cli, model, chats):
    sample = ("--file", chats, "--do-sample", "--temperature", "1.5")
    first = _chat(cli, model, *sample, "--seed", "7")
    again = _chat(cli, model, *sample, "--seed", "7")
    other = _chat(cli, model, *sample, "--seed", "8")
    assert first == again
    assert [r["response"] for r in first] != [r["response"] for r in other]  # it does sample


def test_stop_string_cuts_the_response_before_it(cli, model):
    full = _chat(cli, model, "--chat", "What is the city of paris like in summer", "--max-new-tokens", "12")[
        0
    ]
    text = full["response"]
    assert len(text) > 4, text
    stop = text[3:5]  # a string from inside the reply
    cut = _chat(
        cli,
        model,
        "--chat",
        "What is the city of paris like in summer",
        "--max-new-tokens",
        "12",
        "--stop",
        stop,
    )[0]
    assert cut["response"] == text[: text.find(stop)].strip()
    assert cut["finish_reason"] == "stop"


def test_repetition_penalty_reaches_generate(model):
    predictor = _predictor(model, max_new_tokens=4, repetition_penalty=1.3)
    assert predictor.gen_kwargs["repetition_penalty"] == 1.3


def test_one_prompt_streams_its_tokens_to_stdout(model, capsys):
    from tasktool import api

    records = api.infer(
        "text-generation", "name a river", model=str(model), chat=True, max_new_tokens=6, stream=True
    )
    out = capsys.readouterr().out
    assert records[0]["response"] and records[0]["response"] in out


def test_device_map_auto_loads_and_gives_the_same_replies(model):
    from tasktool import api

    plain = api.infer("text-generation", CONVERSATIONS, model=str(model), max_new_tokens=4)
    mapped = api.infer(
        "text-generation", CONVERSATIONS, model=str(model), max_new_tokens=4, device_map="auto"
    )
    assert [r["response"] for r in plain] == [r["response"] for r in mapped]


def test_load_in_4bit_without_cuda_is_a_one_line_error(cli, model):
    result = cli("infer", "text-generation", "--chat", "hi", "--model", model, "--load-in-4bit")
    assert_user_error(result, "--load-in-4bit", "CUDA")


@pytest.mark.parametrize(
    ("messages", "words"),
    [
        ([{"role": "robot", "content": "hi"}], ("unknown role 'robot'", "system, user, assistant")),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "  "},
                {"role": "user", "content": "?"},
            ],
            ("message 2", "empty assistant turn"),
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}],
            ("ends with the assistant",),
        ),
    ],
)
def test_bad_messages_are_one_line_errors_naming_the_message(cli, model, tmp_path, messages, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n")
    result = cli("infer", "text-generation", "--file", path, "--model", model)
    assert_user_error(result, *words)


def test_tokenizer_without_a_chat_template_names_the_chat_template_flag(cli, tiny, tmp_path):
    gpt2 = tiny("text-generation")  # GPT-2 has no chat template
    result = cli("infer", "text-generation", "--chat", "hi", "--model", gpt2)
    assert_user_error(result, "no chat template", "--chat-template FILE")
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATIONS[0]}) + "\n")
    assert_user_error(
        cli("infer", "text-generation", "--file", path, "--model", gpt2), "--chat-template FILE"
    )
    # the fix works: a template from a file
    from tasktool.tiny.text import CHAT_TEMPLATE

    template = tmp_path / "chat.jinja"
    template.write_text(CHAT_TEMPLATE)
    result = cli(
        "infer",
        "text-generation",
        "--chat",
        "hi",
        "--model",
        gpt2,
        "--chat-template",
        template,
        "--max-new-tokens",
        "4",
        "--format",
        "jsonl",
    )
    assert result.code == 0, result.err
    assert "response" in result.records()[0]
    assert_user_error(
        cli(
            "infer",
            "text-generation",
            "--chat",
            "hi",
            "--model",
            gpt2,
            "--chat-template",
            tmp_path / "nope.jinja",
        ),
        "nope.jinja",
        "not found",
    )


def test_plain_prompts_keep_the_gpt2_style_records(cli, model):
    result = cli(
        "infer",
        "text-generation",
        "Hello world",
        "--model",
        model,
        "--max-new-tokens",
        "4",
        "--format",
        "jsonl",
    )
    assert result.code == 0, result.err
    record = result.records()[0]
    assert set(record) == {"id", "input", "generated_text", "continuation"}
    assert record["generated_text"] == "Hello world" + record["continuation"]


def test_chat_response_is_the_one_call_a_server_needs(model):
    from tasktool.tasks.text_generation.predict import chat_response

    predictor = _predictor(model, max_new_tokens=4)
    record = chat_response(predictor, CONVERSATIONS[1])
    assert record["messages"] == CONVERSATIONS[1] and record["response"]

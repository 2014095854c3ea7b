"""LoRA fine-tuning with peft: assistant-only labels on chat data, adapters only trained, the base
untouched, merging, and LoRA on the other text tasks."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import assert_user_error

from tasktool.tasks.text_generation.sample import ANSWER, chat_rows


def _jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def llama(tiny):
    return tiny("text-generation", family="llama", init_std=0.2)


# ---------------------------------------------------------------------- assistant-only labels


MULTI = [
    {"role": "system", "content": "Answer in one word."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "yes"},
    {"role": "user", "content": "second one"},
    {"role": "assistant", "content": "no way"},
]


def _tokenizer(llama):
    import transformers

    return transformers.AutoTokenizer.from_pretrained(llama)


def test_labels_are_minus_100_on_every_prompt_token_and_the_assistant_text_elsewhere(llama):
    from tasktool.tasks.text_generation.chat import AssistantLabels

    tok = _tokenizer(llama)
    feat = AssistantLabels(tok)(MULTI)
    ids, labels = feat["input_ids"], feat["labels"]
    assert ids == list(tok.apply_chat_template(MULTI, tokenize=True)["input_ids"])  # the rendered example
    learnt = [i for i, label in enumerate(labels) if label != -100]
    assert [labels[i] for i in learnt] == [ids[i] for i in learnt]
    # what is learnt is exactly the two replies with their end-of-turn token
    assert tok.decode([ids[i] for i in learnt]) == "yes</s>no way</s>"
    # every prompt token (system, user turns, role headers, the generation prompt) is masked
    prompt = tok.apply_chat_template(MULTI[:2], add_generation_prompt=True, tokenize=True)["input_ids"]
    assert all(label == -100 for label in labels[: len(prompt)])
    assert sum(label != -100 for label in labels) == len(
        tok("yes</s>no way</s>", add_special_tokens=False)["input_ids"]
    )


def test_a_template_without_generation_markers_gives_the_same_labels_by_rendering(llama):
    from tasktool.tasks.text_generation.chat import AssistantLabels
    from tasktool.tiny.text import CHAT_TEMPLATE

    marked = _tokenizer(llama)
    plain = _tokenizer(llama)
    plain.chat_template = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    by_rendering = AssistantLabels(plain)
    assert by_rendering.template is None  # TRL does not know this template: the rendering fallback
    want, got = AssistantLabels(marked)(MULTI), by_rendering(MULTI)
    assert got["input_ids"] == want["input_ids"]
    # the rendering fallback also learns the newline after the end-of-turn token (it is the turn's text)
    extra = [i for i, (a, b) in enumerate(zip(want["labels"], got["labels"], strict=True)) if a != b]
    assert all(want["labels"][i] == -100 and marked.decode([got["labels"][i]]) == "\n" for i in extra)


def test_trl_patches_a_known_template_without_markers(llama):
    """Llama 3's template has no {% generation %} markers: TRL's training copy of it is used."""
    from trl.chat_template_utils import llama3_chat_template

    from tasktool.tasks.text_generation.chat import AssistantLabels

    tok = _tokenizer(llama)
    tok.chat_template = llama3_chat_template
    labels = AssistantLabels(tok)
    assert labels.template is not None and "generation" in labels.template
    feat = labels(MULTI[:3])
    learnt = [t for t, label in zip(feat["input_ids"], feat["labels"], strict=True) if label != -100]
    assert "yes" in tok.decode(learnt) and "first question" not in tok.decode(learnt)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"messages": [{"role": "narrator", "content": "x"}]}, ("row 2", "unknown role 'narrator'")),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]},
            ("row 2", "empty assistant turn"),
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, ("row 2", "no assistant turn")),
    ],
)
def test_bad_chat_training_rows_are_one_line_errors_naming_the_row(cli, llama, tmp_path, row, words):
    data = _jsonl(tmp_path / "chat.jsonl", [chat_rows(1)[0], row, *chat_rows(4, seed=3)])
    result = cli(
        "finetune", "text-generation", "--data", data, "--model", llama, "-o", tmp_path / "out", "lora=true"
    )
    assert_user_error(result, *words)


def test_chat_data_with_a_tokenizer_without_a_template_names_the_chat_template_flag(cli, tiny, tmp_path):
    data = _jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    gpt2 = tiny("text-generation")
    result = cli(
        "finetune", "text-generation", "--data", data, "--model", gpt2, "-o", tmp_path / "out", "max_steps=1"
    )
    assert_user_error(result, "no chat template", "--chat-template FILE")


# ---------------------------------------------------------------------- a LoRA run on chat data


@pytest.fixture(scope="module")
def chat_run(llama, tmp_path_factory):
    """A LoRA fine-tune on conversations whose assistant always answers the same word."""
    from tasktool import api

    root = tmp_path_factory.mktemp("chat-lora")
    train = _jsonl(root / "train.jsonl", chat_rows(16))
    evals = _jsonl(root / "eval.jsonl", chat_rows(8, seed=5))
    questions = _jsonl(root / "questions.jsonl", chat_rows(6, seed=9, answer=None))
    weights = llama / "model.safetensors"
    before_sha = _sha(weights)
    before = api.infer("text-generation", file=str(questions), model=str(llama), max_new_tokens=4)
    out = root / "adapter"
    summary = api.finetune(
        "text-generation",
        str(train),
        eval_data=str(evals),
        model=str(llama),
        recipe="chat-lora",
        output_dir=str(out),
        quiet=True,
        overrides=[
            "max_steps=30",
            "lr=5e-3",
            "batch_size=8",
            "gradient_accumulation_steps=1",
            "warmup_ratio=0",
            "lora_dropout=0",
            "lora_r=8",
            "eval_steps=1000",
            "logging_steps=5",
        ],
    )
    return {
        "root": root,
        "out": out,
        "summary": summary,
        "before": before,
        "questions": questions,
        "evals": evals,
        "base_sha": before_sha,
        "weights": weights,
    }


@pytest.mark.slow
def test_lora_fine_tune_makes_greedy_decoding_give_the_trained_answer(chat_run):
    from tasktool import api

    assert not all(r["response"] == ANSWER for r in chat_run["before"])  # the base model does not say it
    after = api.infer(
        "text-generation", file=str(chat_run["questions"]), model=str(chat_run["out"]), max_new_tokens=4
    )
    assert [r["response"] for r in after] == [ANSWER] * len(after)
    assert all(r["finish_reason"] == "stop" for r in after)  # it learnt to end its turn too


@pytest.mark.slow
def test_output_folder_holds_the_adapter_and_reports_the_trainable_parameters(chat_run):
    from safetensors import safe_open

    out, summary = chat_run["out"], chat_run["summary"]
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # no copy of the base weights
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()
    with safe_open(out / "adapter_model.safetensors", "pt") as fh:
        keys = list(fh.keys())
        saved = sum(fh.get_tensor(k).numel() for k in keys)
    assert keys and all("lora_" in k for k in keys)
    train = summary["train"]
    assert train["trainable_parameters"] == saved  # only the adapter was trainable, and all of it is saved
    assert train["trainable_parameters"] < train["total_parameters"] / 2
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "lora" and log[0]["trainable_parameters"] == saved
    card = (out / "README.md").read_text()
    assert f"{saved:,} of {train['total_parameters']:,}" in card and "library_name: peft" in card
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["trainable_parameters"] == saved


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft asks transformers' old names
def test_base_weights_are_byte_identical_after_training(chat_run):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    assert _sha(chat_run["weights"]) == chat_run["base_sha"]  # the base folder is untouched
    base = load_file(chat_run["weights"])
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(chat_run["weights"].parent), chat_run["out"]
    )
    inside = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in model.state_dict().items()
        if "lora_" not in k
    }
    assert set(inside) == set(base)
    for name, tensor in base.items():
        assert torch.equal(inside[name], tensor), name  # the frozen weights the adapter trained on


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft asks transformers' old names
def test_merged_model_equals_base_plus_adapter_within_1e_5(cli, chat_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = chat_run["root"] / "merged"
    result = cli("merge", chat_run["out"], "-o", merged_dir)
    assert result.code == 0, result.err
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([tok("Hello there, what is the city of paris")["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(chat_run["weights"].parent).eval()
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(chat_run["weights"].parent), chat_run["out"]
    ).eval()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()  # plain transformers, no peft
    with torch.no_grad():
        want = with_adapter(input_ids=ids).logits
        got = merged(input_ids=ids).logits
        plain = base(input_ids=ids).logits
    assert (want - plain).abs().max() > 1e-2  # the adapter does change the outputs
    assert (got - want).abs().max() < 1e-5
    # merging again into the same folder is refused; the folder stays whole
    assert_user_error(cli("merge", chat_run["out"], "-o", merged_dir), "not empty")


@pytest.mark.slow
def test_evaluate_on_chat_data_is_the_perplexity_of_the_assistant_turns(cli, chat_run):
    import math

    import torch
    import torch.nn.functional as F

    from tasktool import api, runtime
    from tasktool.tasks.registry import resolve
    from tasktool.tasks.text_generation.chat import AssistantLabels

    out = chat_run["out"]
    metrics = api.evaluate("text-generation", str(out), str(chat_run["evals"]))
    saved = json.loads((out / "metrics.json").read_text())["eval"]
    assert metrics["perplexity"] == pytest.approx(saved["perplexity"], rel=1e-5)  # reproduces metrics.json
    # by hand: the mean negative log-likelihood of the assistant tokens only
    tok = runtime.load_tokenizer(str(out))
    model = runtime.load_model(resolve("text-generation"), str(out), device="cpu")
    labels = AssistantLabels(tok)
    nll, count = 0.0, 0
    for line in chat_run["evals"].read_text().splitlines():
        feat = labels(json.loads(line)["messages"])
        ids = torch.tensor([feat["input_ids"]])
        target = torch.tensor(feat["labels"][1:])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        nll += F.cross_entropy(logits, target, ignore_index=-100, reduction="sum").item()
        count += int((target != -100).sum())
    assert metrics["tokens"] == count == 8 * len(tok(ANSWER + "</s>", add_special_tokens=False)["input_ids"])
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)


@pytest.mark.slow
def test_adapter_folder_with_a_missing_base_is_a_one_line_error(cli, chat_run, tmp_path):
    import shutil

    copy = tmp_path / "moved"
    shutil.copytree(chat_run["out"], copy)
    config = json.loads((copy / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (copy / "adapter_config.json").write_text(json.dumps(config))
    result = cli("infer", "text-generation", "--chat", "hi", "--model", copy)
    assert_user_error(result, "base model", "base_model_name_or_path")


@pytest.mark.slow
def test_merge_true_writes_a_plain_model_with_the_adapter_beside_it(llama, tmp_path):
    from tasktool import api

    train = _jsonl(tmp_path / "train.jsonl", chat_rows(8))
    out = tmp_path / "merged-run"
    summary = api.finetune(
        "text-generation",
        str(train),
        eval_data=str(train),
        model=str(llama),
        output_dir=str(out),
        quiet=True,
        overrides=["lora=true", "merge=true", "max_steps=2", "batch_size=4", "lr=1e-2"],
    )
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert summary["eval"]["perplexity"] > 0
    merged = api.infer(
        "text-generation", [chat_rows(1, answer=None)[0]["messages"]], model=str(out), max_new_tokens=4
    )
    adapter = api.infer(
        "text-generation",
        [chat_rows(1, answer=None)[0]["messages"]],
        model=str(out / "adapter"),
        max_new_tokens=4,
    )
    assert merged[0]["response"] == adapter[0]["response"]


# ---------------------------------------------------------------------- peft on every task, and its errors


def test_only_adapter_and_head_parameters_are_trainable(tiny):
    import transformers

    from tasktool.training import lora

    model = transformers.AutoModelForTokenClassification.from_pretrained(
        tiny("token-classification", labels=["O", "B-PER", "I-PER"])
    )
    wrapped, info = lora.wrap(model, {"lora": True, "lora_r": 4}, "AutoModelForTokenClassification")
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or ".classifier.modules_to_save." in n for n in trainable)
    assert any("classifier.modules_to_save" in n for n in trainable)  # the new head learns in full
    assert info["trainable_parameters"] == sum(
        p.numel() for n, p in wrapped.named_parameters() if p.requires_grad
    )
    assert {"query", "key", "value", "dense"} <= set(info["lora_targets"])


def test_lora_on_a_convolutional_image_classifier_is_a_one_line_error_from_finetune(cli, tmp_path):
    import transformers

    from tasktool.tasks.image_classification.sample import write_classes

    model = tmp_path / "resnet"
    config = transformers.ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 8],
        depths=[1, 1],
        id2label={0: "blue", 1: "red"},
        label2id={"blue": 0, "red": 1},
    )
    transformers.ResNetForImageClassification(config).save_pretrained(model)
    transformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(model)
    data = write_classes(tmp_path / "train", per_class=2)
    result = cli(
        "finetune",
        "image-classification",
        "--data",
        data,
        "--model",
        model,
        "-o",
        tmp_path / "out",
        "lora=true",
        "max_steps=1",
    )
    assert_user_error(result, "lora=true", "resnet", "lora_target_modules")
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_lora_target_modules_the_model_lacks_is_a_one_line_error(cli, llama, tmp_path):
    data = _jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = cli(
        "finetune",
        "text-generation",
        "--data",
        data,
        "--model",
        llama,
        "-o",
        tmp_path / "out",
        "lora=true",
        "lora_target_modules=nope_proj",
        "max_steps=1",
    )
    assert_user_error(result, "nope_proj", "lora_target_modules")


def test_load_in_4bit_training_without_cuda_is_a_one_line_error(cli, llama, tmp_path):
    data = _jsonl(tmp_path / "chat.jsonl", chat_rows(8))
    result = cli(
        "finetune",
        "text-generation",
        "--data",
        data,
        "--model",
        llama,
        "-o",
        tmp_path / "out",
        "lora=true",
        "--load-in-4bit",
        "max_steps=1",
    )
    assert_user_error(result, "--load-in-4bit", "CUDA")
    result = cli(
        "finetune",
        "text-generation",
        "--data",
        data,
        "--model",
        llama,
        "-o",
        tmp_path / "out2",
        "load_in_4bit=true",
        "max_steps=1",
    )
    assert_user_error(result, "lora=true")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["text-classification", "token-classification", "summarization"])
def test_lora_fine_tunes_other_text_tasks_into_an_adapter_that_infer_and_evaluate_load(
    cli, tiny, tmp_path, task
):
    from tasktool import api
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    sample = spec.sample().write(tmp_path, spec)
    out = tmp_path / "adapter"
    summary = api.finetune(
        task,
        str(sample["train"]),
        eval_data=str(sample["eval"]),
        model=str(tiny(task)),
        output_dir=str(out),
        quiet=True,
        overrides=["lora=true", "max_steps=2", "batch_size=4", "eval_steps=1000"],
    )
    assert (out / "adapter_config.json").is_file() and (out / "config.json").is_file()
    assert 0 < summary["train"]["trainable_parameters"] < summary["train"]["total_parameters"]
    records = api.infer(
        task,
        sample.get("infer"),
        file=sample.get("infer_file"),
        model=str(out),
        **sample.get("infer_options", {}),
    )
    assert records and not any("error" in r for r in records)
    metrics = api.evaluate(task, str(out), str(sample["eval"]))
    for key, value in summary["eval"].items():  # evaluate on the adapter folder reproduces metrics.json
        if isinstance(value, float):
            assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_speed_patches_on_a_peft_model_give_the_plain_forwards_loss_and_gradients(tiny):
    """The packed encoder (on the model inside the peft wrapper) and the CPU dropout work under LoRA."""
    import copy

    import torch
    import transformers

    from tasktool.accel import fast_dropout, packed_encoder
    from tasktool.training import lora

    path = tiny("text-classification")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    batch = dict(
        tok(["ok", "a good film", "the worst movie of the year really"], padding=True, return_tensors="pt")
    )
    batch["labels"] = torch.tensor([1, 0, 1])
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        path, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    plain, _ = lora.wrap(
        model, {"lora": True, "lora_r": 4, "lora_dropout": 0.0}, "AutoModelForSequenceClassification"
    )
    for p in plain.parameters():  # a trained-looking adapter: B away from its zero start
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    patched = copy.deepcopy(plain)
    assert packed_encoder.apply(lora.base_of(patched))
    assert fast_dropout.apply(lora.base_of(patched))
    assert fast_dropout.state(lora.base_of(patched))["attention"]

    def loss_and_grads(m, mask=None):
        m.train()
        with packed_encoder.rows_of(mask):
            loss = m(**batch).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    want_loss, want = loss_and_grads(plain)
    got_loss, got = loss_and_grads(patched, batch["attention_mask"])
    assert torch.allclose(got_loss, want_loss, atol=1e-6)
    assert want.keys() == got.keys() and all("lora_" in n or "modules_to_save" in n for n in want)
    for name, grad in want.items():
        assert torch.allclose(got[name], grad, atol=1e-6, rtol=1e-4), name
    fast_dropout.remove(lora.base_of(patched))
    packed_encoder.remove(lora.base_of(patched))
    assert "forward" not in vars(lora.base_of(patched).base_model.encoder)


def test_recipes_show_and_finetune_find_the_chat_lora_recipe_by_name(cli):
    from tasktool.recipes import resolve_recipe

    result = cli("recipes", "show", "chat-lora")
    assert result.code == 0, result.err
    assert "lora: true" in result.out
    recipe = resolve_recipe("text-generation", "chat-lora")
    assert recipe["lora"] is True and recipe["lr"] == 2e-4 and recipe["task"] == "text-generation"

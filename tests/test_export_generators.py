"""Generators exported to ONNX and run by transformers' own generate: encoder-decoders (an encoder graph
and a decoder graph with a key/value cache) and decoder-only language models (one graph with a cache, the
prompt step run in length groups): the same tokens as the torch model under greedy and beam search.

The tiny random models get every weight matrix drawn again at standard deviation 1 and saved before export:
at the tiny builders' scale every input decodes to the same repeated token, and equal outputs would prove
nothing; redrawn, the outputs differ between inputs and from step to step (checked). fp32 graphs must give the torch model's text exactly
(the logits move by ~1e-6, far below any greedy or beam decision on these inputs); the int8 graphs are only
checked to run and give well-formed records (their numbers differ by design).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_user_error

import tasktool.api as api

TEXTS = [
    "the film was long and the actors were tired",
    "a short one",
    "John met Mary in Paris on a rainy monday and they talked for hours about books",
]
CLIPS = [str(FIXTURES / "audio" / n) for n in ("3_jackson_5.wav", "LJ001-0002.wav", "7_george_5.wav")]


def _sharpened(source: Path, out: Path) -> Path:
    """A copy of a tiny generator with large random weight matrices, so outputs depend on the input."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSpeechSeq2Seq,
        AutoProcessor,
    )

    config = AutoConfig.from_pretrained(source)
    cls = (
        AutoModelForSpeechSeq2Seq
        if config.model_type == "whisper"
        else AutoModelForSeq2SeqLM
        if config.is_encoder_decoder
        else AutoModelForCausalLM
    )
    model = cls.from_pretrained(source)
    seeded = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=seeded))
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(source).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """(task, torch folder, exported fp32 folder, exported int8 folder) per family, built once."""
    made = {}

    def make(task: str, family: str):
        if family not in made:
            root = tmp_path_factory.mktemp(f"seq2seq-{family}")
            source = _sharpened(tiny(task, family=family), root / "torch")
            fp32, int8 = root / "onnx", root / "onnx-int8"
            api.export(task, str(source), output_dir=fp32)
            api.export(task, str(source), output_dir=int8, quantize="int8")
            made[family] = (source, fp32, int8)
        return made[family]

    return make


CASES = [
    ("summarization", "bart"),
    ("summarization", "t5"),
    ("translation", "marian"),
    ("automatic-speech-recognition", "whisper"),
    ("text-generation", "gpt2"),
    ("text-generation", "llama"),
]


def _token_ids(task: str, folder: Path, inputs: list[str], **options):
    """generate's ids for the inputs, on the model tasktool loads from `folder` (torch or ONNX)."""
    import torch
    from transformers import AutoProcessor

    from tasktool import runtime
    from tasktool.io.audio import load_audio
    from tasktool.tasks.registry import resolve

    spec = resolve(task)
    auto = "AutoModelForSpeechSeq2Seq" if task == "automatic-speech-recognition" else None
    model = runtime.load_model(spec, str(folder), device="cpu", auto_class=auto)
    processor = AutoProcessor.from_pretrained(folder)
    if task == "automatic-speech-recognition":
        batch = processor.feature_extractor(
            [load_audio(p, 16000) for p in inputs], sampling_rate=16000, return_tensors="pt"
        )
    else:
        if task == "text-generation":  # left-padded, as tasktool and generate batch prompts
            processor.padding_side = "left"
            processor.pad_token = processor.pad_token or processor.eos_token
            options["pad_token_id"] = processor.pad_token_id
        batch = processor(inputs, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model.generate(**batch, do_sample=False, **options).tolist()


@pytest.mark.slow
@pytest.mark.parametrize(("task", "family"), CASES)
def test_exported_encoder_decoder_gives_the_torch_tokens_under_greedy_and_beam_search(task, family, exported):
    source, fp32, int8 = exported(task, family)
    inputs = CLIPS if task == "automatic-speech-recognition" else TEXTS
    for options in ({"max_new_tokens": 12}, {"max_new_tokens": 12, "num_beams": 3}):
        want = _token_ids(task, source, inputs, **options)
        assert _token_ids(task, fp32, inputs, **options) == want, options
        assert len({tuple(ids) for ids in want}) > 1, "the inputs must not all decode alike"
        assert any(len(set(ids[-8:])) > 1 for ids in want), "nor repeat one token"
    # and through `tasktool infer`: the same records
    field = {
        "summarization": "summary_text",
        "translation": "translation_text",
        "text-generation": "generated_text",
    }.get(task, "text")
    want = api.infer(task, inputs, model=str(source), device="cpu", max_new_tokens=12)
    got = api.infer(task, inputs, model=str(fp32), device="cpu", max_new_tokens=12)
    assert got == want
    quantized = api.infer(task, inputs, model=str(int8), device="cpu", max_new_tokens=12)
    assert [r["id"] for r in quantized] == [r["id"] for r in want]
    assert all(isinstance(r[field], str) and "error" not in r for r in quantized)


@pytest.mark.slow
def test_encoder_decoder_folder_holds_both_graphs_and_the_generation_settings(exported):
    _, fp32, int8 = exported("summarization", "bart")
    manifest = json.loads((fp32 / "export.json").read_text())
    assert manifest["graphs"] == "encoder-decoder"
    assert (manifest["encoder"], manifest["default"]) == ("encoder.onnx", "decoder.onnx")
    quantized = json.loads((int8 / "export.json").read_text())
    assert (quantized["encoder"], quantized["default"]) == ("encoder_int8.onnx", "decoder_int8.onnx")
    for folder in (fp32, int8):
        for name in ("config.json", "generation_config.json", "tokenizer.json", "README.md"):
            assert (folder / name).is_file(), name
    assert not list(fp32.parent.glob(".onnx.partial-*"))


@pytest.mark.slow
def test_encoder_decoder_export_refuses_optimize_and_a_ctc_speech_model(cli, tiny, tmp_path):
    bart = tiny("summarization", family="bart")
    result = cli("export", "summarize", "--model", bart, "--optimize", "O2", "-o", tmp_path / "a")
    assert_user_error(result, "--optimize applies to encoder models", "drop --optimize")
    ctc = tiny("automatic-speech-recognition", family="wav2vec2-ctc")
    result = cli("export", "asr", "--model", ctc, "-o", tmp_path / "b")
    assert_user_error(result, "not an encoder-decoder", "Whisper")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("group", "room"), [(1, 1), (2, 32)])
def test_prompt_pass_in_length_groups_gives_the_tokens_of_one_padded_batch(
    group, room, exported, monkeypatch
):
    """The decoder-only prompt step runs rows in groups of similar length, each padded to its own longest
    prompt, and lays their keys and values into the batch's cache: later steps must not see a difference.
    With room for 1 slot the cache buffers grow on every step: nothing may be lost when they do."""
    from tasktool import onnx_generation

    source, fp32, _ = exported("text-generation", "gpt2")
    prompts = [*TEXTS, "one", "two words here", TEXTS[2] + " " + TEXTS[0]]
    want = _token_ids("text-generation", source, prompts, max_new_tokens=10)
    monkeypatch.setattr(onnx_generation._OnnxCausalLM, "prompt_group", group)
    monkeypatch.setattr(onnx_generation._OnnxCausalLM, "room", room)
    assert _token_ids("text-generation", fp32, prompts, max_new_tokens=10) == want
    assert _token_ids("text-generation", fp32, prompts, max_new_tokens=10, num_beams=2) == _token_ids(
        "text-generation", source, prompts, max_new_tokens=10, num_beams=2
    )


@pytest.mark.slow
def test_perplexity_on_an_exported_text_generator_is_refused_in_one_line(cli, exported, tmp_path):
    """The graph gives the last position's logits only (what generate reads): scoring every position
    would silently be wrong, so evaluate says to use the torch model."""
    _, fp32, _ = exported("text-generation", "gpt2")
    data = tmp_path / "held_out.txt"
    data.write_text("\n".join(TEXTS * 4) + "\n")
    result = cli("evaluate", "text-generation", "--model", fp32, "--data", data)
    assert_user_error(result, "last position's logits only", "torch model", code=2)


@pytest.mark.slow
def test_a_right_padded_prompt_batch_runs_as_one_group_and_gives_the_torch_tokens(exported, monkeypatch):
    """Only a left-padded batch can drop leading columns per group; a right-padded one (what a script
    with a default tokenizer gives generate) must get exactly what torch computes for it."""
    import torch
    from transformers import AutoTokenizer

    from tasktool import onnx_generation, runtime
    from tasktool.tasks.registry import resolve

    monkeypatch.setattr(onnx_generation._OnnxCausalLM, "prompt_group", 1)  # groups would trim rows
    source, fp32, _ = exported("text-generation", "gpt2")
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "right"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batch = tokenizer([*TEXTS, "one"], padding=True, return_tensors="pt")
    options = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    spec = resolve("text-generation")
    with torch.inference_mode():
        want = runtime.load_model(spec, str(source), device="cpu").generate(**batch, **options)
        got = runtime.load_model(spec, str(fp32), device="cpu").generate(**batch, **options)
    assert got.tolist() == want.tolist()


@pytest.mark.slow
def test_an_exported_decoder_batches_64_prompts_by_default_and_a_torch_one_32(exported, monkeypatch):
    """The export's prompt pass runs in length groups whatever the batch, so its default batch is larger;
    an explicit --batch-size wins on both."""
    from tasktool.inference import build_predictor
    from tasktool.options import InferOptions
    from tasktool.tasks.registry import resolve

    source, fp32, _ = exported("text-generation", "gpt2")
    spec = resolve("text-generation")
    for model, want in ((fp32, 64), (source, 32)):
        opts = InferOptions(model=str(model), device="cpu")
        build_predictor(spec, opts, quiet=True)
        assert opts.batch_size == want
    opts = InferOptions(model=str(fp32), device="cpu", batch_size=8)
    build_predictor(spec, opts, quiet=True)
    assert opts.batch_size == 8


@pytest.mark.slow
def test_greedy_decode_steps_write_into_the_cache_buffers_without_copying_them(exported, monkeypatch):
    """Each step's new keys and values go into buffers made once per call; only beam search, whose
    reordering makes new tensors, has them copied (and still gets the torch tokens)."""
    from tasktool import onnx_generation

    source, fp32, _ = exported("text-generation", "llama")
    assert json.loads((fp32 / "export.json").read_text())["attention"] == "tasktool_cache_apart"
    copies = []
    real = onnx_generation._Buffers._roomy
    monkeypatch.setattr(
        onnx_generation._Buffers, "_roomy", staticmethod(lambda t, c: (copies.append(c), real(t, c))[1])
    )
    assert _token_ids("text-generation", fp32, TEXTS, max_new_tokens=12) == _token_ids(
        "text-generation", source, TEXTS, max_new_tokens=12
    )
    assert copies == []
    _token_ids("text-generation", fp32, TEXTS, max_new_tokens=4, num_beams=2)
    assert copies  # reordered by beam search: adopted into fresh buffers


def test_a_decoder_graph_from_an_earlier_export_is_refused_with_one_line(tmp_path):
    """Graphs that returned the whole cache (an earlier tasktool) do not fit the buffers: export again."""
    from types import SimpleNamespace

    from tasktool import onnx_generation
    from tasktool.errors import TaskToolError

    old = SimpleNamespace(output_names=["logits", "present.0.key"], path=tmp_path / "decoder.onnx")
    with pytest.raises(TaskToolError, match="earlier tasktool") as caught:
        onnx_generation._OnnxCausalLM.attach(SimpleNamespace(), old)
    assert "export the model again" in caught.value.one_line()

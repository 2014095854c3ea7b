"""Inference options shared by every task; a task reads the ones that concern it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InferOptions:
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None  # None: the task predictor's default_batch_size
    max_batch_tokens: int | None = None
    workers: int | None = None  # batches in flight at once on a CPU (None: the engine's choice)
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load pickle (.bin) weights; off because unpickling can run code
    compile: bool = False
    # text
    max_length: int | None = None  # input truncation (tokens)
    top_k: int | None = None  # labels / mask fills shown; sampling top-k for generation
    aggregation: str = "simple"  # NER entity grouping: none | simple | first | average | max
    # generation
    max_new_tokens: int | None = None
    num_beams: int | None = None
    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    # question answering
    stride: int = 128
    max_answer_length: int = 30
    # audio / vision
    threshold: float = 0.5
    save_visuals: str | None = None
    save_raw: bool = False
    chunk_length: float | None = None
    language: str | None = None
    return_timestamps: bool = False
    subtask: str = "panoptic"
    extra: dict = field(default_factory=dict)
    # chat models, sampling and big models (appended: keyword construction only)
    chat: bool = False  # plain prompts as one user turn, rendered with the chat template
    system: str | None = None  # --chat: a system turn before each prompt (or conversation without one)
    chat_template: str | None = None  # a Jinja chat template FILE for tokenizers without one
    seed: int | None = None  # sampling: the same seed, inputs and batch size give the same text
    repetition_penalty: float | None = None
    stop: list[str] | None = None  # generation stops at (and the text is cut before) any of these strings
    stream: bool | None = None  # print tokens as they come (None: on a terminal with one input)
    device_map: str | None = None  # "auto": accelerate spreads the model over the GPUs and CPU there are
    load_in_4bit: bool = False  # bitsandbytes quantization (CUDA)
    load_in_8bit: bool = False
    # auto: ONNX Runtime for a `tasktool export` folder, torch otherwise; onnxruntime on a torch model
    # exports it once into a cache folder (tasktool.export.cache)
    backend: str = "auto"
    # an int8 export's classifier: rows whose two best label scores are closer than this run again on
    # the export's float32 graph (tasktool.tasks.recheck)
    recheck_margin: float | None = None

    def generation_kwargs(self, default_max_new_tokens: int) -> dict:
        kwargs: dict = {"max_new_tokens": self.max_new_tokens or default_max_new_tokens}
        if self.num_beams:
            kwargs["num_beams"] = self.num_beams
        if self.do_sample:
            kwargs["do_sample"] = True
            if self.temperature is not None:
                kwargs["temperature"] = self.temperature
            if self.top_k is not None:
                kwargs["top_k"] = self.top_k
            if self.top_p is not None:
                kwargs["top_p"] = self.top_p
        else:
            kwargs["do_sample"] = False
        if self.repetition_penalty is not None:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


# option -> (lowest, lowest allowed?, highest, highest allowed?); None: no bound. Checked before any
# model loads, so `--top-k 0` is a usage error naming the range, never a silent default or a library
# error halfway through a run.
RANGES: dict[str, tuple[float | None, bool, float | None, bool]] = {
    "batch_size": (1, True, None, False),
    "max_batch_tokens": (1, True, None, False),
    "workers": (1, True, None, False),
    "max_length": (1, True, None, False),
    "top_k": (1, True, None, False),
    "max_new_tokens": (1, True, None, False),
    "num_beams": (1, True, None, False),
    "temperature": (0, False, None, False),
    "top_p": (0, False, 1, True),
    "stride": (0, True, None, False),
    "max_answer_length": (1, True, None, False),
    "threshold": (0, True, 1, True),
    "chunk_length": (0, False, None, False),
    "recheck_margin": (0, False, 1, True),
}


def describe_range(low, low_in: bool, high, high_in: bool) -> str:
    """'at least 1', 'greater than 0', 'between 0 and 1', 'in (0, 1]'."""
    if high is None:
        return f"at least {low:g}" if low_in else f"greater than {low:g}"
    if low is None:
        return f"at most {high:g}" if high_in else f"less than {high:g}"
    if low_in and high_in:
        return f"between {low:g} and {high:g}"
    if not low_in and not high_in:
        return f"between {low:g} and {high:g}, both excluded"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def in_range(value, low, low_in: bool, high, high_in: bool) -> bool:
    if low is not None and (value < low or (value == low and not low_in)):
        return False
    return not (high is not None and (value > high or (value == high and not high_in)))


def check_ranges(opts: InferOptions) -> None:
    """Every numeric infer option inside its valid range (a usage error otherwise, exit 2)."""
    import math

    from tasktool.errors import TaskToolError

    for name, bounds in RANGES.items():
        value = getattr(opts, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TaskToolError(
                f"{flag} must be a number, got {value!r}", f"{flag} must be {describe_range(*bounds)}"
            )
        if not in_range(value, *bounds):
            raise TaskToolError(
                f"{flag} must be {describe_range(*bounds)}, got {value:g}",
                f"pass a value {describe_range(*bounds)}",
            )


def check_options(spec, opts: InferOptions) -> None:
    """What `infer`, `serve` and `evaluate` check of the options before any model loads: ranges, and
    options the task cannot take."""
    from tasktool.errors import TaskToolError

    check_ranges(opts)
    if opts.recheck_margin is not None and not spec.load_predictor().rechecks:
        raise TaskToolError(
            "--recheck-margin applies to int8 exports of classifiers (texts, tokens, images, audio), "
            f"not to {spec.name}",
            "drop --recheck-margin",
            exit_code=2,
        )

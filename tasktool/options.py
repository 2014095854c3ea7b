"""Inference options shared by every task; a task reads the ones that concern it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InferOptions:
    model: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
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

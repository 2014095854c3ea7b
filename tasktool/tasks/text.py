"""What text tasks share: load tokenizer + model, tokenize per item, pad per batch."""

from __future__ import annotations

from tasktool.engine import Predictor
from tasktool.errors import ItemError

# (rows, padded tokens) of an encoder's batch on a CPU when no batch option is given; on 2,536 real
# sentences, whole process, 2-11% faster than 8 rows a batch (the old default) on torch and ONNX
# Runtime, same labels (benchmarks/cpu_batching.py; figures: benchmarks/README.md, "Batches by tokens")
CPU_BATCHING = (64, 1024)


class TextPredictor(Predictor):
    """Tokenizes each input once (no padding); batches are padded to their own longest item."""

    auto_class: str | None = None  # default: the task's model class
    padding_side = "right"
    # "numpy": predict reads the model's outputs as numpy arrays (tasktool.tasks.arrays.to_numpy), so an
    # exported model runs on ONNX Runtime without torch being imported at all
    arrays = "torch"

    def __init__(self, spec, opts, **model_kwargs):
        from tasktool import accel, runtime

        self.spec, self.opts = spec, opts
        self.tokenizer = runtime.load_tokenizer(
            opts.model,
            revision=opts.revision,
            trust_remote_code=opts.trust_remote_code,
            light=self.arrays == "numpy",
        )
        self.tokenizer.padding_side = self.padding_side
        self.model = runtime.load_for_inference(
            spec,
            opts,
            auto_class=self.auto_class,
            arrays=self.arrays,
            threads=self.batch_threads(),
            **model_kwargs,
        )
        self.device = self.model.device
        self.specialise(self.model)
        self.applied = accel.apply_for_inference(self.model, compile=opts.compile)  # logged at debug level
        if opts.compile:
            self.model = runtime.compile_model(self.model)  # inductor fuses for itself
        # --max-length beyond the model's limit would index past its position table: clamped, with a warning
        self.max_length = runtime.fit_length(
            opts.max_length, model_max_length(self.tokenizer, self.model.config)
        )
        self._cut_reported = False

    # Subclasses whose predict only reads the model and tokenizer set this: on a CPU the engine may
    # then run two batches at once (tasktool.engine.batch_workers). Compiled models stay on one thread.
    shareable: bool = False

    def concurrent_batches(self) -> bool:
        return self._may_share() and self.device.type == "cpu"

    def _may_share(self) -> bool:
        return self.shareable and not self.opts.compile

    def batch_threads(self) -> int:
        """Each batch's intra-op threads on a CPU, before the model is loaded (tasktool.engine.thread_share)."""
        from tasktool.engine import thread_share

        return thread_share(self._may_share(), self.opts.workers)

    # Subclasses measured to gain from batches cut by tokens on a CPU set this (benchmarks/cpu_batching.py)
    batch_by_tokens: bool = False

    def cpu_batching(self) -> tuple[int, int] | None:
        """An encoder on a CPU: batches by a budget of padded tokens, not by a count of rows. Short
        sentences then make batches big enough for the matmuls to run at full rate, long ones small
        batches with little padding (figures: benchmarks/README.md, "Batches by tokens")."""
        return CPU_BATCHING if self.batch_by_tokens and self.device.type == "cpu" else None

    def specialise(self, model) -> None:
        """Task hook: inference-only changes to the loaded model (before --compile)."""

    def tokenize(self, text: str, **kwargs) -> dict:
        if not isinstance(text, str) or not text.strip():
            raise ItemError("empty input text", "give non-empty text")
        check_unicode(text)
        return self.report_cuts(self.tokenizer(text, truncation=True, max_length=self.max_length, **kwargs))

    def report_cuts(self, enc):
        """One warning per run when truncation cut an input (fast tokenizers say what overflowed)."""
        if not self._cut_reported and any(e.overflowing for e in (getattr(enc, "encodings", None) or [])):
            from tasktool.console import warn

            self._cut_reported = True
            warn(
                f"inputs longer than {self.max_length} tokens are cut to their first {self.max_length} "
                "(the model's limit, --max-length or the recipe's max_length)"
            )
        return enc

    def prepare(self, payload):
        return self.tokenize(payload)

    # Subclasses whose prepare(str) is exactly from_encoding(tokenize(str, **tokenize_kwargs)) set this
    # (or inherit prepare) to get one batched tokenizer call per window instead of one call per input.
    batch_tokenize: bool = False
    tokenize_kwargs: dict = {}

    def from_encoding(self, row: dict, enc, index: int, text: str):
        """The prepared item from row `index` of a (batched) encoding; row holds its columns."""
        return row

    def prepare_many(self, payloads: list) -> list:
        if not (self.batch_tokenize or type(self).prepare is TextPredictor.prepare):
            return super().prepare_many(payloads)
        out: list = [None] * len(payloads)
        texts, where = [], []
        for i, payload in enumerate(payloads):
            if isinstance(payload, str) and payload.strip() and encodable(payload):
                texts.append(payload)
                where.append(i)
            else:  # pairs (dicts) and bad items take the one-by-one path, with its errors
                try:
                    out[i] = self.prepare(payload)
                except ItemError as exc:
                    out[i] = exc
        if texts:
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, **self.tokenize_kwargs)
            self.report_cuts(enc)
            columns = [(k, enc[k]) for k in enc.keys()]
            for j, i in enumerate(where):
                out[i] = self.from_encoding({k: v[j] for k, v in columns}, enc, j, texts[j])
        return out

    def length(self, prepared) -> int:
        return len(prepared["input_ids"])

    def collate(self, batch: list[dict], keys=("input_ids", "attention_mask", "token_type_ids")):
        """Pad a batch to its longest item, straight into int64 arrays (tokenizer.pad is slow on lists)."""
        import numpy as np

        tok = self.tokenizer
        numpy = getattr(self.model, "arrays", "torch") == "numpy"  # ONNX Runtime takes the arrays as they are
        present = [k for k in keys if k in batch[0]]
        if tok.pad_token_id is None or any(k not in f for f in batch for k in present):
            features = [{k: f[k] for k in keys if k in f} for f in batch]
            # raises its own clear error without a pad token
            padded = tok.pad(features, return_tensors="np" if numpy else "pt")
            return dict(padded) if numpy else {k: v.to(self.device) for k, v in padded.items()}
        fill = {
            "input_ids": tok.pad_token_id,
            "attention_mask": 0,
            "token_type_ids": tok.pad_token_type_id or 0,
        }
        lengths = [len(f["input_ids"]) for f in batch]
        longest = max(lengths)
        left = tok.padding_side == "left"
        out = {}
        for key in present:
            arr = np.full((len(batch), longest), fill.get(key, 0), dtype=np.int64)
            for row, (f, n) in enumerate(zip(batch, lengths, strict=True)):
                if left:
                    arr[row, longest - n :] = f[key]
                else:
                    arr[row, :n] = f[key]
            out[key] = arr if numpy else _to_device(arr, self.device)
        return out


def _to_device(array, device):
    import torch

    tensor = torch.from_numpy(array)
    return tensor if device.type == "cpu" else tensor.to(device, non_blocking=True)


def model_max_length(tokenizer, config, fallback: int = 512) -> int:
    """The longest input the model takes: the tokenizer's limit, capped by the position table."""
    from tasktool.runtime import max_input_length

    return max_input_length(tokenizer, config, fallback)


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def check_unicode(text: str) -> None:
    """A lone surrogate (bytes that were not UTF-8, a broken JSON escape) cannot be tokenized: one
    bad input, not a crash of the run."""
    if not encodable(text):
        raise ItemError(
            "input text is not valid Unicode (undecodable bytes or a lone surrogate)",
            "save the input as UTF-8",
        )

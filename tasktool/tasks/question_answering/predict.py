"""question-answering (extractive): the span of the context that answers the question.

transformers 5 has no QA pipeline, so this does what it did: a long context is cut into
overlapping windows (`--stride` tokens shared), every window is scored, and the best span over
all windows wins. Spans are ranked by start+end logit, which is comparable across windows;
the reported `score` is the span's probability (softmax over the window's context tokens and
[CLS], start times end). SQuAD v2 style: when the no-answer score ([CLS] start+end, lowest over
the windows) beats the best span, the answer is "" with `"no_answer": true`.
"""

from __future__ import annotations

from tasktool.errors import ItemError, TaskToolError
from tasktool.tasks.text import TextPredictor


def best_span(start_logits, end_logits, candidates, max_answer_length: int):
    """(start, end, logit sum) of the best span with start <= end, both candidates, short enough."""
    import torch

    n = start_logits.shape[0]
    scores = start_logits[:, None] + end_logits[None, :]
    ok = candidates[:, None] & candidates[None, :]
    ok &= torch.ones(n, n, dtype=torch.bool).triu() & torch.ones(n, n, dtype=torch.bool).tril(
        max_answer_length - 1
    )
    if not ok.any():
        return None
    scores = scores.masked_fill(~ok, float("-inf"))
    flat = int(scores.argmax())
    return flat // n, flat % n, float(scores.view(-1)[flat])


class QuestionAnswering(TextPredictor):
    shareable = True  # predict only reads the model and tokenizer: batches may run concurrently

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        if not getattr(self.tokenizer, "is_fast", False):
            raise TaskToolError(
                f"question-answering needs a fast tokenizer (for character offsets); '{opts.model}' has none",
                "use a model with a tokenizer.json",
            )
        if opts.max_answer_length < 1:
            raise TaskToolError("--max-answer-length must be at least 1")
        if opts.stride < 0:
            raise TaskToolError("--stride must not be negative")
        self.specials = self.tokenizer.num_special_tokens_to_add(pair=True)

    def prepare(self, payload):
        if not isinstance(payload, dict):
            raise ItemError("question answering needs a question and a context", "give both")
        question = str(payload.get("question") or "").strip()
        context = str(payload.get("context") or "")
        if not question:
            raise ItemError("empty question", "give a non-empty question")
        if not context.strip():
            raise ItemError("empty context", "give a non-empty context")
        q_len = len(self.tokenizer(question, add_special_tokens=False)["input_ids"])
        room = self.max_length - q_len - self.specials  # context tokens per window
        if room < 2:
            raise ItemError(
                f"question too long ({q_len} tokens) for windows of {self.max_length} tokens",
                "shorten the question or raise --max-length",
            )
        # the overlap must stay below the room per window; half the room keeps windows moving on
        stride = min(self.opts.stride, room // 2)
        enc = self.tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=self.max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        windows = []
        for w in range(len(enc["input_ids"])):
            seq_ids = enc.sequence_ids(w)
            window = {
                "input_ids": enc["input_ids"][w],
                "attention_mask": enc["attention_mask"][w],
                "context_mask": [s == 1 for s in seq_ids],
                "offsets": enc["offset_mapping"][w],
            }
            if "token_type_ids" in enc:
                window["token_type_ids"] = enc["token_type_ids"][w]
            windows.append(window)
        return {"windows": windows, "context": context}

    def length(self, prepared) -> int:
        return sum(len(w["input_ids"]) for w in prepared["windows"])

    def _logits(self, windows: list[dict]):
        """Start/end logits per window, run in sub-batches of at most --batch-size windows."""
        step = max(1, self.opts.batch_size)
        out = []
        for i in range(0, len(windows), step):
            chunk = windows[i : i + step]
            result = self.model(**self.collate(chunk))
            starts, ends = result.start_logits.float().cpu(), result.end_logits.float().cpu()
            for j, window in enumerate(chunk):
                n = len(window["input_ids"])  # drop the padding
                out.append((starts[j, :n], ends[j, :n]))
        return out

    def predict(self, batch):
        import torch

        flat = [w for item in batch for w in item["windows"]]
        logits = iter(self._logits(flat))
        cls_id = self.tokenizer.cls_token_id
        out = []
        for item in batch:
            best = null = None  # (logit sum, score, ...)
            for window in item["windows"]:
                start_l, end_l = next(logits)
                ids = window["input_ids"]
                cls = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
                candidates = torch.tensor(window["context_mask"])
                offsets = window["offsets"]
                candidates &= torch.tensor([e > s for s, e in offsets])  # tokens that cover text
                allowed = candidates.clone()
                allowed[cls] = True
                p_start = torch.softmax(start_l.masked_fill(~allowed, float("-inf")), dim=-1)
                p_end = torch.softmax(end_l.masked_fill(~allowed, float("-inf")), dim=-1)
                null_logit = float(start_l[cls] + end_l[cls])
                if null is None or null_logit < null[0]:
                    null = (null_logit, float(p_start[cls] * p_end[cls]))
                span = best_span(start_l, end_l, candidates, self.opts.max_answer_length)
                if span is None:
                    continue
                s, e, logit = span
                if best is None or logit > best[0]:
                    best = (logit, float(p_start[s] * p_end[e]), offsets[s][0], offsets[e][1])
            if best is None or (null is not None and null[0] > best[0]):
                out.append(
                    {"answer": "", "score": null[1] if null else 0.0, "start": 0, "end": 0, "no_answer": True}
                )
                continue
            _, score, start, end = best
            out.append(
                {"answer": item["context"][start:end], "score": score, "start": int(start), "end": int(end)}
            )
        return out

    def display(self, record):
        answer = "(no answer)" if record.get("no_answer") else repr(record["answer"])
        return {
            "answer": answer,
            "score": f"{record['score']:.3f}",
            "span": f"{record['start']}-{record['end']}",
        }


Predictor = QuestionAnswering

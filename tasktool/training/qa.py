"""Fine-tuning and evaluating extractive question answering (SQuAD format).

Training cuts long contexts into overlapping windows (`stride`) and marks the answer's start/end
token in each window ([CLS] where the answer is outside it). Evaluation does not decode spans
itself: it runs the QuestionAnswering predictor of `tasktool infer qa` and scores its answers
with SQuAD exact match / F1.
"""

from __future__ import annotations

from tasktool.errors import TaskToolError
from tasktool.metrics import squad
from tasktool.training import data as D
from tasktool.training.trainer import TaskTrainer, run_engine


class QATrainer(TaskTrainer):
    # no micro-batches: the span loss is a softmax over every position, padding included, so
    # trimming a part's padding would change the loss (batches stay whole)
    roles = {
        "question": ("--question-column", ("question", "query", "q"), True),
        "context": ("--context-column", ("context", "passage", "paragraph", "text", "document"), True),
        "answers": ("--answers-column", ("answers", "answer", "answer_text"), True),
    }

    def example(self, row, cols, where):
        question = str(D.field(row, cols["question"]) or "").strip()
        context = str(D.field(row, cols["context"]) or "")
        if not question:
            raise TaskToolError(f"{where}: empty question", "every row needs a question")
        if not context.strip():
            raise TaskToolError(f"{where}: empty context", "every row needs a context")
        texts, starts = _answers(D.field(row, cols["answers"]), row, context, where)
        for text, start in zip(texts, starts, strict=True):
            if context[start : start + len(text)] != text:
                found = context[start : start + len(text)]
                raise TaskToolError(
                    f"{where}: answer {text!r} is not at answer_start {start} of the context "
                    f"(the context has {found!r} there)",
                    "fix answer_start (a character offset into the context) or the answer text",
                )
        rid = row.get("id")
        return {
            "id": str(rid) if rid is not None else where,
            "question": question,
            "context": context,
            "answers": {"text": texts, "answer_start": starts},
        }

    def features(self, examples, tokenizer, train):
        if not getattr(tokenizer, "is_fast", False):
            raise TaskToolError(
                "QA fine-tuning needs a fast tokenizer (offsets)", "use a model with tokenizer.json"
            )
        max_length = int(self.recipe.get("max_length") or 384)
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        feats = []
        for ex in examples:
            q_len = len(tokenizer(ex["question"], add_special_tokens=False)["input_ids"])
            room = max_length - q_len - specials
            if room < 2:
                raise TaskToolError(
                    f"{ex.get('_where', 'a row')}: question too long ({q_len} tokens) for "
                    f"max_length {max_length}",
                    "raise max_length=... or shorten the question",
                )
            stride = min(int(self.recipe.get("stride") or 0), room // 2)
            enc = tokenizer(
                ex["question"],
                ex["context"],
                truncation="only_second",
                max_length=max_length,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
            )
            for w in range(len(enc["input_ids"])):
                ids = enc["input_ids"][w]
                start, end = _positions(
                    ids, enc["offset_mapping"][w], enc.sequence_ids(w), ex["answers"], tokenizer.cls_token_id
                )
                feat = {
                    "input_ids": ids,
                    "attention_mask": enc["attention_mask"][w],
                    "start_positions": start,
                    "end_positions": end,
                }
                if "token_type_ids" in enc:
                    feat["token_type_ids"] = enc["token_type_ids"][w]
                feats.append(feat)
        return feats

    def evaluate(self, model_dir, examples, batch_size=32, device="auto", max_length=None):
        payloads = [{"question": ex["question"], "context": ex["context"]} for ex in examples]
        records = run_engine(
            self.spec,
            model_dir,
            payloads,
            batch_size=batch_size,
            device=device,
            stride=int(self.recipe.get("stride") or 128),
            max_answer_length=int(self.recipe.get("max_answer_length") or 30),
        )
        preds = [r.get("answer", "") for r in records]
        refs = [ex["answers"]["text"] for ex in examples]
        metrics = squad(preds, refs)
        metrics["examples"] = len(examples)
        out = [
            {
                "id": ex["id"],
                "question": ex["question"],
                "answers": ex["answers"]["text"],
                "prediction": p,
                "score": r.get("score"),
            }
            for ex, r, p in zip(examples, records, preds, strict=True)
        ]
        return metrics, out


def _answers(value, row: dict, context: str, where: str) -> tuple[list[str], list[int]]:
    """SQuAD dict {text: [...], answer_start: [...]}, a list of such dicts, or a plain answer string."""
    if isinstance(value, dict):
        texts, starts = value.get("text", []), value.get("answer_start", [])
        if isinstance(texts, str):
            texts, starts = [texts], [starts]
    elif isinstance(value, list):
        texts = [a.get("text", "") for a in value if isinstance(a, dict)]
        starts = [a.get("answer_start") for a in value if isinstance(a, dict)]
    elif isinstance(value, str):
        texts = [value] if value else []
        given = row.get("answer_start")
        starts = [int(given) if given not in (None, "") else context.find(value)] if value else []
        if value and starts[0] < 0:
            raise TaskToolError(
                f"{where}: answer {value!r} does not occur in the context",
                "the answer must be a span of the context",
            )
    else:
        raise TaskToolError(
            f"{where}: cannot read the answers ({type(value).__name__})",
            "give answers as {text: [...], answer_start: [...]}",
        )
    if len(texts) != len(starts):
        raise TaskToolError(
            f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values",
            "give one answer_start per answer text",
        )
    try:
        starts = [int(s) for s in starts]
    except (TypeError, ValueError):
        raise TaskToolError(
            f"{where}: answer_start must be integers, got {starts}", "character offsets"
        ) from None
    return [str(t) for t in texts], starts


def _positions(ids, offsets, seq_ids, answers, cls_id) -> tuple[int, int]:
    """Start/end token of the first answer in this window, or the [CLS] index when it is not inside."""
    cls = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
    if not answers["text"]:
        return cls, cls
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    ctx = [i for i, s in enumerate(seq_ids) if s == 1]
    if not ctx:
        return cls, cls
    first, last = ctx[0], ctx[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls, cls
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1

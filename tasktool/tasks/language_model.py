"""What causal and masked language models share: text documents -> token blocks, and perplexity.

Text comes from .txt files (a document per line, or the whole file with line_by_line=false) or a
text column. Documents are tokenized (an EOS after each for causal models, so they learn where text
ends), then packed into blocks of `block_size` tokens (packing=false: each document is cut into its
own blocks). Perplexity is exp(mean token negative log-likelihood) over held-out text blocked the
same way; it does not depend on the batch size, so `tasktool evaluate` on the saved eval split
reproduces metrics.json.
"""

from __future__ import annotations

import math
from pathlib import Path

from tasktool.errors import TaskToolError
from tasktool.evaluator import Evaluator
from tasktool.io.columns import field
from tasktool.io.labelled import Reader
from tasktool.io.readers import Source
from tasktool.training import data as D
from tasktool.training.trainer import TaskTrainer

TEXT_SUFFIXES = (".txt", ".text", ".md", "")
LOGIT_BUDGET = 2**28  # logits elements per forward pass when scoring (about 1 GiB in float32)


def line_by_line(recipe: dict) -> bool:
    return recipe.get("line_by_line") is not False


class TextReader(Reader):
    """Documents: one per line of a .txt file (or the whole file), or a text column."""

    roles = {"text": ("--text-column", ("text", "content", "document", "sentence", "body", "article"), True)}

    def read(self, source: Source) -> list[dict]:
        path = Path(source.path).expanduser()
        if not line_by_line(self.recipe) and path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise TaskToolError(f"cannot read '{path}': {exc}", "save the file as UTF-8 text") from exc
            if not text.strip():
                raise TaskToolError(f"'{source.name}' holds no text", "give a file with some text in it")
            return [{"text": text, "_where": source.name}]
        return super().read(source)

    def example(self, row, cols, where):
        text = field(row, cols["text"])
        if text is None or not str(text).strip():
            raise TaskToolError(
                f"{where}: empty text in column '{cols['text']}'", "remove the row or fill it in"
            )
        return {"text": str(text)}


class Blocks:
    """Documents -> token blocks of `block_size` (the recipe's, capped by the model's length)."""

    def __init__(self, recipe: dict, causal: bool):
        self.recipe, self.causal = recipe, causal

    def block_size(self, tokenizer, config) -> int:
        from tasktool.tasks.text import model_max_length

        limit = model_max_length(tokenizer, config)
        wanted = self.recipe.get("block_size") or limit
        return max(2, min(int(wanted), limit))

    def token_sequences(self, examples: list[dict], tokenizer) -> list[list[int]]:
        texts = [ex["text"] for ex in examples]
        if not texts:
            return []
        ids = tokenizer(texts, verbose=False)["input_ids"]
        eos = tokenizer.eos_token_id if self.causal else None
        if eos is not None:
            ids = [seq if seq and seq[-1] == eos else [*seq, eos] for seq in ids]
        return ids

    def __call__(self, examples: list[dict], tokenizer, config) -> list[list[int]]:
        size = self.block_size(tokenizer, config)
        seqs = self.token_sequences(examples, tokenizer)
        if self.recipe.get("packing") is not False:
            flat = [t for seq in seqs for t in seq]
            chunks = [flat[i : i + size] for i in range(0, len(flat), size)]
        else:
            chunks = [seq[i : i + size] for seq in seqs for i in range(0, len(seq), size)]
        return [c for c in chunks if len(c) >= 2]


class LanguageModelTrainer(TaskTrainer):
    causal = True

    @property
    def loss_units(self) -> str:
        return "shifted_tokens" if self.causal else "tokens"

    def __init__(self, spec, recipe, columns=None, quiet=False):
        super().__init__(spec, recipe, columns, quiet)
        self.model = None
        self.blocks = Blocks(recipe, self.causal)

    def load_examples(self, data, eval_data):
        """One whole-file document with no --eval-data: hold out its last lines instead of a row."""
        if eval_data is not None or line_by_line(self.recipe):
            return super().load_examples(data, eval_data)
        docs = self.read(data)
        fraction = self.recipe.get("eval_fraction") or 0.1
        if len(docs) == 1:
            lines = docs[0]["text"].splitlines(keepends=True)
            if len(lines) < 2:
                raise TaskToolError(
                    "too little text to hold out an evaluation part (a single line)",
                    "give more text, or pass --eval-data",
                )
            n_eval = min(max(1, round(len(lines) * fraction)), len(lines) - 1)
            where = docs[0]["_where"]
            train = [{"text": "".join(lines[:-n_eval]), "_where": where}]
            evals = [{"text": "".join(lines[-n_eval:]), "_where": f"{where} (last {n_eval} lines)"}]
        else:
            train, evals = D.holdout(docs, fraction, self.recipe.get("seed") or 42)
        return train, evals, True

    def load_model(self, ref):
        self.model = super().load_model(ref)
        return self.model

    def features(self, examples, tokenizer, train):
        return [
            {"input_ids": b, "attention_mask": [1] * len(b), "labels": list(b)}
            for b in self.blocks(examples, tokenizer, self.model.config)
        ]

    def collator(self, tokenizer):
        return PadCollator(pad_id(tokenizer))


class PerplexityEvaluator(Evaluator):
    """Perplexity of held-out text: the model's own loss on token blocks (no generation, no engine)."""

    causal = True

    def eval_features(self, examples, tokenizer, config) -> list[dict]:
        return [
            {"input_ids": b, "labels": list(b)}
            for b in Blocks(self.recipe, self.causal)(examples, tokenizer, config)
        ]

    def evaluate(self, model_dir, examples, batch_size=32, device="auto", max_length=None):
        from tasktool import runtime
        from tasktool.metrics import perplexity

        tokenizer = runtime.load_tokenizer(model_dir, trust_remote_code=self.trust_remote_code)
        model = runtime.load_model(
            self.spec,
            model_dir,
            device=device,
            allow_pickle=self.allow_pickle,
            trust_remote_code=self.trust_remote_code,
        )
        feats = self.eval_features(examples, tokenizer, model.config)
        if not feats:
            raise TaskToolError(
                "the evaluation text is too short to score (fewer than 2 tokens)", "give more evaluation text"
            )
        scores = score_blocks(model, feats, batch_size, pad_id(tokenizer), shift=self.causal)
        total_nll = sum(nll for nll, _ in scores)
        total_tokens = sum(n for _, n in scores)
        result = perplexity(total_nll, total_tokens)
        metrics = {
            "perplexity": result["perplexity"],
            "loss": result["loss"],
            "tokens": total_tokens,
            "blocks": len(feats),
            "examples": len(examples),
        }
        records = [
            {
                "id": i,
                "tokens": n,
                "loss": nll / n if n else float("nan"),
                "perplexity": math.exp(min(nll / n, 700.0)) if n else float("nan"),
            }
            for i, (nll, n) in enumerate(scores)
        ]
        return metrics, records


def pad_id(tokenizer) -> int:
    """GPT-2 style tokenizers have no pad token: padded positions are masked, so EOS (or 0) serves."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


class PadCollator:
    """Right-pad input_ids/labels per batch; padding is masked out and never scored (-100)."""

    def __init__(self, pad: int):
        self.pad = pad

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(f.get("labels", f["input_ids"]), dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def score_blocks(model, feats: list[dict], batch_size: int, pad: int, shift: bool) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, scored tokens) per block, in block order."""
    import torch
    import torch.nn.functional as F

    vocab = int(getattr(model.config, "vocab_size", 0) or 50_000)
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    results: list[tuple[float, int]] = [(0.0, 0)] * len(feats)
    collate = PadCollator(pad)
    start = 0
    with torch.inference_mode():
        while start < len(order):
            width = len(feats[order[min(start + batch_size, len(order)) - 1]]["input_ids"])
            rows = max(1, min(batch_size, LOGIT_BUDGET // max(1, width * vocab)))
            ids = order[start : start + rows]
            start += rows
            batch = {k: v.to(model.device) for k, v in collate([feats[i] for i in ids]).items()}
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits.float()
            labels = batch["labels"]
            if shift:
                logits, labels = logits[:, :-1], labels[:, 1:]
            nll = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
            sums = nll.sum(dim=1).tolist()
            counts = (labels != -100).sum(dim=1).tolist()
            for i, s, n in zip(ids, sums, counts, strict=True):
                results[i] = (float(s), int(n))
    return results

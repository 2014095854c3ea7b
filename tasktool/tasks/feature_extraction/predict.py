"""Sentence embeddings from an encoder's last hidden states.

Pooling follows the model folder's sentence-transformers settings when it has them
(`1_Pooling/config.json`: mean or [CLS] tokens; `modules.json` listing a Normalize module: unit
length), else mean pooling over the real tokens, unit length. A record holds the `embedding`; a pair
input ({"text", "text_pair"}) holds the two texts' cosine `similarity` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasktool.errors import ItemError
from tasktool.tasks.text import TextPredictor


def pooling_of(model_dir: str) -> tuple[str, bool]:
    """(pooling: "mean" | "cls", normalize) from a sentence-transformers folder; ("mean", True) else."""
    folder = Path(model_dir).expanduser()
    mode, normalize = "mean", True
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return mode, normalize
    normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict))
    for module in modules:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
            try:
                config = json.loads((folder / module.get("path", "") / "config.json").read_text("utf-8"))
            except (OSError, ValueError):
                continue
            mode = "cls" if config.get("pooling_mode_cls_token") else "mean"
    return mode, normalize


class FeatureExtraction(TextPredictor):
    shareable = True  # predict only reads the model and tokenizer: batches may run concurrently

    def __init__(self, spec, opts, **model_kwargs):
        super().__init__(spec, opts, **model_kwargs)
        self.pooling, self.normalize = pooling_of(opts.model)

    def prepare(self, payload):
        if isinstance(payload, dict):  # a pair: both texts are embedded, the record is their similarity
            first, second = payload.get("text"), payload.get("text_pair")
            return {"pair": [self.tokenize(first), self.tokenize(second)]}
        return self.tokenize(payload)

    def length(self, prepared) -> int:
        if "pair" in prepared:
            return max(len(p["input_ids"]) for p in prepared["pair"])
        return len(prepared["input_ids"])

    def embed(self, encodings: list[dict]):
        hidden = self.model(**self.collate(encodings)).last_hidden_state.float()
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = self.collate(encodings, keys=("attention_mask",))["attention_mask"].unsqueeze(-1).float()
            vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.normalize:
            import torch

            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors

    def predict(self, batch):
        import torch

        singles = [i for i, p in enumerate(batch) if "pair" not in p]
        pairs = [i for i, p in enumerate(batch) if "pair" in p]
        out: list[dict | None] = [None] * len(batch)
        if singles:
            vectors = self.embed([batch[i] for i in singles]).cpu()
            for i, vector in zip(singles, vectors, strict=True):
                out[i] = {"embedding": vector.tolist(), "dim": int(vector.shape[0])}
        if pairs:
            encodings = [batch[i]["pair"][k] for i in pairs for k in (0, 1)]
            vectors = self.embed(encodings).cpu()
            a, b = vectors[0::2], vectors[1::2]
            sims = torch.nn.functional.cosine_similarity(a, b, dim=-1)
            for i, sim in zip(pairs, sims.tolist(), strict=True):
                out[i] = {"similarity": sim}
        if any(record is None for record in out):  # pragma: no cover - every item is a single or a pair
            raise ItemError("an input was neither a text nor a pair")
        return out

    def display(self, record):
        if "similarity" in record:
            return {"similarity": f"{record['similarity']:.4f}"}
        head = ", ".join(f"{v:.3f}" for v in record["embedding"][:4])
        return {"dim": str(record["dim"]), "embedding": f"[{head}, …]"}


Predictor = FeatureExtraction

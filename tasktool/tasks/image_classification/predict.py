"""image-classification: the top-k labels of an image (ViT, ConvNeXT, any AutoModelForImageClassification)."""

from __future__ import annotations

from tasktool.tasks.recheck import Rechecks
from tasktool.tasks.vision import VisionPredictor

DEFAULT_TOP_K = 5


class ImageClassification(Rechecks, VisionPredictor):
    def __init__(self, spec, opts):
        super().__init__(spec, opts)
        self.start_rechecks(self.model)

    def run(self, images, inputs, refs):
        import torch

        logits = self.forward(inputs).logits.float()
        multi = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        probs = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
        probs = self.rechecked_torch(probs, inputs, multi)
        k = max(1, min(self.opts.top_k or DEFAULT_TOP_K, probs.shape[-1]))
        scores, ids = probs.topk(k, dim=-1)
        out = []
        for row_scores, row_ids in zip(scores.tolist(), ids.tolist(), strict=True):
            labels = [{"label": self.label(i), "score": s} for i, s in zip(row_ids, row_scores, strict=True)]
            out.append({"label": labels[0]["label"], "score": labels[0]["score"], "labels": labels})
        return out

    def display(self, record):
        others = ", ".join(f"{x['label']} ({x['score']:.2f})" for x in record["labels"][1:4])
        return {"label": str(record["label"]), "score": f"{record['score']:.3f}", "next": others}


Predictor = ImageClassification

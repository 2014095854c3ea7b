"""Scoring segmentation models: mIoU, per-class IoU and pixel accuracy (torchmetrics' multiclass
Jaccard index and accuracy, pooled over all pixels of the evaluation set, `ignore_index` pixels left
out; a class absent from both truth and predictions has no IoU and is not averaged), and for panoptic
data PQ, SQ and RQ (torchmetrics' PanopticQuality; things are the classes with instance ids).
"""

from __future__ import annotations

import numpy as np

from tasktool.tasks.vision_training import StreamingEvaluator, enlarge, save_pictures, side_by_side


class Evaluator(StreamingEvaluator):
    def check_examples(self, examples, config):
        from tasktool.tasks.pixel_maps import check_pairs

        self.reader = self.spec.reader(self.recipe)
        names = getattr(config, "id2label", None) or {}
        self.names = [str(names[i]) for i in sorted(names)]
        self.reader.num_labels = len(self.names)
        checked = check_pairs(
            examples, self.reader.check, bool(self.recipe.get("strict")), "evaluation", role="mask"
        )
        self.things = set()
        if self.reader.panoptic:  # thing classes: those that come as instances
            for ex in checked:
                ids, inst = self.reader.mask(ex), self.reader.instances(ex)
                self.things.update(np.unique(ids[(inst > 0) & (ids != self.reader.ignore_index)]).tolist())
        return checked

    def infer_options(self):
        return {"subtask": "panoptic" if self.reader.panoptic else "semantic", "extra": {"keep_maps": True}}

    def reset(self):
        from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

        classes = len(self.names) + 1  # and one for "no segment" (panoptic pixels no segment covers)
        ignore = self.reader.ignore_index
        self.iou = MulticlassJaccardIndex(
            classes, average="none", ignore_index=ignore, zero_division=float("nan")
        )
        self.accuracy = MulticlassAccuracy(classes, average="micro", ignore_index=ignore)
        self.pq = None
        if self.reader.panoptic:
            from torchmetrics.detection import PanopticQuality

            stuffs = set(range(len(self.names))) - self.things
            self.pq = PanopticQuality(
                things=self.things or {len(self.names) + 1},  # it wants both sets non-empty
                stuffs=stuffs or {len(self.names) + 2},
                allow_unknown_preds_category=True,
                return_sq_and_rq=True,
            )

    def update(self, example, record):
        import torch

        truth = self.reader.mask(example)
        none = len(self.names)
        if self.pq is None:
            predicted = record["_map"]
        else:
            segments, classes = record["_map"]
            lookup = np.full(int(segments.max()) + 1, none, dtype=np.int64)
            for seg_id, class_id in classes.items():
                lookup[seg_id] = class_id
            predicted = lookup[segments]
            inst = self.reader.instances(example)
            void = none + 10  # a category in neither set: left out of PQ
            target = np.stack([np.where(truth == self.reader.ignore_index, void, truth), inst], axis=-1)
            pred = np.stack([np.where(segments > 0, predicted, void), segments], axis=-1)
            self.pq.update(torch.from_numpy(pred)[None], torch.from_numpy(target)[None])
        truth_t = torch.from_numpy(np.asarray(truth, dtype=np.int64))
        pred_t = torch.from_numpy(np.asarray(predicted, dtype=np.int64))
        self.iou.update(pred_t[None], truth_t[None])
        self.accuracy.update(pred_t[None], truth_t[None])

    def score(self, examples, records):
        import math

        scored, skipped = self.scored(records)
        per_class = self.iou.compute().tolist()[: len(self.names)] if scored else [math.nan] * len(self.names)
        present = [v for v in per_class if not math.isnan(v)]
        metrics = {
            "mean_iou": float(np.mean(present)) if present else 0.0,
            "pixel_accuracy": float(self.accuracy.compute()) if scored else 0.0,
        }
        if self.pq is not None and scored:
            pq, sq, rq = (float(v) for v in self.pq.compute().flatten()[:3])
            metrics.update(pq=pq, sq=sq, rq=rq)
        for name, value in zip(self.names, per_class, strict=True):
            if not math.isnan(value):
                metrics[f"iou_{name}"] = float(value)
        metrics["examples"] = scored
        if skipped:
            metrics["skipped"] = skipped
        rows = [
            {k: v for k, v in r.items() if not k.startswith("_")} | {"mask": examples[r["id"]]["target"]}
            for r in records
        ]
        return metrics, rows

    def artifacts(self, folder):
        from tasktool.io.images import load_image
        from tasktool.io.visuals import overlay_segments

        pictures = []
        for example, record in getattr(self, "shown", []):
            image = load_image(example["path"])
            truth = self.reader.mask(example)
            if self.pq is None:
                predicted = record["_map"]
            else:
                segments, classes = record["_map"]
                lookup = np.full(int(segments.max()) + 1, -1, dtype=np.int64)
                for seg_id, class_id in classes.items():
                    lookup[seg_id] = class_id
                predicted = lookup[segments]
            _, image, (truth, predicted) = enlarge(image, truth, predicted)
            panels = [(image, "image")]
            for title, ids in (("truth", truth), ("prediction", predicted)):
                shown = np.where((ids >= 0) & (ids < len(self.names)), ids + 1, 0)
                present = sorted(set(np.unique(shown).tolist()) - {0})
                legend = [{"id": c, "label": self.names[c - 1]} for c in present]
                panels.append((overlay_segments(image, shown, legend), title))
            pictures.append((example["path"], side_by_side(panels)))
        return save_pictures(
            folder,
            pictures,
            "Image, true classes and predicted classes (one colour per class; untinted: no class).",
        )

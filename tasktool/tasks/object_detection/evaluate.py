"""Scoring object detectors with pycocotools' COCOeval (the reference COCO box metric): mAP over IoU
0.50:0.95, mAP@50, mAP@75, mAP for small/medium/large boxes and the AP of each class, on the
predictions `tasktool infer` makes (with no score threshold, the 100 best boxes of each image).
Crowd boxes are COCO's "ignore" regions. Classes with no box in the evaluation data have no AP.
"""

from __future__ import annotations

import contextlib
import io

from tasktool.tasks.vision_training import StreamingEvaluator, enlarge, save_pictures, side_by_side

MAX_DETECTIONS = 100
SHOWN_SCORE = 0.5  # pictures: predicted boxes at least this sure (else the best three)


def coco_map(
    images: list[dict], truths: list[list[dict]], detections: list[list[dict]], classes: list[str]
) -> dict:
    """COCO box metrics. images: {"width", "height"}; truths: per image [{"label", "box": xyxy, "crowd"}];
    detections: per image [{"label", "box": xyxy, "score"}]; classes: every class name (ids in order)."""
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ids = {name: i + 1 for i, name in enumerate(classes)}
    gt = {
        "images": [
            {"id": n + 1, "width": im["width"], "height": im["height"]} for n, im in enumerate(images)
        ],
        "categories": [{"id": i, "name": name} for name, i in ids.items()],
        "annotations": [],
    }
    for n, objects in enumerate(truths):
        for obj in objects:
            x0, y0, x1, y1 = obj["box"]
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": n + 1,
                    "category_id": ids[obj["label"]],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(bool(obj.get("crowd"))),
                }
            )
    found = [
        {
            "image_id": n + 1,
            "category_id": ids[d["label"]],
            "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]],
            "score": float(d["score"]),
        }
        for n, dets in enumerate(detections)
        for d in sorted(dets, key=lambda d: -d["score"])[:MAX_DETECTIONS]
        if d["label"] in ids
    ]
    keys = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large")
    if not gt["annotations"]:
        return {}
    if not found:
        metrics = dict.fromkeys(keys, 0.0)
        metrics.update(
            {f"ap_{name}": 0.0 for name in {o["label"] for t in truths for o in t if not o.get("crowd")}}
        )
        return metrics
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        result = coco.loadRes(found)
        evaluation = COCOeval(coco, result, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [float(v) for v in evaluation.stats[:6]]
    # COCOeval's -1: no true box of that size (small/medium/large); such a key is left out
    metrics = {k: v for k, v in zip(keys, stats, strict=True) if v >= 0}
    precision = evaluation.eval["precision"]  # [IoU thresholds, recall points, classes, areas, max dets]
    for k, cat in enumerate(evaluation.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        if values.size:
            metrics[f"ap_{classes[cat - 1]}"] = float(np.mean(values))
    return metrics


class Evaluator(StreamingEvaluator):
    def check_examples(self, examples, config):
        from tasktool.evaluator import known_labels
        from tasktool.tasks.object_detection.train import check_classes

        self.classes = [str(config.id2label[i]) for i in sorted(config.id2label)]
        return check_classes(examples, known_labels(config))

    def infer_options(self):
        return {"threshold": 0.0}  # every box the model proposes: COCOeval ranks them by score

    def reset(self):
        self.found: dict[int, list[dict]] = {}

    def update(self, example, record):
        self.found[record["id"]] = [
            {
                "label": o["label"],
                "score": o["score"],
                "box": [o["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")],
            }
            for o in record["objects"]
        ]

    def score(self, examples, records):
        scored = [r for r in records if "error" not in r]
        images = [{"width": r["width"], "height": r["height"]} for r in scored]
        truths = [examples[r["id"]]["objects"] for r in scored]
        metrics = coco_map(images, truths, [self.found[r["id"]] for r in scored], self.classes)
        metrics["boxes"] = sum(not o.get("crowd") for t in truths for o in t)  # 0: nothing to score
        metrics["examples"] = len(scored)
        if len(scored) < len(records):
            metrics["skipped"] = len(records) - len(scored)
        rows = [
            {**r, "truth": [{"label": o["label"], "box": o["box"]} for o in examples[r["id"]]["objects"]]}
            for r in records
        ]
        return metrics, rows

    def artifacts(self, folder):
        from tasktool.io.images import load_image
        from tasktool.io.visuals import draw_boxes

        pictures = []
        for example, record in getattr(self, "shown", []):
            factor, image, _ = enlarge(load_image(example["path"]))

            def scaled(objects, factor=factor):
                return [
                    {
                        **o,
                        "box": {
                            k: v * factor
                            for k, v in zip(("xmin", "ymin", "xmax", "ymax"), o["box"], strict=True)
                        },
                    }
                    for o in objects
                ]

            truth = [{"label": o["label"], "score": 1.0, "box": o["box"]} for o in example["objects"]]
            found = sorted(self.found[record["id"]], key=lambda d: -d["score"])
            sure = [d for d in found if d["score"] >= SHOWN_SCORE] or found[:3]
            panels = [
                (draw_boxes(image, scaled(truth)), "truth"),
                (draw_boxes(image, scaled(sure)), "prediction"),
            ]
            pictures.append((example["path"], side_by_side(panels)))
        return save_pictures(
            folder,
            pictures,
            f"True boxes and predicted boxes (score at least {SHOWN_SCORE}, else the best three).",
        )

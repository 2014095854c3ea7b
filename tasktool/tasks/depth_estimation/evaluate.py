"""Scoring depth models: AbsRel, RMSE, log10 and the share of pixels within 1.25, 1.25^2, 1.25^3 of
the truth, over the valid pixels of each image (truth > 0, and <= max_depth when set), averaged over
images as in the GLPN/BTS evaluations. No median scaling unless `median_scaling` is on.

torchmetrics has no depth metrics (its MeanAbsolutePercentageError is AbsRel pooled over pixels, which
the tests use to check this one); these are the few lines of the standard definitions.
"""

from __future__ import annotations

import numpy as np

from tasktool.tasks.vision_training import StreamingEvaluator, enlarge, save_pictures, side_by_side

MIN_DEPTH = 1e-3
KEYS = ("abs_rel", "rmse", "log10", "delta1", "delta2", "delta3")


def depth_errors(
    predicted, truth, median_scaling: bool = False, max_depth: float | None = None
) -> dict | None:
    """The standard errors of one predicted map against its truth (same shape); None: no valid pixel."""
    predicted = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    valid = np.isfinite(truth) & (truth > 0)
    if max_depth:
        valid &= truth <= max_depth
    if not valid.any():
        return None
    pred, gt = predicted[valid], truth[valid]
    if median_scaling:
        pred = pred * (np.median(gt) / max(float(np.median(pred)), MIN_DEPTH))
    pred = np.clip(pred, MIN_DEPTH, max_depth or np.inf)
    ratio = np.maximum(pred / gt, gt / pred)
    return {
        "abs_rel": float(np.mean(np.abs(pred - gt) / gt)),
        "rmse": float(np.sqrt(np.mean((pred - gt) ** 2))),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


class Evaluator(StreamingEvaluator):
    def check_examples(self, examples, config):
        from tasktool.tasks.pixel_maps import check_pairs

        self.reader = self.spec.reader(self.recipe)
        return check_pairs(
            examples, self.reader.check, bool(self.recipe.get("strict")), "evaluation", role="depth file"
        )

    def reset(self):
        self.per_image: list[dict | None] = []
        self.rows_by_id: dict[int, dict | None] = {}

    def update(self, example, record):
        truth = self.reader.depth(example)
        errors = depth_errors(
            record["_map"],
            truth,
            median_scaling=bool(self.recipe.get("median_scaling")),
            max_depth=self.recipe.get("max_depth") or None,
        )
        self.rows_by_id[record["id"]] = errors

    def score(self, examples, records):
        rows, scored = [], []
        for r in records:
            errors = self.rows_by_id.get(r["id"]) if "error" not in r else None
            row = {"id": r["id"], "input": r["input"], "target": examples[r["id"]]["target"]}
            if "error" in r:
                row["error"] = r["error"]
            elif errors is None:
                row["error"] = "no valid depth pixel"
            else:
                row.update(errors)
                scored.append(errors)
            rows.append(row)
        metrics = {k: float(np.mean([e[k] for e in scored])) if scored else float("nan") for k in KEYS}
        metrics["examples"] = len(scored)
        left_out = len(records) - len(scored)
        if left_out:
            metrics["skipped"] = left_out
        return metrics, rows

    def artifacts(self, folder):
        from tasktool.io.images import load_image
        from tasktool.io.visuals import colormap

        pictures = []
        for example, record in getattr(self, "shown", []):
            _, image, (truth, pred) = enlarge(
                load_image(example["path"]), self.reader.depth(example), record["_map"]
            )
            valid = truth > 0
            low = float(min(truth[valid].min() if valid.any() else 0, pred.min()))
            high = float(max(truth[valid].max() if valid.any() else 1, pred.max()))
            span = max(high - low, 1e-6)
            from PIL import Image

            truth_rgb = colormap((truth - low) / span)
            truth_rgb[~valid] = 0  # invalid pixels: black
            panels = [
                (image, "image"),
                (Image.fromarray(truth_rgb, "RGB"), "truth"),
                (Image.fromarray(colormap((pred - low) / span), "RGB"), "prediction"),
            ]
            pictures.append((example["path"], side_by_side(panels)))
        return save_pictures(
            folder,
            pictures,
            "Image, true depth and predicted depth on one colour scale (dark blue: near, red: far; black: no truth).",
        )

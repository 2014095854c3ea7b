"""object-detection: boxes with labels and scores (DETR and other AutoModelForObjectDetection models)."""

from __future__ import annotations

from tasktool.tasks.vision import VisionPredictor, sizes


class ObjectDetection(VisionPredictor):
    visual_kind = "boxes"

    def run(self, images, inputs, refs):
        outputs = self.forward(inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        found = self.processor.post_process_object_detection(
            outputs, threshold=self.opts.threshold, target_sizes=sizes(images)
        )
        results = []
        for image, ref, det in zip(images, refs, found, strict=True):
            objects = []
            for score, label, box in zip(
                det["scores"].tolist(), det["labels"].tolist(), det["boxes"].tolist(), strict=True
            ):
                objects.append(
                    {
                        "label": self.label(label),
                        "score": score,
                        "box": clip_box(box, image.width, image.height),
                    }
                )
            objects.sort(key=lambda o: -o["score"])
            record = {"objects": objects, "width": image.width, "height": image.height}
            if self.visuals is not None:
                from tasktool.io import visuals

                record["visual"] = str(
                    visuals.save_png(visuals.draw_boxes(image, objects), self.visual_path(ref))
                )
            results.append(record)
        return results

    def display(self, record):
        objects = record["objects"]
        shown = ", ".join(f"{o['label']} ({o['score']:.2f})" for o in objects[:5]) + (
            " …" if len(objects) > 5 else ""
        )
        row = {"objects": str(len(objects)), "found": shown or "-"}
        if "visual" in record:
            row["visual"] = record["visual"]
        return row


def clip_box(box: list[float], width: int, height: int) -> dict:
    """Corner coordinates in pixels, kept inside the image and ordered (xmin <= xmax)."""
    x0, y0, x1, y1 = box
    x0, x1 = sorted((min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))))
    y0, y1 = sorted((min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))))
    return {"xmin": round(x0, 2), "ymin": round(y0, 2), "xmax": round(x1, 2), "ymax": round(y1, 2)}


Predictor = ObjectDetection

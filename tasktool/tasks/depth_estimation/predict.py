"""depth-estimation: a per-pixel depth map at the image's size (GLPN, DPT, any AutoModelForDepthEstimation).

The record summarises the map (min, max, mean); --save-visuals writes it colour-mapped and
--save-raw writes the float32 array (height x width) as .npy.
"""

from __future__ import annotations

from tasktool.errors import ItemError
from tasktool.tasks.vision import VisionPredictor, sizes


class DepthEstimation(VisionPredictor):
    visual_kind = "depth"

    def preprocess(self, ref, image):
        # GLPN rounds each side *down* to a multiple of size_divisor: a smaller side would become 0
        divisor = getattr(self.processor, "size_divisor", None)
        if self.model.config.model_type == "glpn" and divisor and min(image.size) < divisor:
            raise ItemError(
                f"image '{ref.source}' is {image.width}x{image.height}: too small for this model",
                f"it needs at least {divisor} pixels on each side",
            )
        return super().preprocess(ref, image)

    def run(self, images, inputs, refs):
        import torch

        predicted = self.forward(inputs).predicted_depth.float()
        if predicted.dim() == 4:  # some heads keep a channel axis
            predicted = predicted[:, 0]
        results = []
        for depth, image, ref, (height, width) in zip(predicted, images, refs, sizes(images), strict=True):
            resized = torch.nn.functional.interpolate(
                depth[None, None], size=(height, width), mode="bilinear", align_corners=False
            )[0, 0]
            array = resized.cpu().numpy()
            record = {
                "depth": {"min": float(array.min()), "max": float(array.max()), "mean": float(array.mean())},
                "width": image.width,
                "height": image.height,
            }
            if self.opts.extra.get(
                "keep_maps"
            ):  # evaluation: the map itself (tasktool.tasks.vision_training)
                record["_map"] = array
            if self.visuals is not None:
                from tasktool.io import visuals

                record["visual"] = str(visuals.save_png(visuals.heatmap(array), self.visual_path(ref)))
                if self.opts.save_raw:
                    record["raw"] = str(
                        visuals.save_npy(array.astype("float32"), self.visual_path(ref, ".depth.npy"))
                    )
            results.append(record)
        return results

    def display(self, record):
        d = record["depth"]
        row = {
            "size": f"{record['width']}x{record['height']}",
            "depth min/mean/max": f"{d['min']:.3g} / {d['mean']:.3g} / {d['max']:.3g}",
        }
        if "visual" in record:
            row["visual"] = record["visual"]
        return row


Predictor = DepthEstimation

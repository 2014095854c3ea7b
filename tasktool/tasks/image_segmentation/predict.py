"""image-segmentation: panoptic, semantic or instance segments (Mask2Former, AutoModelForUniversalSegmentation).

Records list the segments; the pixels go to --save-visuals (an overlay with a legend) and, with
--save-raw, to a PNG of segment ids. In every subtask 0 means "no segment" and ids start at 1:
panoptic keeps the processor's ids, instance ids are shifted by one, semantic ids are class id + 1.
"""

from __future__ import annotations

import numpy as np

from tasktool.tasks.vision import VisionPredictor, sizes


class ImageSegmentation(VisionPredictor):
    visual_kind = "overlay"

    def run(self, images, inputs, refs):
        outputs = self.forward(inputs)
        outputs.class_queries_logits = outputs.class_queries_logits.float()
        outputs.masks_queries_logits = outputs.masks_queries_logits.float()
        subtask = self.opts.subtask
        targets = sizes(images)
        if subtask == "semantic":
            found = [
                self._semantic(out)
                for out in self.processor.post_process_semantic_segmentation(
                    outputs, target_sizes=targets, return_segmentation_scores=True
                )
            ]
        elif subtask == "instance":
            found = [
                self._instances(out, shift=1)
                for out in self.processor.post_process_instance_segmentation(
                    outputs, threshold=self.opts.threshold, target_sizes=targets
                )
            ]
        else:
            raw = self.processor.post_process_panoptic_segmentation(
                outputs, threshold=self.opts.threshold, label_ids_to_fuse=set(), target_sizes=targets
            )
            found = [self._instances(out, shift=0) for out in raw]
        records = [
            self._record(image, ref, seg_map, segments)
            for image, ref, (seg_map, segments) in zip(images, refs, found, strict=True)
        ]
        if self.opts.extra.get(
            "keep_maps"
        ):  # evaluation: the maps themselves (tasktool.tasks.vision_training)
            for n, (record, (seg_map, _)) in enumerate(zip(records, found, strict=True)):
                if subtask == "semantic":
                    record["_map"] = seg_map - 1  # class ids
                elif subtask == "panoptic":  # segment ids (0: none) and each one's class id
                    classes = {int(info["id"]): int(info["label_id"]) for info in raw[n]["segments_info"]}
                    record["_map"] = (self._full_size(seg_map, images[n]), classes)
        return records

    @staticmethod
    def _full_size(seg_map, image):
        if seg_map.shape != (image.height, image.width):  # no segment at all: the processor may skip the map
            return np.zeros((image.height, image.width), dtype=np.int64)
        return seg_map

    def _semantic(self, out):
        """Class map -> segments; a segment's score is its class's mean share of the pixel scores."""
        import torch

        class_map = out.segmentation.long()
        scores = out.segmentation_scores.float()
        share = scores.gather(0, class_map[None])[0] / scores.sum(0).clamp_min(1e-12)
        segments = []
        for class_id in torch.unique(class_map).tolist():
            mask = class_map == class_id
            segments.append(
                {
                    "id": class_id + 1,
                    "label": self.label(class_id),
                    "score": float(share[mask].mean().clamp(0, 1)),
                }
            )
        return (class_map + 1).cpu().numpy(), segments

    def _instances(self, out, shift: int):
        seg_map = out["segmentation"]
        seg_map = np.zeros(0) if seg_map is None else seg_map.cpu().numpy()
        seg_map = np.where(seg_map < 0, -shift, seg_map).astype(np.int64) + shift  # no segment -> 0
        segments, seen = [], set()
        for info in out["segments_info"]:
            seg_id = int(info["id"]) + shift
            if seg_id in seen:  # fused segments share one id
                continue
            seen.add(seg_id)
            segments.append(
                {"id": seg_id, "label": self.label(info["label_id"]), "score": float(info["score"])}
            )
        return seg_map, segments

    def _record(self, image, ref, seg_map, segments):
        if seg_map.shape != (image.height, image.width):  # no mask at all: the processor may skip the map
            seg_map = np.zeros((image.height, image.width), dtype=np.int64)
        ids, counts = np.unique(seg_map, return_counts=True)
        areas = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        kept = []
        for seg in segments:  # a later instance may cover an earlier one entirely: nothing left to show
            area = areas.get(seg["id"], 0)
            if area:
                kept.append({**seg, "area": int(area)})
        kept.sort(key=lambda s: -s["area"])
        record = {"segments": kept, "width": image.width, "height": image.height}
        if self.visuals is not None:
            from tasktool.io import visuals

            overlay = visuals.overlay_segments(image, seg_map, kept)
            record["visual"] = str(visuals.save_png(overlay, self.visual_path(ref)))
            if self.opts.save_raw:
                record["mask"] = str(visuals.save_mask(seg_map, self.visual_path(ref, ".mask.png")))
        return record

    def display(self, record):
        segs = record["segments"]
        total = max(1, record["width"] * record["height"])
        shown = ", ".join(f"{s['label']} {100 * s['area'] / total:.0f}%" for s in segs[:5])
        row = {"segments": str(len(segs)), "largest": (shown + (" …" if len(segs) > 5 else "")) or "-"}
        if "visual" in record:
            row["visual"] = record["visual"]
        return row


Predictor = ImageSegmentation

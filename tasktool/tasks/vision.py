"""What vision tasks share: image processor + model, lazy image inputs, batches by processed shape.

`prepare` reads only the image header (size for sorting; missing, empty and non-image files fail
there); `predict` decodes, preprocesses each image alone and runs the batch as sub-batches of equal
processed shape. Processors pad a mixed batch to its largest image, and Mask2Former, GLPN and
DETR's CNN backbone then see padding inside the smaller images, so a padded batch would not give
the same answer as the image alone: only DETR's and Mask2Former's transformer parts honour the
pixel mask, not their ResNet / Swin backbones, and GLPN takes no mask at all. Measured on the tiny
models (tests/test_vision_finetune.py), an image padded to its batch's size moves the raw outputs by
0.02-2.5 (DETR boxes and logits, Mask2Former logits, GLPN maps), not within 1e-4; so inference keeps
to equal shapes. Fine-tuning pads (tasks/vision_training.py): there only the loss must ignore it.
Fixed-size models (ViT, ConvNeXT, RT-DETR) always form one sub-batch; detection and segmentation
processors resize by the shortest edge, so images of one aspect ratio do.
"""

from __future__ import annotations

from pathlib import Path

from tasktool.engine import Predictor
from tasktool.errors import ItemError, TaskToolError
from tasktool.io.images import ImageRef, stem


class VisionPredictor(Predictor):
    """Base for image tasks: subclasses implement `run(images, inputs, refs) -> list[dict]`."""

    visual_kind: str | None = None  # tasks that draw pictures for --save-visuals

    def __init__(self, spec, opts):
        from tasktool import runtime

        self.spec, self.opts = spec, opts
        self.processor = load_image_processor(
            opts.model, revision=opts.revision, trust_remote_code=opts.trust_remote_code
        )
        self.model = runtime.load_for_inference(spec, opts)
        self.device, self.dtype = self.model.device, self.model.dtype
        if opts.compile:
            self.model = runtime.compile_model(self.model)
        self.visuals = self._visuals_dir(opts)
        self._seen = 0

    def _visuals_dir(self, opts) -> Path | None:
        if opts.save_raw and not opts.save_visuals:
            raise TaskToolError(
                "--save-raw needs --save-visuals DIR", "it writes the raw files next to the pictures"
            )
        if not opts.save_visuals or not self.visual_kind:
            return None
        folder = Path(opts.save_visuals).expanduser()
        if folder.exists() and not folder.is_dir():
            raise TaskToolError(
                f"--save-visuals '{opts.save_visuals}' is a file, not a folder", "give a folder"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TaskToolError(
                f"cannot create --save-visuals folder '{opts.save_visuals}': {exc.strerror}",
                "choose another folder",
            ) from exc
        return folder

    # ------------------------------------------------------------ engine hooks

    def prepare(self, payload) -> ImageRef:
        if not isinstance(payload, (str, Path)):
            raise ItemError(f"expected an image path or URL, got {type(payload).__name__}")
        index, self._seen = self._seen, self._seen + 1  # position in the run (bad items count too)
        ref = ImageRef.open(payload)
        ref.index = index  # keeps picture names unique: NAME-INDEX.png
        return ref

    def length(self, prepared: ImageRef) -> int:
        return prepared.width * prepared.height

    def predict(self, batch: list[ImageRef]) -> list[dict]:
        images = [ref.load() for ref in batch]  # ItemError here: the engine retries items alone
        inputs = [self.preprocess(ref, image) for ref, image in zip(batch, images, strict=True)]
        groups: dict[tuple, list[int]] = {}
        for i, item in enumerate(inputs):
            groups.setdefault(tuple(item["pixel_values"].shape), []).append(i)
        results: list[dict | None] = [None] * len(batch)
        for members in groups.values():
            stacked = self.stack([inputs[i] for i in members])
            outputs = self.run([images[i] for i in members], stacked, [batch[i] for i in members])
            for i, out in zip(members, outputs, strict=True):
                results[i] = out
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------ helpers

    def preprocess(self, ref: ImageRef, image) -> dict:
        try:
            return dict(self.processor(images=image, return_tensors="pt"))
        except (ValueError, RuntimeError, TypeError, ZeroDivisionError) as exc:
            first = " ".join(str(exc).split()) or type(exc).__name__
            raise ItemError(
                f"cannot preprocess image '{ref.source}' ({ref.width}x{ref.height}): {first}"
            ) from exc

    def stack(self, inputs: list[dict]) -> dict:
        import torch

        out = {}
        for key in inputs[0]:
            value = torch.cat([item[key] for item in inputs])
            out[key] = (
                value.to(self.device, dtype=self.dtype)
                if value.is_floating_point()
                else value.to(self.device)
            )
        return out

    def forward(self, inputs: dict):
        names = {"pixel_values", "pixel_mask"}
        return self.model(**{k: v for k, v in inputs.items() if k in names})

    def run(self, images: list, inputs: dict, refs: list[ImageRef]) -> list[dict]:
        raise NotImplementedError

    def visual_path(self, ref: ImageRef, suffix: str = ".png") -> Path:
        assert self.visuals is not None
        return self.visuals / f"{stem(ref.source)}-{ref.index}{suffix}"

    def label(self, class_id: int) -> str:
        id2label = getattr(self.model.config, "id2label", None) or {}
        return str(id2label.get(int(class_id), f"LABEL_{int(class_id)}"))


def load_image_processor(ref: str, *, revision=None, trust_remote_code=False):
    """The model's image processor (PIL backend when torchvision is missing), with one-line errors."""
    import transformers
    from transformers import AutoImageProcessor

    from tasktool import runtime

    ref = runtime.check_model_ref(ref)
    runtime.check_processor_file(ref, "image processor")
    transformers.utils.logging.set_verbosity_error()  # the "falling back to the PIL backend" notice
    with runtime.hub_errors(ref, "image processor"):
        return AutoImageProcessor.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)


def sizes(images: list) -> list[tuple[int, int]]:
    """(height, width) per decoded image, as post-processors want target sizes."""
    return [(image.height, image.width) for image in images]

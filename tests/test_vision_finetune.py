"""Fine-tuning and evaluating object detection, image segmentation and depth estimation.

Metrics on hand-made cases with known answers; one-line errors for bad data; tiny models that learn
synthetic tasks (a red square to box, shapes to mask, a depth ramp); the fine-tuned folder serving
infer and evaluate (which reproduces metrics.json); real COCO annotations running end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, assert_user_error
from PIL import Image

from tasktool.tasks.depth_estimation.sample import write_ramps
from tasktool.tasks.image_segmentation.sample import write_shapes
from tasktool.tasks.object_detection.sample import write_squares

VISION = FIXTURES / "vision"
COCO_IMAGE = VISION / "coco_000000039769.png"
FAST = ["save_steps=1000", "eval_steps=1000", "logging_steps=10"]  # no checkpoint or eval pass mid-run


def _metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def _evaluate(cli, task, model, data, tmp_path, *extra) -> dict:
    target = tmp_path / f"eval-{abs(hash((str(model), str(data), extra)))}.json"
    result = cli("evaluate", task, "--model", model, "--data", data, "--output", target, *extra)
    assert result.code == 0, result.err
    return json.loads(target.read_text())


# ---------------------------------------------------------------------- metrics with known answers


def test_coco_map_is_one_for_perfect_boxes_and_set_by_the_iou_for_a_shifted_box():
    from tasktool.tasks.object_detection.evaluate import coco_map

    images = [{"width": 200, "height": 200}, {"width": 200, "height": 200}]
    truths = [[{"label": "cat", "box": [0, 0, 100, 100]}], [{"label": "dog", "box": [50, 50, 150, 150]}]]
    perfect = [[{**t[0], "score": 0.9}] for t in truths]
    metrics = coco_map(images, truths, perfect, ["cat", "dog"])
    assert metrics["map"] == pytest.approx(1.0) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["ap_cat"] == pytest.approx(1.0) and metrics["ap_dog"] == pytest.approx(1.0)
    # the cat's box cut to 72% of its height: IoU 0.72 matches at thresholds 0.50..0.70 (5 of 10)
    shifted = [[{"label": "cat", "box": [0, 0, 100, 72], "score": 0.9}], perfect[1]]
    metrics = coco_map(images, truths, shifted, ["cat", "dog"])
    assert metrics["ap_cat"] == pytest.approx(0.5)
    assert metrics["ap_dog"] == pytest.approx(1.0)
    assert metrics["map"] == pytest.approx(0.75) and metrics["map_50"] == pytest.approx(1.0)
    assert metrics["map_75"] == pytest.approx(0.5)  # only the dog is found at IoU 0.75
    nothing = coco_map(images, truths, [[], []], ["cat", "dog"])
    assert nothing["map"] == 0.0


def _segmentation_evaluator(tmp_path, truth: np.ndarray, names: list[str]):
    from tasktool.tasks.registry import resolve

    spec = resolve("image-segmentation")
    evaluator = spec.evaluator({})
    evaluator.reader, evaluator.names, evaluator.things = spec.reader({}), names, set()
    evaluator.reset()
    Image.fromarray(truth.astype(np.uint8)).save(tmp_path / "truth.png")
    example = {"path": "x.png", "target": str(tmp_path / "truth.png"), "_where": "row 1"}
    return evaluator, example


def test_miou_and_pixel_accuracy_of_a_known_confusion(tmp_path):
    truth = np.array([[0, 0, 1, 1]] * 4 + [[255] * 4])  # the last row is not labelled (ignore_index)
    predicted = np.array([[0, 1, 1, 1]] * 4 + [[1, 1, 0, 0]])
    evaluator, example = _segmentation_evaluator(tmp_path, truth, ["road", "car"])
    evaluator.update(example, {"id": 0, "_map": predicted})
    metrics, _ = evaluator.score([example], [{"id": 0, "input": "x.png"}])
    # road: 4 right, 4 called car -> IoU 4/8; car: 8 right, 4 road pixels called car -> IoU 8/12
    assert metrics["iou_road"] == pytest.approx(0.5)
    assert metrics["iou_car"] == pytest.approx(8 / 12)
    assert metrics["mean_iou"] == pytest.approx((0.5 + 8 / 12) / 2)
    assert metrics["pixel_accuracy"] == pytest.approx(12 / 16)


def test_a_class_in_neither_truth_nor_prediction_is_not_averaged_into_miou(tmp_path):
    truth = np.zeros((4, 4))
    evaluator, example = _segmentation_evaluator(tmp_path, truth, ["road", "car", "sky"])
    evaluator.update(example, {"id": 0, "_map": np.zeros((4, 4), dtype=np.int64)})
    metrics, _ = evaluator.score([example], [{"id": 0, "input": "x.png"}])
    assert metrics["mean_iou"] == pytest.approx(1.0) and "iou_sky" not in metrics


def test_depth_off_by_a_known_factor_gives_the_known_errors_and_median_scaling_removes_them():
    import torch
    from torchmetrics.regression import MeanAbsolutePercentageError

    from tasktool.tasks.depth_estimation.evaluate import depth_errors

    truth = np.linspace(1.0, 5.0, 64, dtype=np.float32).reshape(8, 8)
    truth[0, 0] = 0.0  # invalid: left out
    predicted = truth * 1.1
    predicted[0, 0] = 99.0
    errors = depth_errors(predicted, truth)
    valid = truth > 0
    assert errors["abs_rel"] == pytest.approx(0.1, rel=1e-6)
    assert errors["log10"] == pytest.approx(np.log10(1.1), rel=1e-6)
    assert errors["rmse"] == pytest.approx(
        0.1 * np.sqrt(np.mean(truth[valid].astype(np.float64) ** 2)), rel=1e-6
    )
    assert errors["delta1"] == errors["delta2"] == errors["delta3"] == 1.0
    # AbsRel is torchmetrics' mean absolute percentage error over the valid pixels
    mape = MeanAbsolutePercentageError()(torch.tensor(predicted[valid]), torch.tensor(truth[valid]))
    assert errors["abs_rel"] == pytest.approx(float(mape), rel=1e-5)
    far = depth_errors(truth * 1.5, truth)  # 1.25 < 1.5 < 1.25^2
    assert far["abs_rel"] == pytest.approx(0.5) and far["delta1"] == 0.0 and far["delta2"] == 1.0
    assert depth_errors(truth * 2.0, truth, median_scaling=True)["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert depth_errors(truth, np.zeros_like(truth)) is None


# ---------------------------------------------------------------------- data formats


def _coco_file(folder: Path, image: Path, annotations: list[dict], categories: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / image.name
    if not target.exists():
        target.write_bytes(image.read_bytes())
    with Image.open(image) as im:
        width, height = im.size
    data = {
        "images": [{"id": 39769, "file_name": image.name, "width": width, "height": height}],
        "annotations": annotations,
        "categories": categories,
    }
    path = folder / "annotations.json"
    path.write_text(json.dumps(data))
    return path


COCO_CATEGORIES = [
    {"id": 17, "name": "cat"},
    {"id": 63, "name": "couch"},
    {"id": 65, "name": "bed"},
    {"id": 75, "name": "remote"},
]


def test_coco_csv_and_objects_column_give_the_same_boxes(tmp_path):
    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    reader = resolve("object-detection").reader({})
    annotations = json.loads((VISION / "coco_annotations.txt").read_text())
    coco = reader.read(Source(str(_coco_file(tmp_path / "coco", COCO_IMAGE, annotations, COCO_CATEGORIES))))
    assert reader.categories == ["cat", "couch", "bed", "remote"]
    assert len(coco) == 1 and coco[0]["width"] == 640 and len(coco[0]["objects"]) == 6
    remote = coco[0]["objects"][0]
    assert remote["label"] == "remote" and remote["box"] == pytest.approx([332.89, 79.57, 371.54, 185.88])
    # the same boxes as one CSV row per box, and as a JSONL objects column
    rows = [
        {
            "filename": COCO_IMAGE.name,
            "class": o["label"],
            "xmin": o["box"][0],
            "ymin": o["box"][1],
            "xmax": o["box"][2],
            "ymax": o["box"][3],
        }
        for o in coco[0]["objects"]
    ]
    (tmp_path / "coco" / "boxes.csv").write_text(
        "filename,class,xmin,ymin,xmax,ymax\n" + "".join(",".join(str(r[k]) for k in r) + "\n" for r in rows)
    )
    csv = reader.read(Source(str(tmp_path / "coco" / "boxes.csv")))
    line = json.dumps({**reader.eval_row(coco[0]), "image": COCO_IMAGE.name})  # relative, as users write it
    (tmp_path / "coco" / "objects.jsonl").write_text(line + "\n")
    jsonl = reader.read(Source(str(tmp_path / "coco" / "objects.jsonl")))
    for other in (csv, jsonl):
        assert [o["label"] for o in other[0]["objects"]] == [o["label"] for o in coco[0]["objects"]]
        for a, b in zip(other[0]["objects"], coco[0]["objects"], strict=True):
            assert a["box"] == pytest.approx(b["box"], abs=1e-6)


def test_saved_datasets_give_boxes_with_their_class_names_and_masks_as_files(tmp_path):
    import datasets

    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    write_squares(tmp_path, 2, size=(32, 32))
    manifest = write_shapes(tmp_path / "shapes", 2, size=(32, 32))
    images = [str(tmp_path / "square_0.png"), str(tmp_path / "square_1.png")]
    boxes = datasets.Features(
        {
            "image": datasets.Image(),
            "objects": {
                "bbox": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                "category": datasets.Sequence(datasets.ClassLabel(names=["square", "other"])),
            },
        }
    )
    objects = [{"bbox": [[1, 2, 10, 10]], "category": [0]}, {"bbox": [[3, 3, 5, 5]], "category": [1]}]
    datasets.Dataset.from_dict({"image": images, "objects": objects}, features=boxes).save_to_disk(
        tmp_path / "ds"
    )
    found = resolve("object-detection").reader({}).read(Source(str(tmp_path / "ds")))
    assert [o["label"] for e in found for o in e["objects"]] == ["square", "other"]
    assert found[0]["objects"][0]["box"] == [1.0, 2.0, 11.0, 12.0] and found[0]["width"] == 32
    masks = datasets.Features({"image": datasets.Image(), "annotation": datasets.Image()})
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    columns = {
        "image": [str(manifest.parent / r["image"]) for r in rows],
        "annotation": [str(manifest.parent / r["mask"]) for r in rows],
    }
    datasets.Dataset.from_dict(columns, features=masks).save_to_disk(tmp_path / "seg")
    reader = resolve("image-segmentation").reader({})
    examples = reader.read(Source(str(tmp_path / "seg")))
    assert set(np.unique(reader.mask(examples[0])).tolist()) == {0, 1}


def test_boxes_sticking_out_are_clipped_and_a_row_without_a_box_is_an_empty_image(tmp_path):
    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    write_squares(tmp_path, 2, size=(32, 32))
    (tmp_path / "boxes.csv").write_text(
        "filename,class,xmin,ymin,xmax,ymax\nsquare_0.png,square,-5,2,40,20\nsquare_1.png,,,,,\n"
    )
    examples = resolve("object-detection").reader({}).read(Source(str(tmp_path / "boxes.csv")))
    assert examples[0]["objects"][0]["box"] == [0.0, 2.0, 32.0, 20.0]
    assert examples[1]["objects"] == []


def test_depth_and_mask_folders_pair_images_with_maps_by_name(tmp_path):
    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    for sub in ("images", "depth"):
        (tmp_path / sub).mkdir()
    Image.new("RGB", (40, 32)).save(tmp_path / "images" / "a.jpg")
    np.save(tmp_path / "depth" / "a.npy", np.ones((32, 40), dtype=np.float32))
    examples = resolve("depth-estimation").reader({}).read(Source(str(tmp_path)))
    assert [Path(e["target"]).name for e in examples] == ["a.npy"]
    Image.new("RGB", (40, 32)).save(tmp_path / "images" / "b.jpg")
    with pytest.raises(Exception, match="no depth file named 'b"):
        resolve("depth-estimation").reader({}).read(Source(str(tmp_path)))


def test_16_bit_depth_pngs_are_scaled_to_metres_and_zero_stays_invalid(tmp_path):
    from tasktool.io.readers import Source
    from tasktool.tasks.registry import resolve

    manifest = write_ramps(tmp_path, 1, size=(32, 32), png=True)
    reader = resolve("depth-estimation").reader({"depth_scale": 0.001})
    example = reader.read(Source(str(manifest)))[0]
    depth = reader.depth(example)
    assert (
        depth.dtype == np.float32 and depth.min() == pytest.approx(1.0) and depth.max() == pytest.approx(5.0)
    )


# ---------------------------------------------------------------------- bad data: one-line errors


def test_a_box_outside_the_image_is_an_error_naming_the_row_and_file(cli, tiny, tmp_path):
    write_squares(tmp_path, 2, size=(32, 32))
    (tmp_path / "boxes.csv").write_text(
        "filename,class,xmin,ymin,xmax,ymax\nsquare_0.png,square,1,1,9,9\nsquare_1.png,square,40,40,60,60\n"
    )
    result = cli(
        "finetune",
        "detect",
        "--data",
        tmp_path / "boxes.csv",
        "--model",
        tiny("object-detection"),
        "-o",
        tmp_path / "o",
    )
    assert_user_error(result, "row 2", "square_1.png", "outside the 32x32 image")


def test_a_class_missing_from_the_coco_categories_is_an_error_naming_the_annotation_and_file(cli, tmp_path):
    annotations = json.loads((VISION / "coco_annotations.txt").read_text())
    path = _coco_file(tmp_path, COCO_IMAGE, annotations, [c for c in COCO_CATEGORIES if c["id"] != 65])
    result = cli("finetune", "detect", "--data", path, "-o", tmp_path / "o")
    assert_user_error(result, "annotation 4", COCO_IMAGE.name, "category_id 65 is not in 'categories'")


def test_a_mask_of_another_size_than_its_image_is_an_error_naming_the_row_and_file(cli, tiny, tmp_path):
    manifest = write_shapes(tmp_path, 2, size=(32, 32))
    Image.new("L", (30, 32)).save(tmp_path / "shape_1_mask.png")
    model = tiny("image-segmentation", labels=["background", "shape"])
    result = cli("evaluate", "segment", "--model", model, "--data", manifest)
    assert_user_error(result, "row 2", "shape_1_mask.png", "30x32", "32x32")


def test_a_mask_with_a_class_id_above_the_label_count_is_an_error_naming_the_row_and_file(
    cli, tiny, tmp_path
):
    manifest = write_shapes(tmp_path, 2, size=(32, 32))
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[4:8, 4:8] = 7
    Image.fromarray(mask).save(tmp_path / "shape_0_mask.png")
    model = tiny("image-segmentation", labels=["background", "shape"])
    result = cli("evaluate", "segment", "--model", model, "--data", manifest)
    assert_user_error(result, "row 1", "shape_0_mask.png", "class id 7", "2 classes")
    # marked as not labelled, the same value is left out instead
    result = cli("evaluate", "segment", "--model", model, "--data", manifest, "--ignore-index", "7")
    assert result.code == 0, result.err


def test_a_depth_file_that_is_not_single_channel_is_an_error_naming_the_row_and_file(cli, tiny, tmp_path):
    manifest = write_ramps(tmp_path, 2, size=(32, 32))
    np.save(tmp_path / "depth_1.npy", np.ones((32, 32, 3), dtype=np.float32) * np.arange(3))
    result = cli("evaluate", "depth", "--model", tiny("depth-estimation"), "--data", manifest)
    assert_user_error(result, "row 2", "depth_1.npy", "not single-channel", "32x32x3")


def test_an_unreadable_image_is_skipped_and_counted_in_evaluation(cli, tiny, tmp_path):
    manifest = write_ramps(tmp_path, 3, size=(32, 32))
    (tmp_path / "scene_2.png").write_bytes(b"not a png")
    result = cli(
        "evaluate",
        "depth",
        "--model",
        tiny("depth-estimation"),
        "--data",
        manifest,
        "-o",
        tmp_path / "m.json",
    )
    assert result.code == 0, result.err
    assert "skipped 1 of 3" in result.err
    assert json.loads((tmp_path / "m.json").read_text())["examples"] == 2


# ---------------------------------------------------------------------- task recipe keys and flags


def test_a_tasks_own_recipe_keys_are_listed_and_work_as_flags_only_for_that_task(cli, tmp_path):
    from tasktool.cli.common import flag_overrides
    from tasktool.recipes import resolve_recipe

    shown = cli("recipes", "show", "depth-estimation", "--keys")
    assert shown.code == 0 and "depth_scale (float)" in shown.out and "median_scaling" in shown.out
    recipe = resolve_recipe("segment", overrides=flag_overrides(["--ignore-index", "0", "--reduce-labels"]))
    assert recipe["ignore_index"] == 0 and recipe["reduce_labels"] is True
    assert resolve_recipe("depth", overrides=["depth_scale=0.001"])["depth_scale"] == 0.001
    result = cli("finetune", "sentiment", "--data", tmp_path / "x.csv", "--ignore-index", "3")
    assert_user_error(result, "unknown recipe key 'ignore_index'")
    assert flag_overrides(["--depth-scale=0.001", "lr=3", "--strict"]) == [
        "depth_scale=0.001",
        "lr=3",
        "strict=true",
    ]


def test_recipe_yaml_keeps_a_tasks_own_keys():
    from tasktool.training.recipe import dump

    text = dump({"task": "depth-estimation", "lr": 1e-4, "depth_scale": 0.001})
    assert "depth_scale: 0.001" in text and text.index("lr:") < text.index("depth_scale")


# ---------------------------------------------------------------------- inference batching


def test_padding_changes_these_backbones_outputs_so_inference_batches_by_shape(tiny):
    """Why tasks/vision.py groups a batch by processed shape instead of padding it: the CNN / Swin /
    Segformer backbones see the padding (only the transformer parts honour pixel_mask), so a padded
    batch moves the outputs far beyond 1e-4 (measured here on the tiny models)."""
    import torch
    import transformers as tf

    from tasktool.tasks.vision_training import pad_images

    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3)).astype(np.uint8)) for h, w in ((64, 96), (96, 64))
    ]
    for task in ("object-detection", "image-segmentation", "depth-estimation"):
        folder = tiny(task)
        from tasktool.tasks.registry import resolve

        model = getattr(tf, resolve(task).model_class).from_pretrained(folder).eval()
        processor = tf.AutoImageProcessor.from_pretrained(folder)
        alone = [processor(images=im, return_tensors="pt")["pixel_values"] for im in images]
        pixels, mask = pad_images([a[0] for a in alone])
        with torch.no_grad():
            first = model(pixel_values=alone[0])
            kwargs = {"pixel_mask": mask} if "pixel_mask" in model.forward.__code__.co_varnames else {}
            padded = model(pixel_values=pixels, **kwargs)
        out = next(
            k
            for k in ("pred_boxes", "class_queries_logits", "predicted_depth")
            if getattr(first, k, None) is not None
        )
        a, b = getattr(first, out)[0], getattr(padded, out)[0]
        b = b[..., : a.shape[-2], : a.shape[-1]] if out == "predicted_depth" else b
        assert float((a - b).abs().max()) > 1e-4, task


# ---------------------------------------------------------------------- learning (slow)


@pytest.mark.slow
def test_a_detector_learns_to_box_a_red_square_on_noise(cli, tiny, tmp_path):
    """RT-DETR (queries start at the encoder's best positions); plain DETR needs far more steps."""
    base = tiny("object-detection", family="rt_detr", labels=["square"])
    train = write_squares(tmp_path / "train", 96, size=(64, 64), seed=0)
    held_out = write_squares(tmp_path / "eval", 8, size=(64, 64), seed=1)
    before = _evaluate(cli, "detect", base, held_out, tmp_path)
    out = tmp_path / "out"
    result = cli(
        "finetune", "detect", "--data", train, "--eval-data", held_out, "--model", base, "-o", out,
        "--max-steps", "200", "--lr", "2e-3", "--batch-size", "8", "-q",
        "lr_scheduler=constant", "max_grad_norm=1.0", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    after = _metrics(out)["eval"]
    assert before["map_50"] < 0.1 and after["map_50"] >= 0.5, (before, after)


@pytest.mark.slow
def test_a_segmenter_learns_two_class_shape_masks(cli, tiny, tmp_path):
    base = tiny("image-segmentation", labels=["background", "shape"])
    train = write_shapes(tmp_path / "train", 16, size=(64, 64), seed=0)
    held_out = write_shapes(tmp_path / "eval", 6, size=(64, 64), seed=1)
    before = _evaluate(cli, "segment", base, held_out, tmp_path)
    out = tmp_path / "out"
    result = cli(
        "finetune", "segment", "--data", train, "--eval-data", held_out, "--model", base, "-o", out,
        "--max-steps", "60", "--lr", "1e-3", "--batch-size", "8", "-q", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    after = _metrics(out)["eval"]
    assert after["mean_iou"] >= before["mean_iou"] + 0.3, (before, after)


@pytest.mark.slow
def test_a_depth_model_learns_a_left_right_ramp(cli, tiny, tmp_path):
    base = tiny("depth-estimation")
    train = write_ramps(tmp_path / "train", 16, size=(32, 32), seed=0, png=True)
    held_out = write_ramps(tmp_path / "eval", 4, size=(32, 32), seed=1, png=True)
    before = _evaluate(cli, "depth", base, held_out, tmp_path, "--depth-scale", "0.001")
    out = tmp_path / "out"
    result = cli(
        "finetune", "depth", "--data", train, "--eval-data", held_out, "--model", base, "-o", out,
        "--max-steps", "150", "--lr", "3e-3", "--batch-size", "8", "-q", "--depth-scale", "0.001", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    after = _metrics(out)["eval"]
    assert after["abs_rel"] <= before["abs_rel"] / 2, (before, after)


# ---------------------------------------------------------------------- round trip (slow)


SAMPLES = {
    "object-detection": lambda folder: write_squares(folder, 10, size=(48, 40)),
    "image-segmentation": lambda folder: write_shapes(folder, 10, size=(48, 40)),
    "depth-estimation": lambda folder: write_ramps(folder, 10, size=(64, 32)),
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(SAMPLES))
def test_the_finetuned_folder_serves_infer_and_evaluate_reproduces_metrics_json(cli, tiny, tmp_path, task):
    data = SAMPLES[task](tmp_path / "data")
    out = tmp_path / "out"
    result = cli(
        "finetune", task, "--data", data, "--model", tiny(task), "-o", out, "--max-steps", "3", "-q", *FAST
    )
    assert result.code == 0, result.err
    saved = _metrics(out)
    assert saved["eval_data"] == "eval.jsonl" and saved["eval"]["examples"] == 2
    for name in (
        "config.json",
        "preprocessor_config.json",
        "train_log.jsonl",
        "loss_curve.png",
        "README.md",
        "recipe.yaml",
    ):
        assert (out / name).is_file(), name
    pictures = sorted((out / "eval_pictures").glob("*.png"))
    assert len(pictures) == 2 and "eval_pictures/" in (out / "README.md").read_text()
    image = next(p for p in sorted(data.parent.glob("*.png")) if "mask" not in p.name)
    infer = cli("infer", task, "--model", out, image, "--format", "jsonl")
    assert infer.code == 0 and "error" not in infer.records()[0], infer.err
    again = _evaluate(cli, task, out, out / "eval.jsonl", tmp_path)
    for key, value in saved["eval"].items():
        assert again[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


# ---------------------------------------------------------------------- real COCO annotations (slow)


@pytest.mark.slow
def test_real_coco_boxes_train_a_detector_offline(cli, tiny, tmp_path):
    annotations = json.loads((VISION / "coco_annotations.txt").read_text())
    path = _coco_file(tmp_path / "coco", COCO_IMAGE, annotations, COCO_CATEGORIES)
    out = tmp_path / "out"
    result = cli(
        "finetune", "detect", "--data", path, "--eval-data", path, "--model", tiny("object-detection"), "-o", out,
        "--max-steps", "2", "-q", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    metrics = _metrics(out)
    config = json.loads((out / "config.json").read_text())
    assert list(config["id2label"].values()) == ["cat", "couch", "bed", "remote"]
    assert 0.0 <= metrics["eval"]["map"] <= 1.0 and "ap_remote" in metrics["eval"]


def _panoptic_masks(folder: Path) -> Path:
    """COCO panoptic PNG (segment id = R + 256 G + 256^2 B) -> a class-id mask and an instance map."""
    segments = json.loads((VISION / "coco_panoptic_annotations.txt").read_text())
    rgb = np.asarray(Image.open(VISION / "coco_panoptic_000000039769.png").convert("RGB")).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]
    names = {17: "cat", 63: "couch", 75: "remote", 93: "wall"}
    classes = sorted(names)
    mask = np.full(ids.shape, 255, dtype=np.uint8)
    instances = np.zeros(ids.shape, dtype=np.uint8)
    for n, seg in enumerate(segments, start=1):
        where = ids == seg["id"]
        mask[where] = classes.index(seg["category_id"])
        instances[where] = n if seg["category_id"] < 92 else 0  # COCO: ids from 92 are stuff
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COCO_IMAGE.name).write_bytes(COCO_IMAGE.read_bytes())
    Image.fromarray(mask).save(folder / "mask.png")
    Image.fromarray(instances).save(folder / "instances.png")
    (folder / "id2label.json").write_text(json.dumps([names[c] for c in classes]))
    manifest = folder / "train.jsonl"
    manifest.write_text(
        json.dumps({"image": COCO_IMAGE.name, "mask": "mask.png", "instances": "instances.png"}) + "\n"
    )
    return manifest


@pytest.mark.slow
def test_real_coco_panoptic_masks_train_and_score_pq(cli, tiny, tmp_path):
    manifest = _panoptic_masks(tmp_path / "pan")
    out = tmp_path / "out"
    result = cli(
        "finetune", "segment", "--data", manifest, "--eval-data", manifest, "--model", tiny("image-segmentation"),
        "-o", out, "--max-steps", "2", "-q", "--subtask", "panoptic", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    metrics = _metrics(out)["eval"]
    assert {"pq", "sq", "rq", "mean_iou", "pixel_accuracy"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("pq", "mean_iou", "pixel_accuracy"))
    assert json.loads((out / "config.json").read_text())["id2label"] == {
        "0": "cat",
        "1": "couch",
        "2": "remote",
        "3": "wall",
    }

"""Vision inference through the CLI with tiny random models: classification, detection, segmentation, depth.

Inputs are real photos (tests/fixtures/images: a 451x300 PNG and two 32x32 JPEGs), so decoding,
EXIF handling, resizing and post-processing back to the image size all run for real.
"""

from __future__ import annotations

import math
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import FIXTURES, assert_user_error
from PIL import Image

IMAGES = FIXTURES / "images"
PNG, JPG = IMAGES / "chelsea.png", IMAGES / "cat.jpg"
FILES = sorted(p for p in IMAGES.iterdir() if p.suffix in (".png", ".jpg"))  # cat.jpg, chelsea.png, dog.jpg
SIZES = {p.name: Image.open(p).size for p in FILES}

CLS_LABELS = ["cat", "dog", "bird"]
DET_LABELS = ["cat", "remote", "couch"]
SEG_LABELS = ["cat", "couch", "wall"]


@pytest.fixture(scope="module")
def models(tiny):
    return {
        "image-classification": tiny("image-classification", labels=CLS_LABELS),
        "object-detection": tiny("object-detection", labels=DET_LABELS),
        "image-segmentation": tiny("image-segmentation", labels=SEG_LABELS),
        "depth-estimation": tiny("depth-estimation"),
    }


def _size(record) -> tuple[int, int]:
    return SIZES[record["input"].rsplit("/", 1)[-1]]


def _check(task: str, record: dict) -> None:
    """The shape and ranges every record of `task` must have."""
    assert "error" not in record, record
    if task == "image-classification":
        assert record["label"] in CLS_LABELS and 0.0 <= record["score"] <= 1.0
        scores = [x["score"] for x in record["labels"]]
        assert len(scores) == len(CLS_LABELS) and scores == sorted(scores, reverse=True)
        assert record["labels"][0]["label"] == record["label"] and sum(scores) == pytest.approx(1.0, abs=1e-4)
        return
    width, height = _size(record)
    assert (record["width"], record["height"]) == (width, height)
    if task == "object-detection":
        assert record["objects"], "threshold 0 keeps every query"
        for obj in record["objects"]:
            assert obj["label"] in DET_LABELS and 0.0 <= obj["score"] <= 1.0
            box = obj["box"]
            assert 0 <= box["xmin"] <= box["xmax"] <= width and 0 <= box["ymin"] <= box["ymax"] <= height
    elif task == "image-segmentation":
        assert record["segments"]
        for seg in record["segments"]:
            assert isinstance(seg["id"], int) and seg["id"] >= 1 and seg["label"] in SEG_LABELS
            assert 0.0 <= seg["score"] <= 1.0 and 0 < seg["area"] <= width * height
        assert sum(s["area"] for s in record["segments"]) <= width * height
    elif task == "depth-estimation":
        depth = record["depth"]
        assert all(math.isfinite(depth[k]) for k in ("min", "max", "mean"))
        assert depth["min"] <= depth["mean"] <= depth["max"]


TASKS = ["image-classification", "object-detection", "image-segmentation", "depth-estimation"]


@pytest.mark.parametrize("task", TASKS)
def test_a_folder_gives_one_valid_record_per_image_in_sorted_order(cli, models, task):
    result = cli("infer", task, IMAGES, "--model", models[task], "--threshold", "0.0")
    assert result.code == 0, result.err
    records = result.records()
    assert [r["input"] for r in records] == [str(p) for p in FILES]
    assert [r["id"] for r in records] == [0, 1, 2]
    for record in records:
        _check(task, record)


def _same(a, b) -> bool:
    """Records equal up to float noise between batch shapes."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == pytest.approx(b, abs=1e-3)
    return a == b


@pytest.mark.parametrize("task", TASKS)
def test_a_png_and_a_jpg_given_as_arguments_agree_with_the_folder_run(cli, models, task):
    single = cli("infer", task, PNG, JPG, "--model", models[task], "--threshold", "0.0")
    folder = cli("infer", task, IMAGES, "--model", models[task], "--threshold", "0.0").records()
    assert single.code == 0, single.err
    by_name = {r["input"].rsplit("/", 1)[-1]: r for r in folder}
    records = single.records()
    assert [r["input"] for r in records] == [str(PNG), str(JPG)]
    for record in records:
        _check(task, record)
        expected = by_name[record["input"].rsplit("/", 1)[-1]]
        assert _same(_result(record), _result(expected)), (record, expected)


def _result(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("id", "input")}


@pytest.mark.parametrize("task", TASKS)
def test_batched_equals_unbatched(cli, models, task):
    # two 32x32 JPEGs share a processed shape: they run stacked in one forward pass with batch size 4
    inputs = [JPG, PNG, IMAGES / "dog.jpg", JPG]
    args = ("--model", models[task], "--threshold", "0.0")
    one = cli("infer", task, *inputs, *args, "--batch-size", "1")
    many = cli("infer", task, *inputs, *args, "--batch-size", "4")
    assert one.code == 0 and many.code == 0, one.err + many.err
    assert len(one.records()) == 4
    for a, b in zip(one.records(), many.records(), strict=True):
        assert _same(a, b), (a, b)


def test_classification_top_k_is_capped_by_the_labels_and_convnext_works(cli, tiny):
    model = tiny("image-classification", family="convnext", labels=CLS_LABELS)
    records = cli("infer", "image-classification", PNG, JPG, "--model", model, "--top-k", "10").records()
    assert len(records) == 2
    for record in records:
        _check("image-classification", record)
    two = cli("infer", "image-classification", PNG, "--model", model, "--top-k", "2").records()[0]
    assert [x["label"] for x in two["labels"]] == [x["label"] for x in records[0]["labels"][:2]]


@pytest.mark.parametrize("subtask", ["panoptic", "semantic", "instance"])
def test_segmentation_subtasks_write_overlays_and_raw_masks_of_the_image_size(cli, models, tmp_path, subtask):
    out = tmp_path / "vis"
    result = cli(
        "infer",
        "segment",
        IMAGES,
        "--model",
        models["image-segmentation"],
        "--subtask",
        subtask,
        "--threshold",
        "0.0",
        "--save-visuals",
        out,
        "--save-raw",
    )
    assert result.code == 0, result.err
    records = result.records()
    for record in records:
        _check("image-segmentation", record)
        size = _size(record)
        visual = Image.open(record["visual"])
        assert visual.size == size and visual.mode == "RGB"
        source = np.asarray(Image.open(IMAGES / record["input"].rsplit("/", 1)[-1]).convert("RGB"), dtype=int)
        drawn = np.asarray(visual, dtype=int)
        assert np.abs(drawn - source).sum() > 0
        if size[0] >= 100:  # the legend (dark box with text) sits top-left
            corner = slice(0, 12), slice(0, 40)
            assert np.abs(drawn[corner] - source[corner]).mean() > 10
        mask = np.asarray(Image.open(record["mask"]))
        assert mask.shape == (size[1], size[0])
        ids = {s["id"] for s in record["segments"]}
        assert set(np.unique(mask).tolist()) - {0} == ids
        for seg in record["segments"]:
            assert int((mask == seg["id"]).sum()) == seg["area"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}-{i}{suffix}"
        for i, name in enumerate(["cat", "chelsea", "dog"])
        for suffix in (".png", ".mask.png")
    )


def test_detection_visuals_draw_boxes_on_an_image_of_the_same_size(cli, models, tmp_path):
    out = tmp_path / "boxes"
    result = cli(
        "infer",
        "detect",
        PNG,
        PNG,
        "--model",
        models["object-detection"],
        "--threshold",
        "0.0",
        "--save-visuals",
        out,
    )
    assert result.code == 0, result.err
    records = result.records()
    assert [r["visual"] for r in records] == [str(out / "chelsea-0.png"), str(out / "chelsea-1.png")]
    source = np.asarray(Image.open(PNG).convert("RGB"), dtype=int)
    for record in records:
        drawn = np.asarray(Image.open(record["visual"]), dtype=int)
        assert drawn.shape == source.shape
        changed = np.abs(drawn - source).sum(-1) > 0
        box = record["objects"][0]["box"]
        x0, y0 = int(box["xmin"]), int(box["ymin"])
        x1, y1 = min(int(box["xmax"]), source.shape[1] - 1), min(int(box["ymax"]), source.shape[0] - 1)
        assert (
            changed[y0 : y1 + 1, x0].any() and changed[y0 : y1 + 1, x1].any()
        )  # the box's left and right edges
        assert changed.mean() < 0.5  # outlines and tags only: the photo is still there
    assert not list(out.glob("*.tmp"))


def test_depth_visuals_are_colour_maps_and_raw_depth_matches_the_record(cli, models, tmp_path):
    out = tmp_path / "depth"
    result = cli(
        "infer", "depth", IMAGES, "--model", models["depth-estimation"], "--save-visuals", out, "--save-raw"
    )
    assert result.code == 0, result.err
    for record in result.records():
        _check("depth-estimation", record)
        width, height = _size(record)
        visual = np.asarray(Image.open(record["visual"]))
        assert visual.shape == (height, width, 3) and visual.std() > 0
        depth = np.load(record["raw"])
        assert depth.shape == (height, width) and depth.dtype == np.float32 and np.isfinite(depth).all()
        assert float(depth.min()) == pytest.approx(record["depth"]["min"], abs=1e-4)
        assert float(depth.max()) == pytest.approx(record["depth"]["max"], abs=1e-4)
        assert depth.max() > depth.min()


@pytest.fixture
def broken_folder(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(PNG, folder / "a_good.png")
    shutil.copy(JPG, folder / "b_good.jpg")
    (folder / "c_truncated.png").write_bytes(PNG.read_bytes()[: PNG.stat().st_size // 3])
    (folder / "d_text.png").write_text("this is not a picture\n")
    (folder / "e_empty.png").write_bytes(b"")
    # a JPEG cut in half still has a valid header: it fails only when decoded, inside a batch
    Image.open(PNG).save(tmp_path / "whole.jpg", quality=90)
    whole = (tmp_path / "whole.jpg").read_bytes()
    (folder / "f_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return folder


@pytest.mark.parametrize("task", ["object-detection", "depth-estimation"])
def test_a_corrupt_image_stops_the_run_with_a_one_line_error(cli, models, broken_folder, task):
    for name in ("c_truncated.png", "d_text.png", "e_empty.png", "f_truncated.jpg"):
        result = cli(
            "infer", task, broken_folder / "a_good.png", broken_folder / name, "--model", models[task]
        )
        assert_user_error(result, f"cannot read image '{broken_folder / name}'", code=1)


@pytest.mark.parametrize("task", TASKS)
def test_on_error_skip_records_each_bad_image_and_finishes_the_rest(cli, models, broken_folder, task):
    result = cli(
        "infer",
        task,
        broken_folder,
        "--model",
        models[task],
        "--threshold",
        "0.0",
        "--on-error",
        "skip",
        "--batch-size",
        "8",
    )
    assert result.code == 0, result.err
    records = {r["input"].rsplit("/", 1)[-1]: r for r in result.records()}
    bad = ["c_truncated.png", "d_text.png", "e_empty.png", "f_truncated.jpg"]
    assert sorted(records) == ["a_good.png", "b_good.jpg", *bad]
    assert "error" not in records["a_good.png"] and "error" not in records["b_good.jpg"]
    assert "truncated" in records["c_truncated.png"]["error"]
    assert "not an image" in records["d_text.png"]["error"]
    assert "empty" in records["e_empty.png"]["error"]
    assert "truncated" in records["f_truncated.jpg"]["error"]
    _check(task, records["a_good.png"] | {"input": str(PNG)})
    for name in bad:
        assert records[name]["error"].startswith(f"cannot read image '{broken_folder / name}'")
        assert "\n" not in records[name]["error"]
    assert "4 of 6 inputs failed" in result.err


def test_depth_refuses_an_image_smaller_than_glpns_size_divisor_alone(cli, models, tmp_path):
    Image.new("RGB", (16, 40), (10, 20, 30)).save(tmp_path / "thin.png")
    result = cli(
        "infer",
        "depth",
        tmp_path / "thin.png",
        JPG,
        "--model",
        models["depth-estimation"],
        "--on-error",
        "skip",
    )
    assert result.code == 0, result.err
    thin, good = result.records()
    assert "16x40: too small for this model" in thin["error"] and "32 pixels" in thin["error"]
    _check("depth-estimation", good)


def test_save_raw_without_save_visuals_is_a_usage_error(cli, models):
    assert_user_error(
        cli("infer", "depth", PNG, "--model", models["depth-estimation"], "--save-raw"),
        "--save-raw needs --save-visuals",
    )


# ---------------------------------------------------------------- load_image


def test_load_image_applies_exif_orientation_and_returns_rgb(tmp_path):
    from tasktool.io.images import ImageRef, load_image

    picture = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    picture.save(tmp_path / "turned.jpg", exif=exif.tobytes())
    Image.new("RGBA", (8, 6), (0, 0, 255, 0)).save(tmp_path / "alpha.png")
    Image.new("L", (5, 7), 128).save(tmp_path / "grey.png")
    turned = load_image(tmp_path / "turned.jpg")
    assert turned.size == (20, 40) and turned.mode == "RGB"
    assert (ImageRef.open(tmp_path / "turned.jpg").width, ImageRef.open(tmp_path / "turned.jpg").height) == (
        20,
        40,
    )
    alpha = load_image(tmp_path / "alpha.png")
    assert alpha.mode == "RGB" and alpha.getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    assert load_image(tmp_path / "grey.png").getpixel((0, 0)) == (128, 128, 128)


def test_load_image_turns_bad_files_into_one_line_item_errors(broken_folder):
    from tasktool.errors import ItemError
    from tasktool.io.images import load_image

    for name in ("c_truncated.png", "d_text.png", "e_empty.png", "f_truncated.jpg", "missing.png"):
        with pytest.raises(ItemError) as info:
            load_image(broken_folder / name)
        line = info.value.one_line()
        assert line.startswith(f"cannot read image '{broken_folder / name}': ") and "\n" not in line


def test_load_image_and_the_cli_download_urls(cli, models, tmp_path):
    from tasktool.errors import ItemError
    from tasktool.io.images import load_image

    handler = partial(SimpleHTTPRequestHandler, directory=str(IMAGES))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        image = load_image(f"{base}/cat.jpg")
        assert image.size == (32, 32) and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), np.asarray(Image.open(JPG).convert("RGB")))
        with pytest.raises(ItemError, match="cannot download image .*404"):
            load_image(f"{base}/nothing.png")
        result = cli(
            "infer",
            "image-classification",
            f"{base}/cat.jpg",
            "--model",
            models["image-classification"],
            "--save-visuals",
            tmp_path / "ignored",
        )
        assert result.code == 0, result.err
        (record,) = result.records()
        assert record["input"] == f"{base}/cat.jpg"
        _check("image-classification", record)
    finally:
        server.shutdown()
        server.server_close()

"""image-segmentation: a label for every pixel (Mask2Former: panoptic, semantic or instance).

RECIPE_KEYS: the recipe keys only this task reads (tasktool.recipes adds them to the shared schema).
"""

RECIPE_KEYS = {
    "ignore_index": (int, "masks: pixels of this value belong to no class and are not scored (default 255)"),
    "reduce_labels": (bool, "masks: 0 means 'no class' (ignored) and class ids start at 1, as in ADE20K"),
    "id2label": (
        str,
        'class names: a JSON file ({"0": "road", ...} or a list of names); default: id2label.json '
        "next to the data, else label_names, else the class ids found in the masks",
    ),
    "subtask": (
        str,
        "semantic (default): one mask per class, scored by mIoU and pixel accuracy; panoptic: the data has "
        "an instance column (an instance id per pixel, 0 for stuff), also scored by PQ",
    ),
}

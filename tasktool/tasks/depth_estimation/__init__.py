"""depth-estimation: a per-pixel depth map from one image (GLPN, DPT, any AutoModelForDepthEstimation).

RECIPE_KEYS: the recipe keys only this task reads (tasktool.recipes adds them to the shared schema).
"""

RECIPE_KEYS = {
    "depth_scale": (
        float,
        "depth files: the factor from stored values to metres (1: .npy in metres; 0.001: 16-bit PNG in "
        "millimetres; 1/256 for KITTI); 0 stays 0, which marks an invalid pixel",
    ),
    "median_scaling": (
        bool,
        "evaluation: scale each predicted map by median(truth) / median(prediction) over valid pixels "
        "first (for relative-depth models; default false)",
    ),
    "max_depth": (
        float,
        "evaluation: truth beyond this many metres is left out, predictions are capped (0: none)",
    ),
}

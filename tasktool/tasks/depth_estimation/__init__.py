"""depth-estimation: a per-pixel depth map from one image (GLPN, DPT, any AutoModelForDepthEstimation)."""

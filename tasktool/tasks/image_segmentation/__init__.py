"""image-segmentation: a label for every pixel (Mask2Former: panoptic, semantic or instance)."""

"""object-detection: boxes with labels and scores (DETR and other object detectors)."""

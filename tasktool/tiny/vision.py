"""Tiny vision models (ViT, ConvNeXT, DETR, RT-DETR, Mask2Former, GLPN) with their image processors.

Each is a random model of a few tens of thousands of parameters whose processor resizes to a
small size, so a test runs a real image through the real pre/post-processing in milliseconds.
Backbones are configured in-process (no timm, no pretrained backbone download). DETR and
Mask2Former use a wide init_std so that, untrained, their queries still disagree: boxes differ
and some segments beat the no-object class, which tests and the smoke mode need to see.
"""

from __future__ import annotations

from pathlib import Path


def _config_and_processor(family: str, tf):
    if family == "vit":
        config = tf.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
        processor = tf.ViTImageProcessor(size={"height": 32, "width": 32})
    elif family == "convnext":
        config = tf.ConvNextConfig(
            image_size=32, patch_size=4, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1]
        )
        processor = tf.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0)
    elif family == "detr":
        backbone = tf.ResNetConfig(
            num_channels=3,
            embedding_size=8,
            hidden_sizes=[8, 16, 16, 16],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            out_features=["stage4"],
        )
        config = tf.DetrConfig(
            use_timm_backbone=False,
            backbone_config=backbone,
            use_pretrained_backbone=False,
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            num_queries=10,
            init_std=0.3,
        )
        processor = tf.DetrImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    elif family == "rt_detr":
        # RT-DETR: its queries start at the encoder's best-scoring positions, so it learns where objects
        # are in a few hundred steps (the learning test); DETR's set-prediction queries need far more
        backbone = tf.RTDetrResNetConfig(
            embedding_size=8,
            hidden_sizes=[8, 16, 16, 16],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            out_features=["stage2", "stage3", "stage4"],
        )
        config = tf.RTDetrConfig(
            backbone_config=backbone,
            encoder_hidden_dim=32,
            encoder_in_channels=[16, 16, 16],
            encoder_ffn_dim=64,
            encoder_attention_heads=2,
            d_model=32,
            decoder_in_channels=[32, 32, 32],
            decoder_ffn_dim=64,
            decoder_attention_heads=2,
            decoder_layers=1,
            num_queries=10,
            num_denoising=10,
        )
        processor = tf.RTDetrImageProcessor(size={"height": 64, "width": 64})
    elif family == "mask2former":
        backbone = tf.SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=8,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=4,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        # GroupNorm(32, ...) inside the pixel decoder needs feature sizes that are multiples of 32
        config = tf.Mask2FormerConfig(
            backbone_config=backbone,
            feature_size=32,
            mask_feature_size=32,
            hidden_dim=32,
            encoder_feedforward_dim=32,
            encoder_layers=1,
            decoder_layers=2,
            num_attention_heads=2,
            dim_feedforward=32,
            num_queries=5,
            init_std=0.3,
            train_num_points=1024,  # points per mask for the loss (default 12544; a 64x64 image has 4096)
        )
        processor = tf.Mask2FormerImageProcessor(
            size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32
        )
    elif family == "glpn":
        config = tf.GLPNConfig(
            num_encoder_blocks=4,
            depths=[1, 1, 1, 1],
            hidden_sizes=[8, 16, 16, 16],
            num_attention_heads=[1, 1, 2, 2],
            sr_ratios=[8, 4, 2, 1],
            decoder_hidden_size=16,
        )
        processor = tf.GLPNImageProcessor(size_divisor=32)
    else:
        raise ValueError(f"unknown vision family {family}")
    return config, processor


def build(family: str, out: Path, model_class: str, labels: list[str] | None = None) -> None:
    """Write a tiny random `family` model with `model_class`'s head and its image processor into `out`."""
    import torch
    import transformers as tf

    tf.utils.logging.set_verbosity_error()  # "falls back to the PIL processor" notices without torchvision
    tf.utils.logging.disable_progress_bar()
    config, processor = _config_and_processor(family, tf)
    if labels:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    model_cls = getattr(tf, model_class)
    torch.manual_seed(0)
    model = model_cls.from_config(config)
    if family == "detr":  # spread the queries so a random model's boxes differ from one another
        with torch.no_grad():
            model.model.query_position_embeddings.weight.normal_(0.0, 3.0)
    model.save_pretrained(out)
    processor.save_pretrained(out)

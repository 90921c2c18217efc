"""Hydra-ViT models, registered in timm's model registry on import."""
from .hydra_vit import HydraVisionTransformer, checkpoint_filter_fn, create_mixer

__all__ = ["HydraVisionTransformer", "checkpoint_filter_fn", "create_mixer"]

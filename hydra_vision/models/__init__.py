"""Hydra-ViT models, registered in timm's model registry on import."""

"""Small hydra_vit_* instances for the model tests (registry-driven, reduced depth and image size)."""
import timm
import torch

MODELS = timm.list_models("hydra*")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: tests/conftest.py sets TRITON_INTERPRET
IMG = 48
PATCH = 16


def create(name: str, **kwargs) -> torch.nn.Module:
    """`name` at depth 2 and 48 px (3 x 3 tokens) unless overridden, seeded for reproducibility."""
    torch.manual_seed(0)
    kwargs = dict(dict(depth=2, img_size=IMG), **kwargs)
    return timm.create_model(name, **kwargs)


def images(batch: int = 2, size=(IMG, IMG), chans: int = 3, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(batch, chans, *size, generator=torch.Generator().manual_seed(1)).to(dtype)

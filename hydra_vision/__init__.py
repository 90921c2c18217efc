"""hydra-vision: Hydra (bidirectional quasiseparable SSM) vision backbones for timm.

Importing the package registers hydra_vit_* in timm's model registry.
"""
from . import models  # noqa: F401  (registers the models with timm)

__version__ = "0.1.0"

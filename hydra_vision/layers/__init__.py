"""Layers of hydra-vision: the Hydra mixer and its parts."""
from .gated_rmsnorm import GatedRMSNorm
from .hydra_mixer import Hydra

__all__ = ["GatedRMSNorm", "Hydra"]

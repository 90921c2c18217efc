"""Layers of hydra-vision: the Hydra mixer, its parts, and the matrix-mixer family (`mixers`)."""
from .gated_rmsnorm import GatedRMSNorm
from .hydra_mixer import BidirectionalSSD, Hydra
from .matmul_input_norm import MatmulInputLayerNorm
from .matrix_mixer import MatrixMixer
from .mixers import MIXERS, MixerType, create_mixer
from .patch_embed import GemmPatchEmbed, PatchConv2d
from .ssd_mixer import SSDMixer

__all__ = [
    "BidirectionalSSD", "GatedRMSNorm", "GemmPatchEmbed", "Hydra", "MIXERS", "MatmulInputLayerNorm", "MatrixMixer",
    "MixerType", "PatchConv2d", "SSDMixer", "create_mixer",
]

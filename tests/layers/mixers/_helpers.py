"""Small fp64 mixers with non-trivial weights, and their inputs, for the mixer tests."""
import timm  # noqa: F401  (registers hydra_vit_* through the hook)
import torch

from hydra_vision.layers.mixers import MIXERS, create_mixer

NAMES = list(MIXERS)
DATA_INDEPENDENT = ["dense", "toeplitz_di", "vandermonde_di", "cauchy_di", "low_rank_di", "monarch"]
DIM, L, N = 32, 16, 4
SETTINGS = dict(d_state=N, d_conv=3, expand=2, headdim=16, ngroups=2, chunk_size=8, backend=None, max_seq_len=L)


def make(name: str, dtype=torch.float64, **kwargs) -> torch.nn.Module:
    """Mixer `name` at width 32 (H = 4 heads of 16, G = 2 groups, N = 4, max 16 tokens), seeded, with
    projection weights of std 0.3 so that every feature (dt, B, C, q, k, ...) varies across tokens."""
    torch.manual_seed(0)
    mixer = create_mixer(name, DIM, dtype=dtype, **dict(SETTINGS, **kwargs))
    with torch.no_grad():
        for p in (mixer.in_proj.weight, mixer.conv1d.weight):
            p.normal_(std=0.3)
    return mixer


def tokens(batch: int = 2, length: int = L, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, length, DIM, generator=torch.Generator().manual_seed(seed)).to(dtype)


def apply(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """M (B, H, L, L) @ x (B, L, H, P) per head."""
    return torch.einsum("bhij,bjhp->bihp", M, x.to(M.dtype))


def rank(M: torch.Tensor, rtol: float = 1e-9) -> int:
    """Numerical rank of one matrix (fp64): singular values above rtol * the largest."""
    s = torch.linalg.svdvals(M)
    return int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0

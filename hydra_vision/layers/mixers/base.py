"""GroupMatrixMixer: the base of the structured mixers, whose matrix is shared by the heads of a group.

In the shared shell (`hydra_vision.layers.matrix_mixer.MatrixMixer`), each of the G = ngroups
groups of H / G heads applies one matrix S_g (L x L) to its values, plus a learned per-head skip:

    y_h = S_g @ x_h + D_h x_h,    i.e.  M_h = S_g + D_h I

Structure shared by the heads of a group lives in the conv features f (data dependent) or in
learned tables sized by `max_seq_len` (data independent); per-head terms (the skip D) are added on
top. A mixer defines `structure` (S as a matrix), optionally `apply_structure` (S @ x without
building S), and `tables` (its learned parameters); the base creates and initialises them.
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import register_notrace_function, register_notrace_module
from torch import nn

from ..matrix_mixer import MatrixMixer

__all__ = ["GroupMatrixMixer", "check_seq_len", "expand_groups", "need_max_seq_len"]


def need_max_seq_len(max_seq_len: Optional[int], name: str) -> int:
    """max_seq_len as a positive int; a data-independent mixer cannot be built without it."""
    if max_seq_len is None or max_seq_len < 1:
        raise ValueError(
            f"the {name} mixer is data independent and needs max_seq_len (the largest number of tokens), "
            f"got {max_seq_len}; hydra_vit_* models pass their token count")
    return int(max_seq_len)


@register_notrace_function
@torch.jit.ignore
def check_seq_len(L: int, max_seq_len: int, name: str) -> None:
    """ValueError when a sequence is longer than a data-independent mixer's parameters allow."""
    if L > max_seq_len:
        raise ValueError(
            f"the {name} mixer was built for at most {max_seq_len} tokens but got {L}; create the model "
            f"with an img_size giving at least {L} tokens (data-independent mixers have one parameter set per length)")


def expand_groups(t: torch.Tensor, nheads: int, dim: int) -> torch.Tensor:
    """Repeats each of the G groups along `dim` for its H / G heads (G -> H)."""
    return t.repeat_interleave(nheads // t.shape[dim], dim=dim)


@register_notrace_module
class GroupMatrixMixer(MatrixMixer):
    """A matrix mixer whose matrix S (one per group, shared by its H / G heads) is built from the
    features or learned tables, plus an optional learned per-head skip: M_h = S_g + D_h I.

    Subclasses define `structure` (S as a matrix), `apply_structure` (S @ x without building S
    where a faster product exists) and `tables`, and call `create_tables()` at the end of their
    __init__. `D` (H,) starts at 1 (the official matrix mixers add the identity).
    """

    def __init__(self, dim: int, *, skip: bool = True, **kwargs) -> None:
        super().__init__(dim, **kwargs)
        dd = {"device": kwargs.get("device"), "dtype": kwargs.get("dtype")}
        self.D = nn.Parameter(torch.empty(self.nheads, **dd)) if skip else None

    def tables(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the learned parameters that hold the structure (none by default)."""
        return {}

    def create_tables(self, device=None, dtype=None) -> None:
        """Registers the `tables()` parameters and initialises every parameter of the mixer."""
        for name, shape in self.tables().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, device=device, dtype=dtype)))
        self.reset_parameters()

    def init_table(self, table: torch.Tensor) -> None:
        """Initialises one learned table in place: N(0, 1) unless a mixer says otherwise."""
        nn.init.normal_(table)

    def reset_parameters(self) -> None:
        """D = 1 (the identity skip of the official matrix mixers); each table by `init_table`."""
        with torch.no_grad():
            if self.D is not None:
                self.D.fill_(1.0)
            for name in self.tables():
                self.init_table(getattr(self, name))

    def structure(self, f: torch.Tensor, r: torch.Tensor, L: int) -> torch.Tensor:
        """S: (B or 1, G, L, L) in fp32 (fp64 for fp64 features) for features f, r of L tokens."""
        raise NotImplementedError

    def apply_structure(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """S @ x for x (B, L, G, C) with C = (H / G) * P channels per group -> (B, L, G, C)."""
        S = self.structure(f, r, x.shape[1])
        return torch.einsum("bgij,bjgc->bigc", S.expand(x.shape[0], -1, -1, -1), x.to(S.dtype)).to(x.dtype)

    def mix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        B, L, H, P = x.shape
        y = self.apply_structure(x.reshape(B, L, self.ngroups, (H // self.ngroups) * P), f, r).reshape(B, L, H, P)
        if self.D is not None:
            y = y + self.D.to(x.dtype)[:, None] * x
        return y

    def matrix(self, x: torch.Tensor, f: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        M = expand_groups(self.structure(f, r, x.shape[1]), self.nheads, dim=1).expand(x.shape[0], -1, -1, -1)
        if self.D is not None:
            M = M + torch.diag_embed(self.D.to(M.dtype)[:, None].expand(-1, x.shape[1]))
        return M

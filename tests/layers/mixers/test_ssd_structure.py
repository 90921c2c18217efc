"""The SSD mixers' matrices: Hydra's quasiseparable rank conditions, the ablations' relations to
Hydra's matrix, causality, and the triangles of mult and concat."""
import pytest
import torch
import torch.nn.functional as F

from hydra_vision.layers.mixers import AddDiagSSD, AddShiftSSD, AddSSD, QuasiseparableSSD

from ._helpers import DIM, L, N, SETTINGS, make, rank, tokens

SSD_SETTINGS = {k: v for k, v in SETTINGS.items() if k != "max_seq_len"}


LOWER = torch.ones(L, L, dtype=torch.bool).tril()


def quasiseparable_orders(M: torch.Tensor) -> tuple[int, int]:
    """The largest ranks of the strictly lower blocks M[k:, :k] and strictly upper blocks M[:k, k:]."""
    L = M.shape[-1]
    return (max(rank(M[k:, :k]) for k in range(1, L)), max(rank(M[:k, k:]) for k in range(1, L)))


def shell(cls, state_dict):
    torch.manual_seed(0)
    mixer = cls(DIM, **SSD_SETTINGS, dtype=torch.float64)
    result = mixer.load_state_dict(state_dict, strict=False)
    assert not result.missing_keys
    return mixer


@pytest.fixture(scope="module")
def hydra_weights():
    """Hydra's weights (the `quasiseparable` mixer), with a diagonal term that varies per token."""
    hydra = make("quasiseparable")
    with torch.no_grad():
        hydra.fc_D.weight.normal_(std=0.3)
        hydra.A_log.uniform_(-1, 1)
    return hydra.state_dict()


@pytest.mark.parametrize("cls", [QuasiseparableSSD, AddSSD, AddShiftSSD, AddDiagSSD])
def test_bidirectional_matrices_are_quasiseparable_of_order_N(cls, hydra_weights):
    M = shell(cls, hydra_weights).materialize(tokens())
    for b in range(M.shape[0]):
        for h in range(M.shape[1]):
            assert quasiseparable_orders(M[b, h]) == (N, N)


def test_a_dense_matrix_fails_the_rank_check():
    assert quasiseparable_orders(torch.randn(L, L, dtype=torch.float64)) == (L // 2, L // 2)


def test_ablations_are_hydras_matrix_without_shift_or_diagonal(hydra_weights):
    u = tokens()
    hydra = shell(QuasiseparableSSD, hydra_weights)
    qs = hydra.materialize(u)
    eye = torch.eye(L, dtype=torch.bool)
    add_shift = shell(AddShiftSSD, hydra_weights).materialize(u)
    torch.testing.assert_close(add_shift, qs.masked_fill(eye, 0))
    _, x, _, _ = hydra.features(u)
    delta = F.linear(x.flatten(2), hydra.fc_D.weight, hydra.D).transpose(1, 2)  # (B, H, L): x . w_D + D
    torch.testing.assert_close(qs.diagonal(dim1=-2, dim2=-1), delta)
    add = shell(AddSSD, hydra_weights).materialize(u)
    add_diag = shell(AddDiagSSD, hydra_weights).materialize(u)
    torch.testing.assert_close(add_diag - add, torch.diag_embed(delta))
    # off the diagonal, add's row i is Hydra's row i + 1 in the lower triangle and row i - 1 in the upper one
    torch.testing.assert_close(add[:, :, :-1].tril(-1), qs[:, :, 1:].tril(-1))
    torch.testing.assert_close(add[:, :, 1:].triu(2), qs[:, :, :-1].triu(2))
    # and its diagonal holds both scans' diagonals: SS_f[i, i] = QS[i + 1, i], SS_b[i, i] = QS[i - 1, i]
    torch.testing.assert_close(add.diagonal(0, -2, -1)[..., 1:-1],
                               qs.diagonal(-1, -2, -1)[..., 1:] + qs.diagonal(1, -2, -1)[..., :-1])


def test_causal_matrix_is_lower_triangular_and_the_mixer_is_causal():
    mixer = make("causal")
    M = mixer.materialize(tokens())
    assert torch.equal(M.triu(1), torch.zeros_like(M)) and M[..., LOWER].abs().min() > 0
    assert quasiseparable_orders(M[0, 0])[0] == N
    u = tokens().requires_grad_()
    mixer(u)[:, 5].sum().backward()
    assert torch.equal(u.grad[:, 6:], torch.zeros_like(u.grad[:, 6:])) and u.grad[:, :6].abs().min() > 0


def test_bidirectional_mixers_see_the_future():
    u = tokens().requires_grad_()
    make("add")(u)[:, 5].sum().backward()
    assert u.grad[:, 6:].abs().amax(dim=-1).min() > 0


def test_concat_heads_split_into_a_causal_and_an_anticausal_half():
    mixer = make("concat")
    M = mixer.materialize(tokens())
    half = mixer.nheads // 2
    fwd, bwd = M[:, :half], M[:, half:]
    assert torch.equal(fwd.triu(1), torch.zeros_like(fwd)) and torch.equal(bwd.tril(-1), torch.zeros_like(bwd))
    assert fwd[..., LOWER].abs().min() > 0 and bwd[..., LOWER.T].abs().min() > 0
    assert quasiseparable_orders(fwd[0, 0])[0] == N and quasiseparable_orders(bwd[0, 0])[1] == N


def test_mult_scans_are_lower_and_upper_triangular_semiseparable():
    M = make("mult").materialize(tokens())
    fwd, bwd = M[:, 0], M[:, 1]
    assert torch.equal(fwd.triu(1), torch.zeros_like(fwd)) and torch.equal(bwd.tril(-1), torch.zeros_like(bwd))
    assert quasiseparable_orders(fwd[0, 0])[0] == N and quasiseparable_orders(bwd[0, 0])[1] == N

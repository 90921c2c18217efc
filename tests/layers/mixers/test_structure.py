"""The structured mixers' matrices have the structure their names claim (paper Table 2, Monarch)."""
import math

import pytest
import torch
import torch.nn.functional as F

from ._helpers import L, N, make, rank, tokens


def structure(mixer, u=None):
    """S (B or 1, G, L, L): the matrix without the per-head skip D."""
    _, x, f, r = mixer.features(tokens() if u is None else u)
    return mixer.structure(f, r, x.shape[1])


@pytest.mark.parametrize("name", ["toeplitz_dd", "toeplitz_di"])
def test_toeplitz_is_constant_along_diagonals(name):
    S = structure(make(name))
    torch.testing.assert_close(S[..., 1:, 1:], S[..., :-1, :-1], rtol=0, atol=0)
    assert rank(S[0, 0]) == L  # a full matrix: the check above is the whole structure


def test_toeplitz_dd_reads_the_kernel_from_the_tokens():
    mixer = make("toeplitz_dd")
    _, x, f, r = mixer.features(tokens())
    S = mixer.structure(f, r, L)
    fwd, bwd = f.chunk(2, dim=-1)  # (B, L, G) each: h[d] from token d, forward and backward
    torch.testing.assert_close(S[..., :, 0], fwd.transpose(1, 2) / math.sqrt(L))
    torch.testing.assert_close(S[..., 0, 1:], bwd[:, 1:].transpose(1, 2) / math.sqrt(L))


def test_toeplitz_di_is_the_centred_kernel():
    mixer = make("toeplitz_di")
    S = structure(mixer)
    torch.testing.assert_close(S[0, :, :, 0], mixer.kernel[:, L - 1:] / math.sqrt(L))
    torch.testing.assert_close(S[0, :, 0, :], mixer.kernel[:, :L].flip(-1) / math.sqrt(L))


@pytest.mark.parametrize("name", ["low_rank_dd", "low_rank_di", "linear_attention"])
def test_low_rank_matrices_have_rank_at_most_N(name):
    S = structure(make(name))
    assert max(rank(S[b, g]) for b in range(S.shape[0]) for g in range(S.shape[1])) == N < L


def test_linear_attention_rows_are_normalised():
    S = structure(make("linear_attention"))
    assert (S >= 0).all()
    torch.testing.assert_close(S.sum(dim=-1), torch.ones_like(S[..., 0]), rtol=0, atol=1e-5)


def test_softmax_attention_is_row_stochastic_with_log_rank_N_plus_one():
    mixer = make("attention")
    S = structure(mixer)
    assert (S > 0).all()
    torch.testing.assert_close(S.sum(dim=-1), torch.ones_like(S[..., 0]))
    # log S = q k^T / sqrt(N) - logsumexp per row: rank <= N + 1
    assert max(rank(S[b, g].log()) for b in range(2) for g in range(2)) == N + 1
    _, x, f, _ = mixer.features(tokens())
    q, k = mixer.qk(f)
    torch.testing.assert_close(S, torch.softmax(torch.einsum("bign,bjgn->bgij", q, k) / math.sqrt(N), dim=-1))


@pytest.mark.parametrize("name", ["cauchy_dd", "cauchy_di"])
def test_cauchy_single_term_has_displacement_rank_one(name):
    """For one term, C = 1 / (lam_i + mu_j) satisfies diag(lam) C + C diag(mu) = 1 1^T."""
    mixer = make(name, d_state=1)
    _, x, f, r = mixer.features(tokens())
    lam, mu, L_ref = mixer.nodes(f, L)
    C = mixer.structure(f, r, L) * math.sqrt(L_ref)
    lam, mu = lam[..., 0].transpose(1, 2), mu[..., 0].transpose(1, 2)  # (B, G, L)
    assert lam.min() > 0.5 and mu.min() > 0.5
    displaced = lam[..., :, None] * C + C * mu[..., None, :]
    torch.testing.assert_close(displaced, torch.ones_like(displaced))


def test_cauchy_dd_is_a_sum_of_cauchy_matrices_of_the_token_nodes():
    mixer = make("cauchy_dd")
    _, x, f, r = mixer.features(tokens())
    q, k = (t.unflatten(-1, (2, N)).transpose(1, 2) for t in f.chunk(2, dim=-1))  # (B, G, L, N)
    lam, mu = F.softplus(q) + 0.5, F.softplus(k) + 0.5
    terms = [1 / (lam[..., n, None] + mu[..., None, :, n]) for n in range(N)]
    torch.testing.assert_close(mixer.structure(f, r, L), sum(terms) / math.sqrt(N * L))


@pytest.mark.parametrize("name", ["vandermonde_dd", "vandermonde_di"])
def test_vandermonde_is_the_real_part_of_powers_of_unit_nodes(name):
    """S = Re V(z) + Re V(w)^T summed over terms, V(z)[i, j] = z_i^j, z = exp(i theta): built here by
    repeated multiplication of complex nodes, not by the cosine formula."""
    mixer = make(name)
    _, x, f, r = mixer.features(tokens())
    theta, phi, L_ref = mixer.angles(f, L)  # (B, G, L, N)

    def vandermonde(angle):  # [b, g, i, j] = sum_n Re(exp(i angle[i, n]) ** j)
        z = torch.polar(torch.ones_like(angle), angle)
        powers = torch.cumprod(torch.cat([torch.ones_like(z[..., None]), z[..., None].expand(*z.shape, L - 1)], -1), -1)
        return powers.real.sum(dim=-2)

    expected = (vandermonde(theta) + vandermonde(phi).transpose(-1, -2)) / math.sqrt(2 * N * L_ref)
    torch.testing.assert_close(mixer.structure(f, r, L), expected, rtol=1e-9, atol=1e-9)


def test_vandermonde_di_starts_at_the_dft():
    mixer = make("vandermonde_di")
    with torch.no_grad():
        mixer.q.copy_(2 * torch.arange(L, dtype=torch.float64)[:, None, None].expand_as(mixer.q))
        mixer.k.copy_(mixer.q)
    dft = torch.cos(2 * math.pi * torch.outer(torch.arange(L), torch.arange(L)).double() / L)
    torch.testing.assert_close(structure(mixer)[0, 0], 2 * N * dft / math.sqrt(2 * N * L))
    torch.manual_seed(0)
    mixer.reset_parameters()
    assert (mixer.q - 2 * torch.arange(L)[:, None, None]).abs().max() < 1


def test_dense_is_the_learned_matrix():
    mixer = make("dense")
    torch.testing.assert_close(structure(mixer)[0], mixer.weight / math.sqrt(L))


def test_monarch_blocks_have_rank_one_and_match_the_factor_form():
    """M = P Bd(left) P^T Bd(right) with b x b blocks (b = 4, n = L = 16): each (i2, j1) block of M
    over (i1, j2) is rank one."""
    mixer = make("monarch")
    b = mixer.block
    assert b * b == L
    M = structure(mixer)[0, 0]
    blocks = M.reshape(b, b, b, b)  # [i1, i2, j1, j2]
    assert max(rank(blocks[:, i2, j1, :]) for i2 in range(b) for j1 in range(b)) == 1
    perm = torch.arange(L).reshape(b, b).T.reshape(-1)  # P: position t1 * b + t2 <- t2 * b + t1
    P = torch.eye(L, dtype=torch.float64)[perm]
    left, right = mixer.left[0], mixer.right[0]
    expected = P @ torch.block_diag(*left) @ P.T @ torch.block_diag(*right)
    torch.testing.assert_close(M, expected)
    assert rank(M) == L


def test_monarch_pads_to_a_square_number_of_tokens():
    mixer = make("monarch", max_seq_len=13)
    assert mixer.block == 4 and mixer.left.shape == (2, 4, 4, 4)
    u = tokens(length=13)
    _, x, f, r = mixer.features(u)
    torch.testing.assert_close(mixer.mix(x, f, r), torch.einsum("bhij,bjhp->bihp", mixer.matrix(x, f, r), x))


@pytest.mark.parametrize("name", ["toeplitz_dd", "low_rank_dd", "cauchy_dd", "vandermonde_dd", "dense", "monarch"])
def test_heads_of_a_group_share_the_structure_and_differ_by_the_skip(name):
    mixer = make(name)
    with torch.no_grad():
        mixer.D.copy_(torch.arange(4.0))
    M = mixer.materialize(tokens())
    eye = torch.eye(L, dtype=torch.float64)
    torch.testing.assert_close(M[:, 1] - M[:, 0], eye.expand(2, L, L))  # heads 0, 1: group 0
    torch.testing.assert_close(M[:, 3] - M[:, 2], eye.expand(2, L, L))  # heads 2, 3: group 1
    assert not torch.allclose(M[:, 2] - M[:, 0], 2 * eye.expand(2, L, L))

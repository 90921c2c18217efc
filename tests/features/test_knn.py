"""knn_scores / topk_accuracy: the DINO weighted vote, checked by hand and on separable features."""
from __future__ import annotations

import math

import pytest
import torch

from hydra_vision.features import knn_scores, topk_accuracy


def test_scores_match_a_hand_computed_vote():
    train = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[2.0, 1.0]])
    scores = knn_scores(train, labels, query, num_classes=3, k=2, temperature=0.5)
    q = query[0] / query[0].norm()
    sims = [float(q @ (t / t.norm())) for t in train]  # 0.894, 0.447, 0.949, -0.894: neighbours 2 and 0
    expected = torch.tensor([[math.exp((sims[0] - sims[2]) / 0.5), 1.0, 0.0]])  # scaled by exp(-s_max / T)
    torch.testing.assert_close(scores, expected, rtol=1e-6, atol=0)


def test_k_larger_than_the_training_set_uses_all_of_it():
    train, labels = torch.eye(3), torch.tensor([0, 1, 1])
    scores = knn_scores(train, labels, torch.ones(1, 3), num_classes=2, k=20, temperature=1.0)
    torch.testing.assert_close(scores, torch.tensor([[1.0, 2.0]]))  # three equal similarities


def test_small_temperatures_do_not_overflow():
    """exp(s / T) is inf in fp32 for s = 1 below T ~ 0.011; the scaled weights stay finite."""
    train, labels = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), torch.tensor([0, 1, 1])
    scores = knn_scores(train, labels, torch.tensor([[1.0, 0.1]]), num_classes=2, k=3, temperature=0.005)
    assert torch.isfinite(scores).all() and scores.argmax().item() == 0


def test_a_class_without_votes_is_never_a_hit():
    scores = torch.zeros(1, 10)
    scores[0, :2] = torch.tensor([2.0, 1.0])  # the neighbours voted for classes 0 and 1 only
    assert topk_accuracy(scores, torch.tensor([4])) == {1: 0.0, 5: 0.0}
    assert topk_accuracy(scores, torch.tensor([1])) == {1: 0.0, 5: 100.0}


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.9, 0.5, 0.1], [0.2, 0.7, 0.6], [0.1, 0.3, 0.8], [0.5, 0.4, 0.3]])
    accuracy = topk_accuracy(scores, torch.tensor([0, 2, 2, 2]), ks=(1, 2, 5))
    assert accuracy == {1: 50.0, 2: 75.0, 5: 100.0}


@pytest.mark.parametrize("flipped", [0, 30])
def test_separable_clusters(flipped: int):
    """10 tight clusters in 64-d: top-1 is 100% minus exactly the queries whose label was changed."""
    g = torch.Generator().manual_seed(0)
    centers = torch.linalg.qr(torch.randn(64, 10, generator=g))[0].T * 10  # orthogonal class centres
    train_labels = torch.arange(10).repeat_interleave(30)
    val_labels = torch.arange(10).repeat_interleave(10)
    train = centers[train_labels] + torch.randn(300, 64, generator=g)
    val = centers[val_labels] + torch.randn(100, 64, generator=g)
    given = val_labels.clone()
    given[:flipped] = (given[:flipped] + 1) % 10
    scores = knn_scores(train, train_labels, val, num_classes=10, chunk_size=7)
    assert torch.equal(scores.argmax(dim=1), val_labels)
    assert topk_accuracy(scores, given, ks=(1,))[1] == 100.0 - flipped


def test_bad_inputs():
    with pytest.raises(ValueError, match="unlabelled images"):
        knn_scores(torch.ones(2, 3), torch.tensor([0, -1]), torch.ones(1, 3), num_classes=2)
    with pytest.raises(ValueError, match=r"features must be \(N, D\) and \(Q, D\)"):
        knn_scores(torch.ones(2, 3), torch.tensor([0, 1]), torch.ones(1, 4), num_classes=2)
    with pytest.raises(ValueError, match="labels for 2 training features"):
        knn_scores(torch.ones(2, 3), torch.tensor([0]), torch.ones(1, 3), num_classes=2)

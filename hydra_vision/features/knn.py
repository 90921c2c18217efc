"""Weighted k-nearest-neighbour classification of features (the DINO k-NN protocol).

Features are L2-normalised; for a query q the k training features t_j with the largest
cosine similarity s_j = q . t_j vote for their labels y_j with weight exp(s_j / T):

    score(q, c) = sum_{j in top-k(q)} exp(s_j / T) [y_j = c]

and the classes ranked by score are the predictions (DINO: k = 20, T = 0.07). Scores are computed
as exp((s_j - s_max) / T), s_max the query's highest similarity: the same ranking without overflow
at small T. A class no neighbour voted for is not a prediction at any rank.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["knn_scores", "topk_accuracy"]


@torch.inference_mode()
def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores of each query.

    Args:
        train_features: (N, D) features of the labelled set.
        train_labels: (N,) int labels in [0, num_classes).
        query_features: (Q, D) features to classify (same device as train_features).
        num_classes: C.
        k: neighbours per query (at most N are used).
        temperature: T in the vote weight exp(s / T).
        chunk_size: queries per similarity matrix (bounds memory to chunk_size x N).

    Returns:
        (Q, C) float32 scores, each row scaled by exp(-s_max / T); argmax is the top-1 prediction.

    Raises:
        ValueError: mismatched shapes or labels outside [0, num_classes).
    """
    if train_features.ndim != 2 or query_features.ndim != 2 or train_features.shape[1] != query_features.shape[1]:
        raise ValueError(f"features must be (N, D) and (Q, D), got {tuple(train_features.shape)} "
                         f"and {tuple(query_features.shape)}")
    if train_labels.shape != train_features.shape[:1]:
        raise ValueError(f"{tuple(train_labels.shape)} labels for {train_features.shape[0]} training features")
    if len(train_labels) and not (0 <= int(train_labels.min()) and int(train_labels.max()) < num_classes):
        raise ValueError(f"training labels must lie in [0, {num_classes}); unlabelled images (-1) cannot vote")
    if temperature <= 0 or k < 1:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    train = F.normalize(train_features.float(), dim=1)
    labels = train_labels.to(train.device, torch.long)
    k = min(k, train.shape[0])
    scores = []
    for query in F.normalize(query_features.float(), dim=1).split(chunk_size):
        similarity, neighbours = (query.to(train.device) @ train.T).topk(k, dim=1)  # (q, k)
        votes = torch.zeros(query.shape[0], num_classes, device=train.device)
        weights = ((similarity - similarity[:, :1]) / temperature).exp()  # topk: column 0 is the largest
        scores.append(votes.scatter_add_(1, labels[neighbours], weights))
    return torch.cat(scores)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Percentage of rows whose label is among the `k` highest scores, for each k (capped at C); a class
    with score 0 (no vote) is never a hit."""
    ranked = scores.argsort(dim=1, descending=True, stable=True)
    hits = (ranked == labels.to(ranked.device).view(-1, 1)) & (scores.gather(1, ranked) > 0)
    return {k: 100.0 * hits[:, :k].any(dim=1).sum().item() / len(labels) for k in ks}

"""k-NN top-1/top-5 of a val feature file against a train feature file (cosine, weighted votes, DINO protocol)."""
from __future__ import annotations

import argparse
import json

import torch

from hydra_vision.features import knn_scores, read_features, topk_accuracy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train", required=True, help="feature file of the labelled set (from hydra-vision extract)")
    parser.add_argument("--val", required=True, help="feature file of the evaluated set")
    parser.add_argument("--key", default="embeddings", help="which output to compare (flattened per image)")
    parser.add_argument("-k", "--k", type=int, default=20, help="neighbours per query")
    parser.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(similarity / T)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="also write the results as JSON here")


def _labelled(path: str, key: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Features (N, D), labels (N,) and class names of a feature file."""
    outputs, manifest = read_features(path)
    if key not in outputs:
        raise ValueError(f"{path} has no {key!r} output (it has: {', '.join(outputs)})")
    labels = torch.tensor(manifest["labels"], dtype=torch.long)
    if not manifest["classes"] or bool((labels < 0).any()):
        raise ValueError(f"{path} has unlabelled images: extract a class-folder layout or a labelled file list")
    return outputs[key].flatten(1), labels, manifest["classes"]


def _in_train_classes(labels: torch.Tensor, classes: list[str], train_classes: list[str], path: str) -> torch.Tensor:
    """Labels (N,) indexing `classes` -> the same labels indexing `train_classes`, matched by class name
    (a val split may hold fewer classes than the train split, e.g. an ImageFolder with a class folder missing)."""
    index = {name: i for i, name in enumerate(train_classes)}
    unknown = [name for name in classes if name not in index]
    if unknown:
        raise ValueError(f"{path} has {len(unknown)} classes the train file lacks (e.g. {', '.join(unknown[:3])}): "
                         "both must come from the same class layout")
    return torch.tensor([index[name] for name in classes], dtype=torch.long)[labels]


def run(args: argparse.Namespace) -> int:
    train, train_labels, classes = _labelled(args.train, args.key)
    val, val_labels, val_classes = _labelled(args.val, args.key)
    val_labels = _in_train_classes(val_labels, val_classes, classes, args.val)
    scores = knn_scores(train.to(args.device), train_labels, val.to(args.device), len(classes),
                        k=args.k, temperature=args.temperature)
    accuracy = topk_accuracy(scores, val_labels)
    results = dict(top1=accuracy[1], top5=accuracy[5], k=args.k, temperature=args.temperature,
                   train=len(train), val=len(val), classes=len(classes))
    print(f"k-NN (k={args.k}, T={args.temperature}) on {len(val)} images, {len(train)} neighbours, "
          f"{len(classes)} classes: top-1 {accuracy[1]:.2f}%  top-5 {accuracy[5]:.2f}%")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0

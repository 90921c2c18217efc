#!/usr/bin/env python3
"""Train a timm classifier (e.g. hydra_vit_base) with timm's recipe; options as timm's train.py.

    python train_imagenet.py -c configs/hydra_vit_base.yaml --data-dir /data/imagenet
    torchrun --nproc_per_node 8 train_imagenet.py -c configs/hydra_vit_base.yaml --data-dir /data/imagenet
"""
import sys

import hydra_vision  # noqa: F401  (registers hydra_vit_* with timm)
from hydra_vision.training import main

if __name__ == "__main__":
    sys.exit(main())

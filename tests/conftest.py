"""Session-wide test setup.

Without a CUDA device the Triton kernels run in Triton's CPU interpreter, which is chosen
when triton is first imported (`import timm` already imports it), so TRITON_INTERPRET is
set here, before any test module imports anything.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per xdist worker: with more, OpenMP threads of the workers spin
    # against each other on a small machine and every test slows down many times over.
    torch.set_num_threads(1)

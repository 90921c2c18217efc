"""The SSD mixers on the fused Triton kernels equal their reference path: output and every gradient.

Without CUDA the kernels run in Triton's CPU interpreter, which has to be chosen before `triton`
is first imported (`import timm` already imports it), so on CPU the comparison runs in a fresh
Python process with TRITON_INTERPRET=1: this file run as a script prints the errors as JSON.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

SSD = ["quasiseparable", "add", "add_shift", "add_diag", "mult", "concat", "causal"]


def _run(name: str, backend: str, device: str) -> list[torch.Tensor]:
    from hydra_vision.layers.mixers import create_mixer

    torch.manual_seed(0)
    mixer = create_mixer(name, 32, d_state=8, headdim=16, ngroups=1, d_conv=3, chunk_size=8, backend=backend,
                         device=device)
    with torch.no_grad():
        mixer.in_proj.weight.normal_(std=0.3)
    u = torch.randn(2, 20, 32, generator=torch.Generator().manual_seed(1)).to(device).requires_grad_()
    y = mixer(u)
    y.square().sum().backward()
    return [y.detach(), u.grad] + [p.grad for p in mixer.parameters()]


def relative_errors(device: str) -> dict[str, float]:
    """max |triton - reference| / max(|reference|, 1e-3) over the output and all gradients, per mixer."""
    errors = {}
    for name in SSD:
        pairs = zip(_run(name, "triton", device), _run(name, "reference", device))
        errors[name] = max(((out - ref).abs().max() / ref.abs().max().clamp(min=1e-3)).item() for out, ref in pairs)
    return errors


@pytest.fixture(scope="module")
def errors() -> dict[str, float]:
    if torch.cuda.is_available():
        return relative_errors("cuda")
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", SSD)
def test_triton_backend_matches_the_reference(errors, name):
    assert errors[name] <= 2e-5


if __name__ == "__main__":
    print(json.dumps(relative_errors("cpu")))

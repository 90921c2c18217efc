"""Session 35's bounds check of the mix in Triton's CPU interpreter: every active lane of every load and store must
fall inside the storage of one of the launch's tensor arguments. Runs the case whose pair-kernel tail launch faulted
on an H100 with 4 warps in one stage (2 x 197 tokens, 8 heads of 32, 4 groups, d_state 16, chunks of 256), and
577 tokens in chunks of 64, shifted and not. Clean on a988b68; widening prefix_values' mask makes it fail.
    TRITON_INTERPRET=1 PYTHONPATH=. python benchmarks/results/2026-12-06_h100_s35/bounds_check.py"""
import sys
import numpy as np
import torch
import triton.runtime.interpreter as itp

ranges = []
orig_init = itp.GridExecutor._init_args_hst
def init(self, args_dev, kwargs):
    a, k = orig_init(self, args_dev, kwargs)
    ranges.clear()
    for t in list(a) + list(k.values()):
        if isinstance(t, torch.Tensor):
            s = t.untyped_storage()
            ranges.append((s.data_ptr(), s.data_ptr() + s.nbytes()))
    return a, k
itp.GridExecutor._init_args_hst = init
bad = []
def check(ptrs, mask, what, nbytes):
    p = np.asarray(ptrs).astype(np.uint64)[np.asarray(mask, dtype=bool)]
    if p.size == 0:
        return
    ok = np.zeros(p.shape, bool)
    for lo, hi in ranges:
        ok |= (p >= lo) & (p + nbytes <= hi)
    if not ok.all():
        import traceback
        bad.append((what, int((~ok).sum()), traceback.extract_stack(limit=12)))
        raise RuntimeError(f"OOB {what}: {(~ok).sum()} lanes")
ol, os_ = itp.InterpreterBuilder.create_masked_load, itp.InterpreterBuilder.create_masked_store
def load(self, ptrs, mask, other, *a):
    check(ptrs.data, mask.data, "load", np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize)
    return ol(self, ptrs, mask, other, *a)
def store(self, ptrs, value, mask, *a):
    check(ptrs.data, mask.data, "store", np.dtype(itp._get_np_dtype(ptrs.get_element_ty())).itemsize)
    return os_(self, ptrs, value, mask, *a)
itp.InterpreterBuilder.create_masked_load, itp.InterpreterBuilder.create_masked_store = load, store

sys.path.insert(0, "tests/kernels")
from conftest import make_mix_inputs, cast_mix_inputs  # noqa
from hydra_vision.kernels.quasiseparable.triton_mix import quasiseparable_mix_triton
for L in (197, 577):
  for shift in (True, False):
    base = make_mix_inputs(2, L, 8, 32, 4, 16, dtype=torch.bfloat16, diag="head", seed=197, shift=shift, device="cpu")
    kw = cast_mix_inputs(base, requires_grad=True)
    y = quasiseparable_mix_triton(**kw, chunk_size=256 if L == 197 else 64)
    names = [n for n, t in kw.items() if isinstance(t, torch.Tensor) and t.requires_grad]
    torch.autograd.grad(y, [kw[n] for n in names], torch.randn_like(y))
    print("L", L, "shift", shift, "ok, no out-of-bounds lane", flush=True)

"""Knobs shared by the Triton stages: interpreter detection, the dot precision per dtype, and `mma`."""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import libdevice

__all__ = ["approx_log2", "dot_precision", "first_config_when_interpreting", "forward_state_dtype", "interpreting",
           "mma", "mma_split"]


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 at import time)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def first_config_when_interpreting(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """An autotuner's `early_config_prune`: every config on the GPU; in the interpreter only the first (no timing
    there)."""
    return configs[:1] if interpreting() else configs


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs get fp32-accurate products: "tf32x3" on the GPU (three tensor-core dots; the
    "ieee" FMA dot unrolls into kernels whose compilation takes minutes), "ieee" in the interpreter.
    16-bit inputs use the tensor cores as they are, except in the interpreter, whose bf16 dot is
    wrong (Triton 3.8): there "upcast" (see `mma`)."""
    if dtype == torch.float32:
        return "ieee" if interpreting() else "tf32x3"
    return "upcast" if interpreting() else "tf32"


def forward_state_dtype(dtype: torch.dtype) -> torch.dtype:
    """Storage type of the forward pass's chunk states for inputs of `dtype`: bf16 for bf16, else fp32.

    In the forward the states only enter y's state term, C . S, whose result is rounded to x's dtype:
    one more bf16 rounding there costs about one output rounding, and halves the bytes the state walk
    writes and the forward kernel reads (Mamba-2 passes its states in C's dtype too). fp16's range
    (65,504) is too small for a state that sums about 1 / |A| tokens' dt x B^T, and the backward keeps
    fp32 states: R and K' cumulate their rounding into dA and dt_bias (`triton_mix`)."""
    return torch.bfloat16 if dtype == torch.bfloat16 else torch.float32


APPROX_MATH = tl.constexpr(not interpreting())


@triton.jit
def approx_log2(x):
    """log2 of fp32 x by the hardware's approximation (lg2.approx, ~2^-22 absolute error): a few
    instructions where tl.log2's libdevice call takes about twenty. tl.log2 in the interpreter."""
    if APPROX_MATH:
        return libdevice.fast_log2f(x)
    return tl.log2(x)


@triton.jit
def mma(a, b, acc, DOT_PREC: tl.constexpr):
    """acc + a @ b with fp32 accumulation. "upcast" multiplies the 16-bit operands in fp32, which
    gives the tensor cores' result (products of 16-bit values are exact in fp32)."""
    if DOT_PREC == "upcast":
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=DOT_PREC)


@triton.jit
def mma_split(a, b, acc, DOT_PREC: tl.constexpr):
    """acc + a @ b for 16-bit (or fp32) a and fp32 b: b = hi + lo in a's dtype, two dots, so b keeps
    about 16 mantissa bits (states and weighted maps, whose rounding would bias dA and dt_bias).
    A b stored in a's dtype already (the forward's bf16 states) takes one dot."""
    if DOT_PREC == "ieee" or DOT_PREC == "tf32x3":  # fp32 operands: one fp32-accurate dot
        return tl.dot(a, b, acc, input_precision=DOT_PREC)
    if b.dtype == a.dtype:
        return mma(a, b, acc, DOT_PREC)
    hi = b.to(a.dtype)
    lo = (b - hi.to(tl.float32)).to(a.dtype)
    return mma(a, lo, mma(a, hi, acc, DOT_PREC), DOT_PREC)

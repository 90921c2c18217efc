"""Session-wide test setup.

Without a CUDA device the Triton kernels run in Triton's CPU interpreter, which is chosen
when triton is first imported (`import timm` already imports it), so TRITON_INTERPRET is
set here, before any test module imports anything.
"""
import os

import pytest
import torch

pytest_plugins = ["pytester"]

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per xdist worker: with more, OpenMP threads of the workers spin
    # against each other on a small machine and every test slows down many times over.
    torch.set_num_threads(1)


# A CUDA fault such as an illegal memory access leaves the process's CUDA context unusable: every later test in
# the same process fails with the same error, and a log then shows dozens of failures for one. After a test whose
# error is such a fault, the hooks below end the xdist worker once the test's reports are written (xdist reports
# the crash, names the test and starts a fresh worker for the rest). Without xdist they do nothing.
STICKY_CUDA_ERRORS = ("illegal memory access", "unspecified launch failure", "misaligned address",
                      "illegal instruction", "device-side assert")
_cuda_faulted = False


def is_sticky_cuda_error(error: BaseException) -> bool:
    """Whether error reports a CUDA fault that poisons the process's context (as PyTorch and Triton word them)."""
    text = str(error)
    return "CUDA" in text and any(phrase in text for phrase in STICKY_CUDA_ERRORS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    global _cuda_faulted
    yield
    if call.excinfo is not None and is_sticky_cuda_error(call.excinfo.value):
        _cuda_faulted = True


def pytest_runtest_logfinish(nodeid, location):
    if _cuda_faulted and os.environ.get("PYTEST_XDIST_WORKER"):
        os._exit(3)  # no cleanup: it would touch the poisoned context


@pytest.fixture
def sticky_cuda_error():
    """The predicate `is_sticky_cuda_error`."""
    return is_sticky_cuda_error

"""tests/conftest.py's CUDA-fault hooks: the xdist worker that hit a fault ends, and later tests run in a new one."""
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
FAULTY_TESTS = '''
import os

POISONED = []


def test_a_fault():
    POISONED.append(os.getpid())
    raise RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered")


def test_after_the_fault():
    assert os.getpid() not in POISONED  # the process that faulted would fail everything after it
'''


@pytest.mark.parametrize("error, sticky", [
    (RuntimeError("CUDA error: an illegal memory access was encountered"), True),
    (RuntimeError("Triton Error [CUDA]: unspecified launch failure"), True),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), False),  # recoverable
    (AssertionError("illegal memory access"), False),  # not a CUDA error
], ids=["illegal_access", "launch_failure", "out_of_memory", "not_cuda"])
def test_which_errors_poison_the_context(sticky_cuda_error, error, sticky):
    assert sticky_cuda_error(error) == sticky


@pytest.mark.parametrize("xdist", [True, False], ids=["xdist", "one_process"])
def test_the_faulting_worker_ends_and_later_tests_run_in_a_new_one(pytester, monkeypatch, xdist):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this test may itself run in an xdist worker
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_faulty=FAULTY_TESTS if xdist else FAULTY_TESTS.replace("assert os.getpid()", "assert ()"))
    result = pytester.runpytest_subprocess(*(["-n", "1"] if xdist else []), "-p", "no:cacheprovider")
    if xdist:  # the test's own failure, then xdist's report of the worker's end: both name the faulting test
        result.assert_outcomes(failed=2, passed=1)
        result.stdout.fnmatch_lines(["FAILED test_faulty.py::test_a_fault - RuntimeError*",
                                     "FAILED test_faulty.py::test_a_fault - worker 'gw0' crashed*"])
    else:
        result.assert_outcomes(failed=1, passed=1)

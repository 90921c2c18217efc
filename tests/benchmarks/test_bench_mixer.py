"""bench_mixer.py's and autotune_timings.py's CPU halves: the chunk option, the table's header, the config ranking."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import autotune_timings  # noqa: E402
import bench_mixer  # noqa: E402


def test_chunk_option_defaults_to_the_models_rule_and_names_bad_values():
    parse = bench_mixer.parse_chunk_size
    assert parse("auto") == "auto"
    assert parse("tuned") is None
    assert parse("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match="'auto' or 'tuned'"):
        parse("sixty-four")


def test_flops_count_the_states_only_past_one_chunk():
    one_chunk = bench_mixer.mixer_flops(1, 197, 24, 64, 1, 64, 256)
    chunked = bench_mixer.mixer_flops(1, 197, 24, 64, 1, 64, 64)
    assert one_chunk == 2 * 197 * 197 * (24 * 64 + 2 * 64)
    assert chunked == 2 * 197 * 64 * (24 * 64 + 2 * 64) + 8 * 197 * 24 * 64 * 64


def test_table_says_which_chunk_size_was_timed():
    header = {"kind": "header", "date": "d", "device": "gpu", "torch": "t", "triton": "tr", "d_model": 768, "H": 24,
              "P": 64, "N": 64, "G": 1, "dtype": "bfloat16", "tokens": 25216, "chunk_size": "auto"}
    row = {"kind": "case", "L": 4097, "batch": 6, "mode": "fwdbwd", "peak_gib": 0.4}
    text = bench_mixer.table([header, {**row, "case": "triton", "ms": 2.0}, {**row, "case": "causal", "ms": 1.6}])
    assert "chunk_size auto" in text
    assert "| 4097 | 6 | fwdbwd | 2.000 | - | 1.600 |" in text


def test_table_compares_triton_with_causal_by_gpu_time_where_both_have_it():
    header = {"kind": "header", "date": "d", "device": "gpu", "torch": "t", "triton": "tr", "d_model": 768, "H": 24,
              "P": 64, "N": 64, "G": 1, "dtype": "bfloat16", "tokens": 25216, "chunk_size": "auto"}
    row = {"kind": "case", "L": 197, "batch": 128, "mode": "fwdbwd", "peak_gib": 0.4}
    timed = [header, {**row, "case": "triton", "ms": 1.5, "gpu_ms": 1.2},
             {**row, "case": "causal", "ms": 1.5, "gpu_ms": 0.8}]
    assert "| 1.00 | - | 1.50 | 0.40 |" in bench_mixer.table(timed)
    old = [header, {**row, "case": "triton", "ms": 1.5}, {**row, "case": "causal", "ms": 1.5}]
    assert "| 1.00 | - | - | 0.40 |" in bench_mixer.table(old)


def test_table_sets_cudnn_attention_beside_triton_and_marks_an_unavailable_backend():
    header = {"kind": "header", "date": "d", "device": "gpu", "torch": "t", "triton": "tr", "d_model": 768, "H": 24,
              "P": 64, "N": 64, "G": 1, "dtype": "bfloat16", "tokens": 25216, "chunk_size": "auto"}
    row = {"kind": "case", "L": 197, "batch": 128, "mode": "fwdbwd", "peak_gib": 0.4}
    triton_case = {**row, "case": "triton", "ms": 1.25}
    text = bench_mixer.table([header, triton_case, {**row, "case": "sdpa_cudnn_h12", "ms": 0.5}])
    assert "| SDPA cuDNN h12 ms | SDPA cuDNN / triton |" in text
    assert text.endswith("| 0.40 | 0.500 | 0.40 |")
    missing = bench_mixer.table([header, triton_case, {**row, "case": "sdpa_cudnn_h12", "status": "unavailable: x"}])
    assert missing.endswith("| 0.40 | - | - |")


def test_an_attention_backend_torch_cannot_run_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(bench_mixer, "sdpa_inputs",
                        lambda batch, L, heads, dtype: [torch.randn(3, batch, heads, L, 64, dtype=dtype)])
    stats = bench_mixer.attention_case("sdpa_cudnn", 1, 8, 2, torch.float32, "fwd")  # no cuDNN attention on a CPU
    assert stats["status"].startswith("unavailable: ")


def test_profile_runs_each_named_case(monkeypatch):
    profiled = []
    monkeypatch.setattr(bench_mixer, "make_inputs", lambda *a: {"kw": {}, "leaves": []})
    monkeypatch.setattr(bench_mixer, "profile", lambda kw, chunk, case, label: profiled.append(label))
    monkeypatch.setattr(bench_mixer, "env_header", lambda: {})
    bench_mixer.main(["--profile", "--cases", "causal", "sdpa", "two_pass", "--lengths", "197"])
    assert profiled == ["causal B128_L197_D768", "two_pass B128_L197_D768"]


def test_config_lines_rank_every_timed_config_and_mark_the_winner():
    fast, slow = triton.Config({"BLOCK": 64}, num_warps=8), triton.Config({"BLOCK": 32}, num_warps=4, num_stages=1)
    record = {"kernel": "k", "key": {"L": 4097}, "timings": {slow: [0.5, 0.4, 0.6], fast: [0.2, 0.1, 0.3]},
              "best": fast}
    lines = autotune_timings.config_lines(record, {"L": 4097})
    assert [line["ms"] for line in lines] == [0.2, 0.5]
    assert [line["best"] for line in lines] == [True, False]
    assert lines[1]["config"] == {"BLOCK": 32, "num_warps": 4, "num_stages": 1, "maxnreg": None}


def test_configs_are_added_or_replaced_by_kernel_name(monkeypatch):
    tuners = autotune_timings.autotuners()
    assert {"chunk_bwd_bc_kernel", "chunk_fwd_kernel", "_states_kernel"} <= set(tuners)
    bc, states = tuners["chunk_bwd_bc_kernel"], tuners["_states_kernel"]
    monkeypatch.setattr(bc, "configs", list(bc.configs))
    monkeypatch.setattr(states, "configs", list(states.configs))
    before = len(bc.configs)
    autotune_timings.set_configs({"chunk_bwd_bc_kernel": [{"BLOCK": 64, "num_warps": 8, "num_stages": 1}]}, False)
    assert len(bc.configs) == before + 1
    assert (bc.configs[-1].kwargs, bc.configs[-1].num_warps, bc.configs[-1].num_stages) == ({"BLOCK": 64}, 8, 1)
    assert bc.configs[-1].maxnreg is None
    autotune_timings.set_configs({"_states_kernel": [{"BLOCK_P": 16, "num_warps": 2, "maxnreg": 128}]}, True)
    assert [(c.kwargs, c.num_warps, c.maxnreg) for c in states.configs] == [({"BLOCK_P": 16}, 2, 128)]
    with pytest.raises(SystemExit, match="no autotuned kernel 'nope'; the kernels are"):
        autotune_timings.set_configs({"nope": []}, False)

"""Conv backward time per SEGMENT (argv[1]) of the tree on PYTHONPATH, hydra_vit_base shape."""
import json, sys, torch, triton
from hydra_vision.kernels.dwconv import triton_conv as tc
seg = int(sys.argv[1]); tc.SEGMENT = seg
B, L, C, K = 128, 196, 1792, 7
x = torch.randn(B, L, C, device="cuda", dtype=torch.bfloat16)
dy = torch.randn_like(x); w = torch.randn(C, 1, K, device="cuda", dtype=torch.bfloat16); b = torch.randn(C, device="cuda", dtype=torch.bfloat16)
f = lambda: tc._conv_backward(dy, x, w, b, False, C)
f(); torch.cuda.synchronize()
ms = triton.testing.do_bench(f, warmup=50, rep=300, return_mode="median")
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(10): f()
    torch.cuda.synchronize()
k = {e.key: round(e.device_time_total / e.count, 1) for e in p.key_averages() if "kernel" in e.key or "reduce" in e.key or "sum" in e.key}
best = {n: str(getattr(getattr(tc, n).kernel, "best_config", None)) for n in ("_conv_bwd_pre_kernel", "_conv_fwd_kernel", "_conv_bwd_dx_kernel")}
fw = triton.testing.do_bench(lambda: tc._conv_forward(x, w, b, False, C), warmup=50, rep=300, return_mode="median")
print(json.dumps({"tree": sys.argv[2], "segment": seg, "bwd_ms": round(ms, 4), "fwd_ms": round(fw, 4), "pre_us": k.get("_conv_bwd_pre_kernel"), "dx_us": k.get("_conv_bwd_dx_kernel"), "best": best}))

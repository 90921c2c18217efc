"""Backward time of the gated norm and the LayerNorm per programs-per-SM (argv), hydra_vit_base shapes."""
import json, sys, torch, triton
from hydra_vision.kernels.gated_rmsnorm import triton_norm as gn
from hydra_vision.kernels.layernorm import triton_layernorm as ln
from hydra_vision.kernels.quasiseparable.triton_config import interpreting
sms = torch.cuda.get_device_properties(0).multi_processor_count
bf = torch.bfloat16
g = torch.Generator("cuda").manual_seed(0)
zx = torch.randn(128, 196, 3376, device="cuda", dtype=bf, generator=g)
y, z = torch.randn(128, 196, 1536, device="cuda", dtype=bf, generator=g), zx[..., :1536]
w = torch.ones(1536, device="cuda")
u = torch.randn(128, 196, 768, device="cuda", dtype=bf, generator=g)
wl, bl = torch.ones(768, device="cuda"), torch.zeros(768, device="cuda")
_, rstd = gn._norm_forward(y, z, w, 1e-5)
_, mean, r2 = ln._ln_forward(u, wl, bl, 1e-6, bf)
for per_sm in [int(a) for a in sys.argv[1:]]:
    progs = lambda M, device: max(min(M, per_sm * sms), 1)
    gn.backward_programs = ln.backward_programs = progs
    t_gn = triton.testing.do_bench(lambda: gn._norm_backward(y, y, z, w, rstd), warmup=30, rep=200, return_mode="median")
    t_ln = triton.testing.do_bench(lambda: ln._ln_backward(u, u, wl, bl, mean, r2), warmup=30, rep=200, return_mode="median")
    print(json.dumps({"per_sm": per_sm, "gated_norm_bwd_ms": round(t_gn, 4), "layer_norm_bwd_ms": round(t_ln, 4)}))

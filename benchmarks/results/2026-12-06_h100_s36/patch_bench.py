"""The patch embedding alone: timm's PatchEmbed (cuDNN, algorithm search on) vs GemmPatchEmbed, bf16 autocast,
forward and forward+backward (weight gradient), 128 x 3 x 224 x 224 and 2 x 3 x 2048 x 2048."""
import json
import torch
from timm.layers import PatchEmbed
from triton.testing import do_bench
from hydra_vision.layers import GemmPatchEmbed

torch.backends.cudnn.benchmark = True
for B, S in [(128, 224), (32, 512), (2, 2048)]:
    x = torch.randn(B, 3, S, S, device="cuda")
    for name, cls in [("timm_conv", PatchEmbed), ("gemm", GemmPatchEmbed)]:
        m = cls(img_size=S, patch_size=16, embed_dim=768).cuda()
        def fwd():
            with torch.autocast("cuda", torch.bfloat16):
                return m(x).contiguous()
        def fwdbwd():
            fwd().float().sum().backward()
        for mode, fn in [("fwd", fwd), ("fwdbwd", fwdbwd)]:
            fn(); torch.cuda.synchronize()
            ms = do_bench(fn, warmup=50, rep=300, return_mode="median")
            print(json.dumps({"B": B, "img": S, "impl": name, "mode": mode, "ms": round(ms, 4),
                              "device": torch.cuda.get_device_name()}))

"""Session 45: how many graphs torch.compile makes of hydra_vit_base's forward under bf16 autocast on CUDA, and why
it breaks (torch._dynamo.explain, no Inductor); then whether Dynamo traces torch.amp.is_autocast_available."""
import json
import sys

import timm
import torch

import hydra_vision  # noqa: F401  (registers the models)

model = timm.create_model("hydra_vit_base").cuda()
x = torch.randn(2, 3, 224, 224, device="cuda")
with torch.autocast("cuda", dtype=torch.bfloat16):
    explained = torch._dynamo.explain(model)(x)
reasons = sorted({str(getattr(b, "reason", b))[:160] for b in explained.break_reasons})
print(json.dumps({"tree": sys.argv[1], "graphs": explained.graph_count, "breaks": explained.graph_break_count,
                  "reasons": reasons}))
torch._dynamo.reset()
try:
    torch.compile(lambda t: t * torch.amp.is_autocast_available("cuda"), fullgraph=True)(torch.ones(1, device="cuda"))
    print("is_autocast_available: traced")
except Exception as error:  # noqa: BLE001  (what Dynamo says is the finding)
    print("is_autocast_available: not traced:", type(error).__name__, str(error).splitlines()[0][:200])

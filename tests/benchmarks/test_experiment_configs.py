"""configs/imagewoof and configs/cifar10 (issue 7): one recipe per folder, only the allowed keys differ."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm

import hydra_vision  # noqa: F401  (registers hydra_vit_*)
from hydra_vision.training.config import build_parser, load_config_file, parse_args

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# the per-experiment keys; everything else is the shared recipe
ALLOWED = {"model", "model_kwargs", "gp", "drop_path"}
GEOMETRY = {"imagewoof": (128, 16, 64), "cifar10": (32, 4, 64)}  # img_size, patch, tokens
FILES = {
    "imagewoof": {"hydra_vit_tiny", "deit_tiny", "hydra_vit_small", "deit_small", "no_shift", "no_diag", "add",
                  "cls_token"},
    "cifar10": {"hydra_vit_tiny", "deit_tiny", "hydra_vit_small", "deit_small"},
}
# ablation -> (model_kwargs beyond the geometry, gp) on top of hydra_vit_tiny.yaml
ABLATIONS = {"no_shift": ({"mixer": "add_diag"}, None), "no_diag": ({"mixer": "add_shift"}, None),
             "add": ({"mixer": "add"}, None), "cls_token": ({"class_token": True}, "token")}


def _load(folder: str) -> dict[str, dict]:
    parser = build_parser()
    return {p.stem: load_config_file(p, parser) for p in sorted((CONFIGS / folder).glob("*.yaml"))}


@pytest.mark.parametrize("folder", sorted(FILES))
def test_folder_holds_the_planned_experiments(folder: str) -> None:
    assert set(_load(folder)) == FILES[folder]


@pytest.mark.parametrize("folder", sorted(FILES))
def test_configs_share_one_recipe(folder: str) -> None:
    configs = _load(folder)
    reference = configs["hydra_vit_tiny"]
    for name, config in configs.items():
        differing = {k for k in reference.keys() | config.keys() if reference.get(k) != config.get(k)}
        assert differing <= ALLOWED, f"{folder}/{name}.yaml differs from hydra_vit_tiny.yaml in {sorted(differing)}"


@pytest.mark.parametrize("folder", sorted(FILES))
def test_pairs_differ_only_in_the_model(folder: str) -> None:
    configs = _load(folder)
    for size in ("tiny", "small"):
        if f"hydra_vit_{size}" not in configs:
            continue
        hydra, deit = configs[f"hydra_vit_{size}"], configs[f"deit_{size}"]
        assert (hydra["model"], deit["model"]) == (f"hydra_vit_{size}", f"deit_{size}_patch16_224")
        assert hydra["model_kwargs"] == deit["model_kwargs"]
        assert hydra["drop_path"] == deit["drop_path"]
        assert "gp" not in hydra and "gp" not in deit


def test_ablations_change_only_their_component() -> None:
    configs = _load("imagewoof")
    base = configs["hydra_vit_tiny"]
    for name, (extra, gp) in ABLATIONS.items():
        config = configs[name]
        assert config["model"] == "hydra_vit_tiny" and config["drop_path"] == base["drop_path"]
        assert config["model_kwargs"] == {**base["model_kwargs"], **extra}, name
        assert config.get("gp") == gp, name


@pytest.mark.parametrize("folder", sorted(FILES))
def test_geometry_and_recipe(folder: str) -> None:
    img_size, patch, tokens = GEOMETRY[folder]
    for name, path in ((p.stem, p) for p in sorted((CONFIGS / folder).glob("*.yaml"))):
        args = parse_args(["-c", str(path), "--data-dir", "unused"])
        assert args.model_kwargs["img_size"] == args.img_size == img_size
        assert args.model_kwargs["patch_size"] == patch
        model = timm.create_model(args.model, num_classes=10, device="meta", global_pool=args.gp,
                                  **args.model_kwargs)
        assert model.patch_embed.num_patches == tokens, name
        assert (args.lr, args.batch_size, args.weight_decay, args.opt) == (1e-3, 128, 0.05, "adamw")
        assert args.sched_on_updates and args.model_ema and args.model_ema_warmup
        assert (args.aa, args.mixup, args.cutmix, args.smoothing, args.reprob) == ("rand-m9-mstd0.5", 0.8, 1.0, 0.1,
                                                                                  0.25)
        assert args.amp and args.amp_dtype == "bfloat16"
        if folder == "imagewoof":
            # eval: resize the short side to Imagewoof's 128 px, then center-crop img_size
            assert round(img_size / args.crop_pct) == 128 and (args.epochs, args.warmup_epochs) == (16, 2)
        else:
            assert args.crop_pct == 1.0 and (args.train_split, args.val_split) == ("train", "test")
            assert args.scale == [0.35, 1.0] and args.epochs == 20

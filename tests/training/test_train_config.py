"""Options: timm train.py names, YAML defaults with command-line override, strict keys, shipped recipes."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from hydra_vision.training.config import TIMM_ONLY_OPTIONS, build_parser, config_to_yaml, parse_args
from hydra_vision.training.optim import resolve_lr

from ._helpers import REPO

CONFIGS = REPO / "configs"


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_yaml_sets_defaults_and_command_line_overrides(tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path, "batch_size: 16\nlr: 1e-3\nopt_betas: [0.9, 0.95]\nmodel_ema: true\n"
                               "model_kwargs: {depth: 2, img_size: 32}\nepochs: 7\n")
    args = parse_args(["/data", "-c", str(cfg), "--batch-size", "8", "--model-kwargs", "depth=4"])
    assert args.batch_size == 8
    assert args.epochs == 7
    assert args.lr == 1e-3 and isinstance(args.lr, float)  # YAML reads "1e-3" as a string
    assert args.opt_betas == [0.9, 0.95]
    assert args.model_ema is True
    assert args.model_kwargs == {"depth": 4}
    assert args.data_dir == "/data"


def test_timm_train_py_names_and_defaults() -> None:
    args = parse_args(["-b", "32", "--model-ema", "--model-ema-decay", "0.99", "--aa", "rand-m9-mstd0.5",
                       "--reprob", "0.25", "--smoothing", "0.1", "--drop-path", "0.2", "--lr-base", "5e-4",
                       "--layer-decay", "0.65", "--grad-accum-steps", "2", "--torchcompile", "--data-dir", "d"])
    assert (args.batch_size, args.model_ema_decay, args.aa, args.reprob, args.drop_path) == \
        (32, 0.99, "rand-m9-mstd0.5", 0.25, 0.2)
    assert (args.lr_base, args.layer_decay, args.grad_accum_steps, args.torchcompile) == (5e-4, 0.65, 2, "inductor")
    defaults = parse_args([])
    assert (defaults.opt, defaults.lr, defaults.lr_base, defaults.lr_base_size, defaults.weight_decay) == \
        ("sgd", None, 0.1, 256, 2e-5)
    assert (defaults.sched, defaults.epochs, defaults.warmup_epochs, defaults.model_ema_decay) == \
        ("cosine", 300, 5, 0.9998)
    assert defaults.amp is None and defaults.amp_dtype == "bfloat16"
    assert parse_args(["--no-amp"]).amp is False


@pytest.mark.parametrize("text, error, match", [
    ("batch_sise: 16\n", ValueError, "batch_sise"),
    ("batch_size: sixteen\n", ValueError, "batch_size"),
    ("model_ema: 'yes'\n", TypeError, "model_ema"),
    ("opt_betas: 0.9\n", TypeError, "opt_betas"),
    ("epochs: [1, 2]\n", TypeError, "epochs"),
    ("mixup_mode: row\n", ValueError, "mixup_mode"),
    ("model_kwargs: depth=2\n", TypeError, "model_kwargs"),
    ("- a list\n", ValueError, "mapping"),
], ids=["unknown-key", "bad-int", "bad-bool", "not-a-list", "not-a-scalar", "bad-choice", "kwargs-not-map",
        "not-a-mapping"])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_args(["-c", str(write_yaml(tmp_path, text))])


def test_timm_only_options_load_when_off(tmp_path: Path) -> None:
    """timm's own args.yaml holds options this trainer lacks: off, they are dropped, the rest applies."""
    off = {key: None for key in TIMM_ONLY_OPTIONS} | {"jsd_loss": False, "tta": 0, "fuser": "", "wandb_tags": [],
                                                      "amp_impl": "native"}
    text = yaml.safe_dump(off | {"batch_size": 48, "model_ema": True})
    args = parse_args(["-c", str(write_yaml(tmp_path, text))])
    assert (args.batch_size, args.model_ema) == (48, True)
    assert not any(hasattr(args, key) for key in TIMM_ONLY_OPTIONS)


@pytest.mark.parametrize("text, named", [
    ("jsd_loss: true\naug_splits: 3\n", ["jsd_loss=True", "aug_splits=3"]),
    ("amp_impl: apex\n", ["amp_impl='apex'"]),
    ("tta: 2\nbatch_size: 8\n", ["tta=2"]),
])
def test_timm_only_options_turned_on_are_refused(tmp_path: Path, text: str, named: list) -> None:
    with pytest.raises(ValueError, match="does not implement") as error:
        parse_args(["-c", str(write_yaml(tmp_path, text))])
    assert all(name in str(error.value) for name in named)


def test_timm_only_options_are_not_options_here() -> None:
    dests = {action.dest for action in build_parser()._actions}
    assert not TIMM_ONLY_OPTIONS & dests


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        parse_args(["-c", str(tmp_path / "nope.yaml")])


def test_resolved_config_reads_back(tmp_path: Path) -> None:
    args = parse_args(["-c", str(CONFIGS / "smoke.yaml"), "--data-dir", "/d", "--input-size", "3", "32", "32",
                       "--model-kwargs", "img_size=(32,32)"])
    args.lr = 0.5
    saved = write_yaml(tmp_path, config_to_yaml(args))
    again = parse_args(["-c", str(saved)])
    expected = {k: v for k, v in vars(args).items() if k not in ("config", "data")}
    got = {k: v for k, v in vars(again).items() if k not in ("config", "data")}
    expected["model_kwargs"] = {"img_size": [32, 32]}  # the command line replaces the whole mapping, as in timm
    assert got == expected


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_parses_with_known_keys(path: Path) -> None:
    keys = set(yaml.safe_load(path.read_text()))
    dests = {a.dest for a in build_parser()._actions}
    assert keys <= dests
    assert parse_args(["-c", str(path)]).model == (yaml.safe_load(path.read_text())["model"])


def _recipe(name: str) -> dict:
    recipe = vars(parse_args(["-c", str(CONFIGS / f"{name}.yaml")]))
    del recipe["config"]
    return recipe


def test_hydra_vit_base_is_the_paper_recipe() -> None:
    r = _recipe("hydra_vit_base")
    assert (r["opt"], r["opt_betas"], r["lr_base"], r["lr_base_size"], r["lr_base_scale"]) == \
        ("adamw", [0.9, 0.999], 1e-3, 1024, "linear")
    assert (r["weight_decay"], r["epochs"], r["sched"], r["warmup_epochs"], r["cooldown_epochs"]) == \
        (0.05, 300, "cosine", 10, 0)
    assert (r["aa"], r["mixup"], r["cutmix"], r["smoothing"], r["reprob"], r["drop"], r["drop_path"]) == \
        ("rand-m9-mstd0.5", 0.8, 1.0, 0.1, 0.25, 0.0, 0.5)
    assert (r["model_ema"], r["model_ema_decay"], r["img_size"]) == (True, 0.99996, 224)


@pytest.mark.parametrize("hydra, baseline, differences", [
    ("hydra_vit_tiny", "deit_tiny_patch16_224", {"model"}),
    ("hydra_vit_small", "deit_small_patch16_224", {"model"}),
    ("hydra_vit_base", "vit_base_patch16_224", {"model", "drop_path"}),
    ("hydra_vit_base", "hydra_vit_tiny", {"model", "drop_path"}),
    ("hydra_vit_base", "hydra_vit_small", {"model", "drop_path"}),
])
def test_recipes_differ_only_where_stated(hydra: str, baseline: str, differences: set) -> None:
    a, b = _recipe(hydra), _recipe(baseline)
    assert {k for k in a if a[k] != b[k]} == differences
    assert b["model"] == baseline


def test_drop_path_of_the_small_models() -> None:
    assert [_recipe(n)["drop_path"] for n in ("hydra_vit_tiny", "hydra_vit_small", "vit_base_patch16_224")] == \
        [0.1, 0.1, 0.3]


@pytest.mark.parametrize("opt, scale, world, accum, expected", [
    ("adamw", "linear", 8, 1, 1e-3),
    ("adamw", "linear", 1, 1, 1e-3 / 8),
    ("adamw", "linear", 1, 8, 1e-3),
    ("adamw", "", 2, 1, 1e-3 * 0.25 ** 0.5),  # timm: Ada*/Lamb default to sqrt scaling
    ("sgd", "", 2, 1, 1e-3 / 4),
])
def test_lr_from_lr_base(opt: str, scale: str, world: int, accum: int, expected: float) -> None:
    args = argparse.Namespace(lr=None, lr_base=1e-3, lr_base_size=1024, lr_base_scale=scale, opt=opt,
                              batch_size=128, grad_accum_steps=accum)
    resolve_lr(args, world)
    assert args.lr == pytest.approx(expected, rel=1e-12)


def test_explicit_lr_wins() -> None:
    args = argparse.Namespace(lr=0.3, lr_base=1e-3, lr_base_size=1024, lr_base_scale="linear", opt="adamw",
                              batch_size=128, grad_accum_steps=1)
    resolve_lr(args, 8)
    assert args.lr == 0.3

"""Feature files: resumable shards of one extraction run, the final file and its manifest.

A run over N images with shard size S writes shard k (images k*S .. (k+1)*S - 1) as one
.safetensors file, atomically (temporary file, then rename), into `<out stem>.shards/`
next to a `plan.json` that fingerprints the run. A rerun with the same plan skips the
shards already there; a different plan is an error, never a silent mix. The final file
holds each output concatenated over the shards (rows = readable images in input order):
a .safetensors file of named tensors or, for a single output, a .npy array.
The manifest (`<out stem>.manifest.json`) lists the paths and labels of those rows,
the class names, the skipped (unreadable) images with their errors, and the settings.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = [
    "Shard", "ShardStore", "check_output_path", "fingerprint", "manifest_path", "read_features", "shards_path",
    "write_features",
]

FORMAT = "hydra-vision-features/1"
INDEX_KEY = "__index__"
SUFFIXES = (".safetensors", ".npy")


def manifest_path(out: str | os.PathLike) -> Path:
    """`features.safetensors` -> `features.manifest.json`."""
    return Path(out).with_suffix(".manifest.json")


def shards_path(out: str | os.PathLike) -> Path:
    """`features.safetensors` -> `features.shards/`."""
    return Path(out).with_suffix(".shards")


def _atomic(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def _dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True)


@dataclass
class Shard:
    """Outputs (name -> (n, ...)) of a shard's readable images, their indices (n,), and failures."""

    outputs: dict[str, torch.Tensor]
    index: torch.Tensor
    failures: list[tuple[int, str]]


class ShardStore:
    """The shard folder of one extraction run.

    Args:
        folder: where the shards live (created if missing).
        plan: JSON-able fingerprint of the run (settings, image list hash, ...).
        num_images: N, the number of input images.
        shard_size: S, images per shard.

    Raises:
        ValueError: the folder holds shards of a run with another plan.
    """

    def __init__(self, folder: str | os.PathLike, plan: dict, num_images: int, shard_size: int):
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.folder = Path(folder)
        self.num_images, self.shard_size = num_images, shard_size
        self.plan = json.loads(_dumps(dict(plan, num_images=num_images, shard_size=shard_size)))  # as stored
        plan_file = self.folder / "plan.json"
        if plan_file.exists():
            old = json.loads(plan_file.read_text())
            changed = sorted(k for k in self.plan.keys() | old.keys() if self.plan.get(k) != old.get(k))
            if changed:
                raise ValueError(
                    f"{self.folder} holds shards of another extraction (differs in: {', '.join(changed)}); "
                    "delete that folder or choose another output path"
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            _atomic(plan_file).write_text(_dumps(self.plan))
            os.replace(_atomic(plan_file), plan_file)

    @property
    def num_shards(self) -> int:
        return -(-self.num_images // self.shard_size)

    def shard_range(self, k: int) -> range:
        return range(k * self.shard_size, min((k + 1) * self.shard_size, self.num_images))

    def _file(self, k: int) -> Path:
        return self.folder / f"shard-{k:05d}.safetensors"

    def done(self) -> list[int]:
        """Shards already written."""
        return [k for k in range(self.num_shards) if self._file(k).exists()]

    def write(self, k: int, shard: Shard) -> None:
        tensors = {name: t.contiguous() for name, t in shard.outputs.items()}
        tensors[INDEX_KEY] = shard.index
        save_file(tensors, _atomic(self._file(k)), metadata={"failures": json.dumps(shard.failures)})
        os.replace(_atomic(self._file(k)), self._file(k))

    def read(self, k: int) -> Shard:
        with safe_open(self._file(k), framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
            failures = [(int(i), str(e)) for i, e in json.loads(f.metadata()["failures"])]
        index = tensors.pop(INDEX_KEY)
        return Shard(tensors, index, failures)

    def remove(self) -> None:
        shutil.rmtree(self.folder)


def fingerprint(paths: list[str]) -> str:
    """sha256 of the image list, for the plan."""
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def check_output_path(out: str | os.PathLike, names: list[str]) -> Path:
    """Checks that `out` can hold outputs `names` (.safetensors: any number; .npy: one).

    Raises:
        ValueError: another suffix, or several outputs for a .npy file.
    """
    out = Path(out)
    if out.suffix not in SUFFIXES:
        raise ValueError(f"output must end in {' or '.join(SUFFIXES)}, got {str(out)!r}")
    if out.suffix == ".npy" and len(names) != 1:
        raise ValueError(f".npy holds one array, but there are {len(names)} outputs ({', '.join(names)}); "
                         "use .safetensors")
    return out


def write_features(out: str | os.PathLike, outputs: dict[str, torch.Tensor], manifest: dict) -> None:
    """Writes the final feature file and its manifest (each atomically; see `check_output_path`)."""
    out = check_output_path(out, list(outputs))
    if out.suffix == ".npy":
        (tensor,) = outputs.values()
        with open(_atomic(out), "wb") as f:
            np.save(f, (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy())
    else:
        save_file({k: v.contiguous() for k, v in outputs.items()}, _atomic(out))
    os.replace(_atomic(out), out)
    manifest_file = manifest_path(out)
    _atomic(manifest_file).write_text(_dumps(dict(manifest, format=FORMAT)))
    os.replace(_atomic(manifest_file), manifest_file)


def read_features(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Reads a feature file and its manifest.

    Returns:
        (outputs, manifest): name -> tensor (a .npy file gives its one output under the
        name the manifest records), and the manifest dict.

    Raises:
        FileNotFoundError: the file or its manifest is missing.
    """
    path = Path(path)
    for needed in (path, manifest_path(path)):
        if not needed.is_file():
            raise FileNotFoundError(f"no feature file at {str(needed)!r}")
    manifest = json.loads(manifest_path(path).read_text())
    if path.suffix == ".npy":
        (name,) = manifest["outputs"]
        return {name: torch.from_numpy(np.load(path))}, manifest
    return load_file(path), manifest

"""FeatureExtractor: pooled embeddings and per-block feature maps of a timm ViT-style model.

For an image batch x (B, 3, H, W) and a model with D channels, P prefix tokens and an
(h, w) = (H, W) / patch grid of patch tokens, one forward pass
(`forward_intermediates`) gives
- `embeddings`: forward_head(forward_features(x), pre_logits=True), (B, D), pooled by
  the model's `global_pool` (optionally L2-normalised);
- `blocks.<i>` for each chosen block i: its output tokens, as NCHW (B, D, h, w) or NLC
  (B, h*w, D); with prefix tokens, NLC becomes (B, P + h*w, D) (prefix first, as in
  forward_features) and NCHW adds `blocks.<i>.prefix` (B, P, D).
Preprocessing follows the model's pretrained cfg (timm's resolve_data_config +
create_transform); images are resized on the CPU as uint8 (or, with `resize_on='device'`, on the
model's device: `DeviceResize`) and normalised on the device. On CUDA, the copy and preparation of a
batch from host memory run on a side stream, so that they overlap the forward of the batch before
(the forward waits for them). With `cuda_graphs=True` each batch shape's forward is captured once as a
CUDA graph and replayed (no per-batch Python or launch cost).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import create_transform, resolve_data_config

from ..checkpoint_io import load_model_weights
from .device_resize import DeviceResize
from .loading import PackedImages, open_rgb, stack_if_uniform

__all__ = ["FeatureExtractor", "ImageInput"]

OutputFormat = Literal["NCHW", "NLC"]
ImageInput = torch.Tensor | Image.Image | str | os.PathLike | Sequence[Image.Image | str | os.PathLike | torch.Tensor]


def _model_input_size(model: torch.nn.Module, img_size: int | None) -> tuple[int, int, int] | None:
    """(C, H, W) the model is built for: `img_size` if given, else its patch embedding's size."""
    in_chans = getattr(model, "in_chans", 3)
    if img_size is not None:
        return in_chans, img_size, img_size
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    return (in_chans, *size) if size is not None else None


class FeatureExtractor:
    """Extracts embeddings and block feature maps from images.

    Args:
        model: a timm model name (built with `num_classes=0`) or a model instance (used
            as it is: moved to `device` and `dtype` and switched to eval mode in place).
        checkpoint: weights to load into a model given by name (see `hydra_vision.checkpoint_io.load_model_weights`).
        ema: load the checkpoint's EMA weights.
        pool: `global_pool` for a model given by name (e.g. 'avg', 'token'); None keeps
            the model's default.
        embeddings: return pooled `embeddings`.
        layers: block indices (negative counts from the end) whose outputs to return.
        output_fmt: 'NCHW' maps or 'NLC' token sequences for `layers`.
        prefix_tokens: also return the prefix (class/register) tokens of `layers`.
        layer_norm: apply the model's final norm to the block outputs.
        normalize: L2-normalise `embeddings`.
        img_size: input size for a model given by name; None keeps the cfg's.
        resize_on: 'cpu' (timm's transform with PIL, in the loader) or 'device' (decode only on the
            CPU, resize + crop on the model's device; pixels differ from PIL's: see device_resize.py).
        device: device to run on (default: cpu for a name, the model's own otherwise).
        dtype: compute dtype (default: float32 for a name, the model's own otherwise).
        model_kwargs: extra `timm.create_model` keyword arguments.
        cuda_graphs: replay `forward` as a CUDA graph, captured on the first batch of each shape (two
            eager warm-up runs, then the capture; one graph and its memory per shape). The same math
            as the eager forward; the graphs read the model's parameters in place, so weights loaded
            in place are seen. CUDA devices only.

    Raises:
        ValueError: no output asked for, bad `output_fmt`, duplicate or unknown layer index,
            `cuda_graphs` on a device that is not CUDA.
        TypeError: `pool`, `img_size`, `checkpoint` or `model_kwargs` with a model instance.
    """

    def __init__(
        self,
        model: str | torch.nn.Module,
        *,
        checkpoint: str | os.PathLike | None = None,
        ema: bool = False,
        pool: str | None = None,
        embeddings: bool = True,
        layers: Sequence[int] = (),
        output_fmt: OutputFormat = "NCHW",
        prefix_tokens: bool = False,
        layer_norm: bool = False,
        normalize: bool = False,
        img_size: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        model_kwargs: dict | None = None,
        resize_on: Literal["cpu", "device"] = "cpu",
        cuda_graphs: bool = False,
    ):
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        if not embeddings and not layers:
            raise ValueError("nothing to extract: ask for embeddings and/or layers")
        if resize_on not in ("cpu", "device"):
            raise ValueError(f"resize_on must be 'cpu' or 'device', got {resize_on!r}")
        if isinstance(model, str):
            kwargs = dict(model_kwargs or {})
            if pool is not None:
                kwargs["global_pool"] = pool
            if img_size is not None:
                kwargs["img_size"] = img_size
            name, model = model, timm.create_model(model, pretrained=False, num_classes=0, **kwargs)
            if checkpoint is not None:
                load_model_weights(model, checkpoint, use_ema=ema, model_name=name)
            device, dtype = device or "cpu", dtype or torch.float32
        elif any(v is not None for v in (pool, img_size, checkpoint, model_kwargs)):
            raise TypeError("pool, img_size, checkpoint and model_kwargs apply only to a model given by name")
        else:
            param = next(model.parameters())
            device, dtype = device or param.device, dtype or param.dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs a CUDA device, got {self.device}")
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, dict]] | None = (
            {} if cuda_graphs else None)
        self._prepare_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.embeddings, self.output_fmt = embeddings, output_fmt
        self.prefix_tokens, self.layer_norm, self.normalize = prefix_tokens, layer_norm, normalize
        self.layers = self._resolve_layers(layers)

        input_size = _model_input_size(model, img_size)
        self.data_config = resolve_data_config({"input_size": input_size} if input_size else {}, model=model)
        self.transform = create_transform(**self.data_config, use_prefetcher=True)
        self._device_resize = DeviceResize(self.transform, self.device) if resize_on == "device" else None
        if self._device_resize is not None:
            self.transform = self._device_resize.decode  # the loader's part: PIL -> uint8 (3, h, w)
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(self.data_config["mean"], device=self.device).view(shape) * 255
        self._std = torch.tensor(self.data_config["std"], device=self.device).view(shape) * 255

    def _resolve_layers(self, layers: Sequence[int]) -> list[int]:
        """Checks block indices and returns them non-negative and sorted."""
        feature_info = getattr(self.model, "feature_info", None)
        if layers and not feature_info:
            raise ValueError(f"{type(self.model).__name__} has no feature_info: cannot take block outputs")
        n = len(feature_info or ())
        resolved = []
        for index in layers:
            if not -n <= index < n:
                raise ValueError(f"unknown layer index {index}: the model has {n} blocks (0..{n - 1} or -{n}..-1)")
            resolved.append(index % n)
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"duplicate layer indices in {list(layers)}")
        return sorted(resolved)

    def layer_name(self, index: int) -> str:
        """Output key of block `index` (its module name, e.g. 'blocks.11')."""
        return self.model.feature_info[index]["module"]

    @property
    def output_names(self) -> list[str]:
        """Keys of the dict each call returns."""
        names = ["embeddings"] if self.embeddings else []
        with_prefix = self.prefix_tokens and self.output_fmt == "NCHW" and getattr(self.model, "num_prefix_tokens", 0)
        for index in self.layers:
            names.append(self.layer_name(index))
            if with_prefix:
                names.append(f"{self.layer_name(index)}.prefix")
        return names

    def identity(self) -> dict:
        """What this extractor computes, JSON-able: the model's class and a sha256 of its weights, the
        preprocessing, the outputs and their options, the dtype and device type. A resumed extraction
        must match it (`extract_to_file`). `cuda_graphs` is not part of it: a replay computes the same."""
        digest = hashlib.sha256()
        for name, t in self.model.state_dict().items():
            digest.update(name.encode())
            digest.update(t.detach().to("cpu").contiguous().flatten().view(torch.uint8).numpy().tobytes())
        return {
            "model": type(self.model).__name__, "weights_sha256": digest.hexdigest(),
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()},
            "resize_on": "device" if self._device_resize is not None else "cpu",
            "outputs": self.output_names, "output_fmt": self.output_fmt, "prefix_tokens": self.prefix_tokens,
            "layer_norm": self.layer_norm, "normalize": self.normalize,
            "dtype": str(self.dtype), "device": self.device.type,
        }

    def preprocess(self, images: Sequence[Image.Image | str | os.PathLike]) -> torch.Tensor | list[torch.Tensor]:
        """Paths or PIL images -> `transform`ed uint8 images on the CPU: a batch (B, 3, H, W), or a
        list of (3, h_i, w_i) when resizing on the device and the sizes differ."""
        bad = [type(im).__name__ for im in images if not isinstance(im, (Image.Image, str, os.PathLike))]
        if bad or not images:
            raise TypeError(f"expected a non-empty sequence of PIL images or paths, got {bad or 'nothing'}")
        return stack_if_uniform([
            self.transform(im.convert("RGB") if isinstance(im, Image.Image) else open_rgb(im)) for im in images
        ])

    def crops(self, images: Sequence[Image.Image | str | os.PathLike]) -> torch.Tensor:
        """Paths or PIL images -> the pixels the model sees: uint8 (B, 3, H, W) on the CPU."""
        decoded = self.preprocess(images)
        return decoded if self._device_resize is None else self._device_resize(decoded).to(torch.uint8).cpu()

    def standardize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Model-sized pixels (B, 3, H, W) in [0, 255] -> (x / 255 - mean) / std on the device, in the compute dtype."""
        return ((pixels.to(self.device, non_blocking=True).float() - self._mean) / self._std).to(self.dtype)

    def normalize_input(self, images: torch.Tensor | Sequence[torch.Tensor] | PackedImages) -> torch.Tensor:
        """uint8 images from `preprocess` -> model input (B, 3, H, W) on the device (`standardize`d;
        resized there first with `resize_on='device'`)."""
        if self._device_resize is not None:
            return self._prepare(images, lambda: self.standardize(self._device_resize(images)))
        images = stack_if_uniform(images) if isinstance(images, (list, tuple)) else images
        if isinstance(images, (list, PackedImages)):
            raise ValueError("images of several sizes: resize them first, or use resize_on='device'")
        return self._prepare(images, lambda: self.standardize(images))

    def _prepare(self, images: torch.Tensor | Sequence[torch.Tensor] | PackedImages,
                 preparation: Callable[[], torch.Tensor]) -> torch.Tensor:
        """preparation() of host `images`, on the side stream on CUDA (the current stream waits for its result;
        the forward of the batch queued before runs meanwhile); images already on the device: on the current stream."""
        host = [images.data] if isinstance(images, PackedImages) else (
            [images] if isinstance(images, torch.Tensor) else list(images))
        if self._prepare_stream is None or any(t.device.type != "cpu" for t in host):
            return preparation()
        current = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._prepare_stream):
            x = preparation()
        current.wait_stream(self._prepare_stream)
        x.record_stream(current)  # allocated on the side stream, freed after the current stream's use
        return x

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of a preprocessed batch x (B, 3, H, W); keys as in the module docstring."""
        x = x.to(self.device, self.dtype)
        return self._forward(x) if self._graphs is None else self._replay(x)

    def _replay(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`_forward` of x (B, 3, H, W), on the device in the compute dtype, by replaying the CUDA graph
        of x's shape (captured on first use). Returns copies: the next replay overwrites the graph's outputs."""
        shape = tuple(x.shape)
        if shape not in self._graphs:
            self._graphs[shape] = self._capture(x)
        graph, static_in, static_out = self._graphs[shape]
        static_in.copy_(x)
        graph.replay()
        return {name: t.clone() for name, t in static_out.items()}

    def _capture(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]:
        """A CUDA graph of `_forward` on a static copy of x (B, 3, H, W), after two eager warm-up runs on a
        side stream (Triton autotuning and cuBLAS workspaces must not happen during the capture).

        Returns:
            (graph, static input (B, 3, H, W), static outputs): copy a batch into the input, replay, read the outputs.
        """
        with torch.cuda.device(self.device):
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the DataLoader's pin-memory thread keeps making CUDA calls during a capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = self._forward(static_in)
        return graph, static_in, static_out

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The eager forward of x (B, 3, H, W), on the device in the compute dtype; keys as in the module docstring."""
        if not self.layers:
            return {"embeddings": self._pool(self.model.forward_features(x))}
        result = self.model.forward_intermediates(
            x,
            indices=self.layers,
            return_prefix_tokens=self.prefix_tokens,
            norm=self.layer_norm,
            stop_early=not self.embeddings,
            output_fmt=self.output_fmt,
            intermediates_only=not self.embeddings,
        )
        final, intermediates = result if self.embeddings else (None, result)
        out = {"embeddings": self._pool(final)} if self.embeddings else {}
        for index, maps in zip(self.layers, intermediates):
            name = self.layer_name(index)
            if isinstance(maps, tuple):
                maps, prefix = maps
                if self.output_fmt == "NLC":
                    maps = torch.cat([prefix, maps], dim=1)
                else:
                    out[f"{name}.prefix"] = prefix.contiguous()
            out[name] = maps.contiguous()
        return out

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        embeddings = self.model.forward_head(tokens, pre_logits=True).contiguous()
        return F.normalize(embeddings.float(), dim=-1).to(embeddings.dtype) if self.normalize else embeddings

    def __call__(self, images: ImageInput) -> dict[str, torch.Tensor]:
        """Features of images.

        Args:
            images: a preprocessed float tensor (B, 3, H, W) or (3, H, W); uint8 images from
                `preprocess` (a tensor, or a list of tensors) or a loader batch's `PackedImages`;
                or a PIL image, a path, or a sequence of them.

        Returns:
            dict of tensors on the device, in the compute dtype: `embeddings` (B, D)
            and/or the block outputs (see the module docstring).
        """
        if isinstance(images, torch.Tensor):
            batch = images if images.ndim == 4 else images.unsqueeze(0)
            if batch.ndim != 4:
                raise ValueError(f"expected an image tensor (B, 3, H, W) or (3, H, W), got {tuple(images.shape)}")
            return self.forward(self.normalize_input(batch) if batch.dtype == torch.uint8 else batch)
        if isinstance(images, (Image.Image, str, os.PathLike)):
            images = [images]
        if isinstance(images, PackedImages):
            return self.forward(self.normalize_input(images))
        if images and any(isinstance(im, torch.Tensor) for im in images):
            if not all(isinstance(im, torch.Tensor) and im.dtype == torch.uint8 and im.ndim == 3 for im in images):
                raise TypeError("a sequence of tensors must hold uint8 images (3, h, w), as `preprocess` returns")
            return self.forward(self.normalize_input(images))
        return self.forward(self.normalize_input(self.preprocess(images)))

""" Hydra-ViT: Vision Transformer layout with Hydra (bidirectional quasiseparable SSM) mixers

Paper: `Hydra: Bidirectional State Space Models Through Generalized Matrix Mixers`
    - https://arxiv.org/abs/2407.09941 (Hwang, Lahoti, Dao, Gu; NeurIPS 2024), section 4.2, Table 9

Patch embedding, row-major tokens, no positional embedding by default, pre-norm residual
blocks x + DropPath(Hydra(LayerNorm(x))) with no MLP (optional), final norm, pooling, linear head.
"""
from functools import partial
from typing import Any, Callable, Dict, List, Literal, Optional, Set, Tuple, Type, Union, get_args

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import (
    DropPath,
    LayerNorm,
    LayerScale,
    LayerType,
    Mlp,
    calculate_drop_path_rates,
    get_act_layer,
    get_device_dtype,
    get_norm_layer,
    register_notrace_function,
    resample_abs_pos_embed,
    resample_patch_embed,
    to_2tuple,
    trunc_normal_,
)
from timm.models import build_model_with_cfg, checkpoint, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._input import get_pretrained_grid_size, update_model_args, update_model_input_size
from timm.models._manipulate import named_apply
from timm.models.vision_transformer import get_init_weights_vit, global_pool_nlc

from hydra_vision.layers import GemmPatchEmbed, MatmulInputLayerNorm, MatrixMixer, MixerType, create_mixer
from hydra_vision.layers.recompute import RecomputedActivations, autocast_input, recomputing

__all__ = ['HydraVisionTransformer']

PoolType = Literal['', 'avg', 'avgmax', 'max', 'token']
PosEmbedType = Literal['', 'none', 'learn']


def _check_choice(name: str, value: Any, choices: Any) -> None:
    if value not in get_args(choices):
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(repr, get_args(choices)))}")


@register_notrace_function
@torch.jit.ignore
def check_image(
        x: torch.Tensor,
        in_chans: int,
        img_size: Tuple[int, int],
        patch_size: Tuple[int, int],
        strict_img_size: bool,
        dynamic_img_pad: bool,
) -> torch.Tensor:
    """Returns x after checking it is (B, in_chans, H, W) with an H, W the model accepts.

    Opaque to TorchScript and FX (its name has no leading underscore: FX autowraps only those).
    """
    if x.ndim != 4 or x.shape[1] != in_chans:
        raise ValueError(
            f'expected {in_chans} input channels, got {x.shape[1] if x.ndim == 4 else "?"} '
            f'(images of shape (B, {in_chans}, H, W); input shape {tuple(x.shape)})')
    H, W = x.shape[-2:]
    if strict_img_size and (H, W) != tuple(img_size):
        raise ValueError(
            f'expected {img_size[0]}x{img_size[1]} images, got {H}x{W}; create the model with '
            f'img_size=({H}, {W}) or dynamic_img_size=True')
    if not dynamic_img_pad and (H % patch_size[0] or W % patch_size[1]):
        raise ValueError(
            f'image size {H}x{W} is not divisible by the patch size {patch_size[0]}x{patch_size[1]}; '
            f'resize the images or create the model with dynamic_img_pad=True')
    return x


def _hooked(module: nn.Module) -> bool:
    """Whether calling module runs forward (pre-)hooks, its own or global ones."""
    return bool(module._forward_hooks or module._forward_pre_hooks or nn.modules.module._global_forward_hooks
                or nn.modules.module._global_forward_pre_hooks)


class HydraBlock(nn.Module):
    """Pre-norm residual block: x + DropPath(LS(mixer(norm1(x)))), then optionally the same with an MLP.

    In eager mode with a `MatmulInputLayerNorm` norm1, the shortcut's gradient is added to norm1's inside its
    backward kernel (`mix_with_shortcut`), not by autograd in a pass of its own. `fuse_residual = False` keeps
    autograd's addition.
    """

    fuse_residual = True

    def __init__(
            self,
            dim: int,
            mixer: MixerType = 'quasiseparable',
            mixer_kwargs: Optional[Dict[str, Any]] = None,
            mlp_ratio: float = 0.,
            proj_drop: float = 0.,
            init_values: Optional[float] = None,
            drop_path: float = 0.,
            act_layer: Type[nn.Module] = nn.GELU,
            norm_layer: Type[nn.Module] = LayerNorm,
            mlp_layer: Type[nn.Module] = Mlp,
            device=None,
            dtype=None,
    ) -> None:
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        self.norm1 = norm_layer(dim, **dd)
        self.mixer = create_mixer(mixer, dim, **(mixer_kwargs or {}), **dd)
        self.ls1 = LayerScale(dim, init_values=init_values, **dd) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = norm_layer(dim, **dd)
            self.mlp = mlp_layer(
                in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop, **dd)
            self.ls2 = LayerScale(dim, init_values=init_values, **dd) if init_values else nn.Identity()
            self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        else:
            self.norm2 = self.mlp = self.ls2 = self.drop_path2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and recomputing(self.mixer.selective_recompute, x):
            mixed, x = self.mix_recomputing(x)
        elif not torch.jit.is_scripting() and self.fuses_residual(x):
            mixed, x = self.mix_with_shortcut(x)
        else:
            mixed = self.mixer(self.norm1(x))
        x = x + self.drop_path1(self.ls1(mixed))
        if self.mlp is not None:
            x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x

    @torch.jit.unused
    def fuses_residual(self, x: torch.Tensor) -> bool:
        """Whether this call takes `mix_with_shortcut`: eager tensors (not FX proxies), norm1 a
        `MatmulInputLayerNorm` without forward hooks (the fused path does not call them), and the flag on."""
        return (self.fuse_residual and isinstance(x, torch.Tensor) and isinstance(self.norm1, MatmulInputLayerNorm)
                and not _hooked(self.norm1))

    @torch.jit.unused
    def mix_with_shortcut(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mixer(norm1(x)), x) from one norm1 node, whose backward kernel adds the gradients of both."""
        normed, shortcut = self.norm1.with_shortcut(x)
        return self.mixer(normed), shortcut

    @torch.jit.unused
    def mix_recomputing(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mixer(norm1(x)), x) with norm1's output, as in_proj takes it, recomputed in backward instead of
        stored (the mixer drops its conv and gated-norm outputs the same way: `selective_recompute`). Where
        `fuses_residual` allows, x comes from norm1's `with_shortcut` node, as in `mix_with_shortcut`."""
        with RecomputedActivations() as recomputed:
            if self.fuses_residual(x):
                normed, x = recomputed.run(self.norm1.with_shortcut, x, marked=1)
            else:
                normed = recomputed.run(self.mixer_input, x)
            return self.mixer(normed), x

    def mixer_input(self, x: torch.Tensor) -> torch.Tensor:
        """norm1(x), cast as the mixer's in_proj takes it under autocast."""
        return autocast_input(self.norm1(x))


class HydraVisionTransformer(nn.Module):
    """ Hydra-ViT

    A Vision Transformer whose token mixer is the Hydra quasiseparable SSM,
    from `Hydra: Bidirectional State Space Models Through Generalized Matrix Mixers`
        - https://arxiv.org/abs/2407.09941
    """
    dynamic_img_size: torch.jit.Final[bool]

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: Union[int, Tuple[int, int]] = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: PoolType = 'avg',
            embed_dim: int = 768,
            depth: int = 24,
            mixer: MixerType = 'quasiseparable',
            d_state: int = 64,
            d_conv: int = 7,
            expand: int = 2,
            headdim: int = 64,
            ngroups: int = 1,
            chunk_size: int | str | None = "auto",
            backend: Optional[str] = None,
            selective_recompute: bool = False,
            mlp_ratio: float = 0.,
            init_values: Optional[float] = None,
            class_token: bool = False,
            pos_embed: PosEmbedType = 'none',
            final_norm: bool = True,
            dynamic_img_size: bool = False,
            dynamic_img_pad: bool = False,
            drop_rate: float = 0.,
            pos_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            weight_init: Literal['', 'skip'] = '',
            embed_layer: Callable = GemmPatchEmbed,
            norm_layer: Optional[LayerType] = None,
            act_layer: Optional[LayerType] = None,
            mlp_layer: Type[nn.Module] = Mlp,
            device=None,
            dtype=None,
    ) -> None:
        """
        Args:
            img_size: Input image size.
            patch_size: Patch size.
            in_chans: Number of image input channels.
            num_classes: Number of classes for the classification head (0: no head).
            global_pool: Pooling of the final tokens ('avg' default, 'token' needs class_token).
            embed_dim: Model width.
            depth: Number of blocks.
            mixer: Sequence mixer of every block.
            d_state, d_conv, expand, headdim, ngroups, chunk_size, backend: Mixer settings (see `Hydra`).
            selective_recompute: Recompute each block's LayerNorm, conv and gated-norm outputs in backward
                (`set_selective_recompute`).
            mlp_ratio: Hidden/width ratio of an MLP sub-block after each mixer (0: none, as in the paper).
            init_values: Layer-scale init value (layer scale enabled if set).
            class_token: Prepend a learned class token.
            pos_embed: 'learn' adds a learned absolute position embedding; '' or 'none' (default) adds none.
            final_norm: Normalise the tokens after the last block.
            dynamic_img_size: Accept any image size divisible by the patch (resampling the position embedding).
            dynamic_img_pad: Pad images to a multiple of the patch size.
            drop_rate: Head dropout rate.
            pos_drop_rate: Dropout after the embedding.
            proj_drop_rate: Dropout in the MLP sub-block.
            drop_path_rate: Stochastic depth rate (linearly increasing over the blocks).
            weight_init: '' (trunc-normal 0.02 linears, as in the paper) or 'skip' (no init, e.g. for loading).
            embed_layer: Patch embedding layer (default: timm's PatchEmbed with its conv as one GEMM,
                `GemmPatchEmbed`).
            norm_layer: Normalisation layer (default: timm LayerNorm for the final norm, and for the blocks
                `MatmulInputLayerNorm`, which returns the dtype their matmuls take under autocast).
            act_layer: Activation of the MLP sub-block (default: GELU).
            mlp_layer: MLP layer of the MLP sub-block.
        """
        super().__init__()
        dd = {'device': device, 'dtype': dtype}
        _check_choice('global_pool', global_pool, PoolType)
        _check_choice('pos_embed', pos_embed, PosEmbedType)
        _check_choice('weight_init', weight_init, Literal['', 'skip'])
        if global_pool == 'token' and not class_token:
            raise ValueError("global_pool='token' needs class_token=True")
        img_size, patch_size = to_2tuple(img_size), to_2tuple(patch_size)
        if not dynamic_img_pad and (img_size[0] % patch_size[0] or img_size[1] % patch_size[1]):
            raise ValueError(
                f'img_size {img_size} is not divisible by patch_size {patch_size}; '
                f'choose a multiple or set dynamic_img_pad=True')
        # by default the blocks' norms give the dtype in_proj takes (no fp32 copies under autocast)
        block_norm_layer = get_norm_layer(norm_layer) or partial(MatmulInputLayerNorm, backend=backend)
        norm_layer = get_norm_layer(norm_layer) or LayerNorm
        act_layer = get_act_layer(act_layer) or nn.GELU

        self.num_classes = num_classes
        self.in_chans = in_chans
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.has_class_token = class_token
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False

        embed_args = dict(strict_img_size=False, output_fmt='NHWC') if dynamic_img_size else {}
        self.patch_embed = embed_layer(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            dynamic_img_pad=dynamic_img_pad,
            **embed_args,
            **dd,
        )
        num_patches = self.patch_embed.num_patches
        reduction = self.patch_embed.feat_ratio()

        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim, **dd)) if class_token else None
        if pos_embed == 'learn':
            self.pos_embed = nn.Parameter(torch.empty(1, num_patches + self.num_prefix_tokens, embed_dim, **dd))
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(p=pos_drop_rate)

        mixer_kwargs = dict(
            d_state=d_state, d_conv=d_conv, expand=expand, headdim=headdim, ngroups=ngroups,
            chunk_size=chunk_size, backend=backend, max_seq_len=num_patches + self.num_prefix_tokens)
        dpr = calculate_drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(*[
            HydraBlock(
                dim=embed_dim,
                mixer=mixer,
                mixer_kwargs=mixer_kwargs,
                mlp_ratio=mlp_ratio,
                proj_drop=proj_drop_rate,
                init_values=init_values,
                drop_path=dpr[i],
                act_layer=act_layer,
                norm_layer=block_norm_layer,
                mlp_layer=mlp_layer,
                **dd,
            )
            for i in range(depth)])
        self.set_selective_recompute(selective_recompute)
        self.feature_info = [
            dict(module=f'blocks.{i}', num_chs=embed_dim, reduction=reduction) for i in range(depth)]
        self.norm = norm_layer(embed_dim, **dd) if final_norm else nn.Identity()

        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()

        if weight_init != 'skip':
            self.init_weights(needs_reset=False)

    def init_weights(self, mode: str = '', needs_reset: bool = True) -> None:
        """Trunc-normal(0.02) linears and embeddings (paper Table 9); mixers keep their own init.

        Args:
            mode: timm's ViT init mode ('' default, or 'jax' / 'moco' as in timm).
            needs_reset: Also call reset_parameters() of every module (e.g. after creation on 'meta').
        """
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        named_apply(get_init_weights_vit(mode, needs_reset=needs_reset), self)

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        """Parameters that should not use weight decay (1-D ones are excluded by timm anyway)."""
        return {name for name in ('pos_embed', 'cls_token') if getattr(self, name) is not None}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Union[str, List]]:
        """Regexes grouping parameters into stem, blocks and final norm (for layer decay)."""
        return dict(
            stem=r'^cls_token|pos_embed|patch_embed',
            blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of storing them."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def set_selective_recompute(self, enable: bool = True) -> None:
        """Recompute each block's LayerNorm output (as in_proj takes it), the mixer's conv output (the
        mix's x, B, C) and its gated-norm output in backward instead of storing them, keeping the mix's
        work: about 40% less activation memory per Hydra block for one LayerNorm, conv and norm forward
        more (eager runs; `set_grad_checkpointing` recomputes whole blocks instead)."""
        for module in self.modules():
            if isinstance(module, MatrixMixer):
                module.selective_recompute = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """Replaces the head with a new one for `num_classes` (0: none); global_pool=None keeps the pooling."""
        dd = get_device_dtype(self)
        self.num_classes = num_classes
        if global_pool is not None:
            _check_choice('global_pool', global_pool, PoolType)
            if global_pool == 'token' and not self.has_class_token:
                raise ValueError("global_pool='token' needs class_token=True")
            self.global_pool = global_pool
            update_model_args(self, global_pool=global_pool)
        self.head = nn.Linear(self.embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def set_input_size(
            self,
            img_size: Optional[Tuple[int, int]] = None,
            patch_size: Optional[Tuple[int, int]] = None,
    ) -> None:
        """Changes the input resolution (and/or patch size), resampling the position embedding.

        Args:
            img_size: New input resolution, if None the current one is kept.
            patch_size: New patch size, if None the current one is kept.
        """
        prev_grid_size = self.patch_embed.grid_size
        self.patch_embed.set_input_size(img_size=img_size, patch_size=patch_size)
        if self.pos_embed is not None and self.patch_embed.grid_size != prev_grid_size:
            self.pos_embed = nn.Parameter(resample_abs_pos_embed(
                self.pos_embed,
                new_size=self.patch_embed.grid_size,
                old_size=prev_grid_size,
                num_prefix_tokens=self.num_prefix_tokens,
                verbose=True,
            ), requires_grad=self.pos_embed.requires_grad)
        update_model_input_size(self, self.patch_embed.img_size, patch_size=patch_size)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> tokens (B, num_prefix_tokens + L, D), row-major, position embedding added."""
        x = check_image(
            x,
            self.in_chans,
            self.patch_embed.img_size,
            self.patch_embed.patch_size,
            not self.dynamic_img_size,
            self.patch_embed.dynamic_img_pad,
        )
        # a conv embedding's tokens are a transposed view of its output (GemmPatchEmbed's are contiguous); without
        # the copy every block's norm, casts and residual adds would run on (and propagate) that layout.
        x = self.patch_embed(x).contiguous()
        pos_embed = self.pos_embed
        if self.dynamic_img_size:
            B, H, W, C = x.shape
            if pos_embed is not None:
                pos_embed = resample_abs_pos_embed(
                    pos_embed,
                    new_size=(H, W),
                    old_size=self.patch_embed.grid_size,
                    num_prefix_tokens=self.num_prefix_tokens,
                )
            x = x.view(B, -1, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if pos_embed is not None:
            x = x + pos_embed
        return self.pos_drop(x)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """ Forward features that returns intermediates.

        Args:
            x: Input images (B, C, H, W).
            indices: Take last n blocks if int, all if None, select matching indices if sequence.
            return_prefix_tokens: Return (spatial, prefix) tuples when there is a class token.
            norm: Apply the final norm layer to all intermediates.
            stop_early: Stop iterating over blocks when the last desired intermediate is hit.
            output_fmt: 'NCHW' (B, D, H/p, W/p) or 'NLC' (B, L, D) intermediates.
            intermediates_only: Only return the intermediates.
        Returns:
            The list of intermediates, or (final normalised tokens, intermediates).
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        reshape = output_fmt == 'NCHW'
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)

        B, _, height, width = x.shape
        x = self._embed(x)
        if torch.jit.is_scripting() or not stop_early:  # can't slice blocks in torchscript
            blocks = self.blocks
        else:
            blocks = self.blocks[:max_index + 1]
        for i, blk in enumerate(blocks):
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint(blk, x)
            else:
                x = blk(x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)

        if self.num_prefix_tokens:
            prefix_tokens = [y[:, 0:self.num_prefix_tokens] for y in intermediates]
            intermediates = [y[:, self.num_prefix_tokens:] for y in intermediates]
        else:
            prefix_tokens = None
        if reshape:
            H, W = self.patch_embed.dynamic_feat_size((height, width))
            intermediates = [y.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous() for y in intermediates]
        if not torch.jit.is_scripting() and return_prefix_tokens and prefix_tokens is not None:
            intermediates = list(zip(intermediates, prefix_tokens))
        if intermediates_only:
            return intermediates
        x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drops the blocks after the last wanted intermediate (and the norm/head); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> final tokens (B, num_prefix_tokens + L, D)."""
        x = self._embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def pool(self, x: torch.Tensor, pool_type: Optional[str] = None) -> torch.Tensor:
        """Tokens (B, N, D) -> (B, D) per `pool_type` (default: the model's global_pool)."""
        pool_type = self.global_pool if pool_type is None else pool_type
        return global_pool_nlc(x, pool_type=pool_type, num_prefix_tokens=self.num_prefix_tokens)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens -> logits (B, num_classes), or the pooled features (B, D) when pre_logits."""
        x = self.pool(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = self.forward_head(x)
        return x


def _shape_fits(key: str, shape: torch.Size, model_shape: torch.Size) -> bool:
    """Equal shapes, except what timm adapts after the filter: the head (num_classes), the first conv's channels."""
    if key.startswith('head.'):
        return True
    if key == 'patch_embed.proj.weight':
        return shape[0] == model_shape[0] and shape[2:] == model_shape[2:]
    return shape == model_shape


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: HydraVisionTransformer) -> Dict[str, torch.Tensor]:
    """Turns a saved checkpoint into `model`'s state dict.

    Unwraps timm training checkpoints (EMA weights first: 'state_dict_ema', 'model_ema', then
    'state_dict', 'model'), strips DDP / torch.compile / wrapper prefixes ('module.', '_orig_mod.',
    'model.'), resamples the patch embedding to the model's patch size and a learned position
    embedding to its grid, and raises a ValueError naming every tensor whose shape does not fit
    (the classifier and the first conv's input channels are left to timm, which adapts them).
    """
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):
        if isinstance(state_dict.get(key), dict):
            state_dict = state_dict[key]
            break
    prefixes = ('module.', '_orig_mod.', 'model.')
    out_dict = {}
    for k, v in state_dict.items():
        while k.startswith(prefixes):
            k = k.split('.', 1)[1]
        out_dict[k] = v
    patch_weight = out_dict.get('patch_embed.proj.weight')
    kernel = model.patch_embed.proj.weight.shape[-2:]
    if patch_weight is not None and patch_weight.shape[-2:] != kernel:
        out_dict['patch_embed.proj.weight'] = resample_patch_embed(patch_weight, list(kernel), verbose=True)
    pos_embed = out_dict.get('pos_embed')
    if pos_embed is not None and model.pos_embed is not None and pos_embed.shape != model.pos_embed.shape:
        old_size = get_pretrained_grid_size(model, patch_weight, pos_embed.shape[1] - model.num_prefix_tokens)
        out_dict['pos_embed'] = resample_abs_pos_embed(
            pos_embed,
            new_size=model.patch_embed.grid_size,
            old_size=old_size,
            num_prefix_tokens=model.num_prefix_tokens,
            verbose=True,
        )

    model_shapes = {k: v.shape for k, v in model.state_dict().items()}
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_shapes[k])}'
        for k, v in out_dict.items()
        if k in model_shapes and not _shape_fits(k, v.shape, model_shapes[k])
    ]
    if mismatched:
        raise ValueError(
            f'checkpoint does not fit {type(model).__name__}; shape mismatch in {len(mismatched)} tensors: '
            + '; '.join(mismatched))
    return out_dict


def _cfg(url: str = '', **kwargs) -> Dict[str, Any]:
    return {
        'url': url,
        'num_classes': 1000,
        'input_size': (3, 224, 224),
        'pool_size': None,
        'crop_pct': 0.9,
        'interpolation': 'bicubic',
        'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head',
        'license': 'apache-2.0',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'hydra_vit_tiny': _cfg(),
    'hydra_vit_small': _cfg(),
    'hydra_vit_base': _cfg(),
    'hydra_vit_large': _cfg(),
})


def _create_hydra_vit(variant: str, pretrained: bool = False, **kwargs) -> HydraVisionTransformer:
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        HydraVisionTransformer,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **kwargs,
    )


@register_model
def hydra_vit_tiny(pretrained: bool = False, **kwargs) -> HydraVisionTransformer:
    """ Hydra-ViT-Tiny/16: width 192, 20 Hydra blocks (deit_tiny's size within 5%)."""
    model_args = dict(patch_size=16, embed_dim=192, depth=20)
    return _create_hydra_vit('hydra_vit_tiny', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def hydra_vit_small(pretrained: bool = False, **kwargs) -> HydraVisionTransformer:
    """ Hydra-ViT-Small/16: width 384, 22 Hydra blocks (deit_small's size within 5%)."""
    model_args = dict(patch_size=16, embed_dim=384, depth=22)
    return _create_hydra_vit('hydra_vit_small', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def hydra_vit_base(pretrained: bool = False, **kwargs) -> HydraVisionTransformer:
    """ Hydra-ViT-Base/16: width 768, 24 Hydra blocks, the paper's Hydra-ViT-B."""
    model_args = dict(patch_size=16, embed_dim=768, depth=24)
    return _create_hydra_vit('hydra_vit_base', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def hydra_vit_large(pretrained: bool = False, **kwargs) -> HydraVisionTransformer:
    """ Hydra-ViT-Large/16: width 1024, 48 Hydra blocks (~vit_large's size)."""
    model_args = dict(patch_size=16, embed_dim=1024, depth=48)
    return _create_hydra_vit('hydra_vit_large', pretrained=pretrained, **dict(model_args, **kwargs))

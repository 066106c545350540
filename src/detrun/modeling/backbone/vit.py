"""Plain Vision Transformer backbone of ViTDet (Li et al., "Exploring Plain Vision Transformer
Backbones for Object Detection", 2022); its pyramid is in `simple_feature_pyramid`.

The ViT is a single-scale stride-16 network: patch embedding, absolute position embeddings
interpolated to the input grid, blocks with windowed attention (window 14) except a few global
ones, decomposed relative position embeddings (MViTv2), stochastic depth. The simple feature
pyramid turns its last feature map into p2-p6 by deconvolution, identity and pooling.

Parameter names follow Detectron2's ViTDet (``backbone.net.blocks.3.attn.qkv.weight``,
``backbone.simfp_2.4.norm.weight``), which are MAE's / timm's names under ``net.``, so
Detectron2's ViTDet checkpoints load as they are and MAE or timm ViT checkpoints through the
converters registered in `detrun.modeling.backbone.vit_weights`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..shape_spec import ShapeSpec
from .backbone import Backbone
from .norm import get_norm


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Tensor[B, H, W, C] -> (Tensor[B * nW, window_size, window_size, C], (Hp, Wp)).

    H and W are zero-padded at the bottom/right up to multiples of `window_size` (Hp, Wp).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window_size: int, padded_hw: tuple[int, int],
                       hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of `window_partition`: Tensor[B * nW, ws, ws, C] -> Tensor[B, H, W, C] (padding removed)."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // (hp * wp // window_size // window_size)
    x = windows.view(b, hp // window_size, wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w].contiguous() if (hp > h or wp > w) else x


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative position embeddings Tensor[q_size, k_size, C] for every (query, key) offset along one axis.

    `rel_pos` is Tensor[L, C], one row per offset -(size - 1) .. size - 1; it is linearly
    interpolated when L doesn't match 2 * max(q_size, k_size) - 1 (e.g. a global block seeing
    another input size than it was built for).
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(rel_pos.t()[None], size=max_rel_dist, mode="linear")[0].t()
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def add_decomposed_rel_pos(attn: torch.Tensor, q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                           q_size: tuple[int, int], k_size: tuple[int, int]) -> torch.Tensor:
    """Add decomposed relative position terms (MViTv2, Li et al. 2022) to attention logits.

    Args:
        attn: Tensor[B, q_h * q_w, k_h * k_w] attention logits.
        q: Tensor[B, q_h * q_w, C] queries.
        rel_pos_h, rel_pos_w: Tensor[L, C] embeddings of height and width offsets.
        q_size, k_size: (h, w) of the query and key grids.
    """
    (q_h, q_w), (k_h, k_w) = q_size, k_size
    rh = get_rel_pos(q_h, k_h, rel_pos_h)
    rw = get_rel_pos(q_w, k_w, rel_pos_w)
    b, _, dim = q.shape
    r_q = q.reshape(b, q_h, q_w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    attn = attn.view(b, q_h, q_w, k_h, k_w) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return attn.view(b, q_h * q_w, k_h * k_w)


def abs_pos_for_grid(pos_embed: torch.Tensor, has_cls_token: bool, hw: tuple[int, int]) -> torch.Tensor:
    """Absolute position embeddings Tensor[1, N(+1), C] of a square pretraining grid -> Tensor[1, h, w, C].

    The class token's embedding (first, if `has_cls_token`) is dropped; the grid is resized
    bicubically when it isn't h x w.
    """
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]
    size = math.isqrt(pos_embed.shape[1])
    if size * size != pos_embed.shape[1]:
        raise ValueError(f"pos_embed holds {pos_embed.shape[1]} grid positions, not a square grid")
    grid = pos_embed.reshape(1, size, size, -1)
    if (size, size) == tuple(hw):
        return grid
    resized = F.interpolate(grid.permute(0, 3, 1, 2), size=tuple(hw), mode="bicubic", align_corners=False)
    return resized.permute(0, 2, 3, 1)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): in training, zero a sample's residual branch with
    probability `p` and scale the kept ones by 1 / (1 - p); the identity in eval."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (timm's ``Mlp`` names, so MAE/timm weights load)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over a Tensor[B, H, W, C] grid, with optional decomposed relative
    position embeddings sized for an `input_size` = (h, w) grid."""

    def __init__(self, dim: int, *, num_heads: int, qkv_bias: bool = True, use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True, input_size: tuple[int, int] | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"ViT embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("relative position embeddings need the attention's input_size")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))
            if not rel_pos_zero_init:
                nn.init.trunc_normal_(self.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(self.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[B, H, W, C] -> Tensor[B, H, W, C]."""
        b, h, w, _ = x.shape
        # (3, B, heads, H*W, head_dim) -> q, k, v of (B * heads, H*W, head_dim)
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        if self.use_rel_pos:
            scale = q.shape[-1] ** -0.5
            attn = (q * scale) @ k.transpose(-2, -1)
            attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (h, w), (h, w))
            x = attn.softmax(dim=-1) @ v
        else:
            # The fused kernel (flash / memory-efficient attention where available).
            x = F.scaled_dot_product_attention(q, k, v)
        x = x.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm transformer block: windowed (window_size > 0) or global attention, then an MLP,
    each a residual branch with stochastic depth."""

    def __init__(self, dim: int, *, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, norm_eps: float = 1e-6, use_rel_pos: bool = False,
                 rel_pos_zero_init: bool = True, window_size: int = 0, input_size: tuple[int, int] | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                              rel_pos_zero_init=rel_pos_zero_init,
                              input_size=input_size if window_size == 0 else (window_size, window_size))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tensor[B, H, W, C] -> Tensor[B, H, W, C]."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, (h, w))
        else:
            x = self.attn(x)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViT(Backbone):
    """Plain ViT returning its last feature map, ``{out_feature: Tensor[N, embed_dim, H / p, W / p]}``.

    Args:
        img_size: input size the global blocks' relative position embeddings are built for (1024
            with large-scale jitter); other sizes interpolate them.
        patch_size: patch (and output stride) p, 16.
        in_channels: image channels.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: the transformer (ViT-B: 768, 12, 12, 4, True).
        drop_path_rate: stochastic depth, rising linearly from 0 at the first block to this at the last.
        norm_eps: LayerNorm epsilon (1e-6, MAE's and ViTDet's).
        use_abs_pos: absolute position embeddings ``pos_embed`` of the pretraining grid
            (`pretrain_img_size` / p squared, plus a class-token slot if `pretrain_use_cls_token`),
            interpolated bicubically to the input grid at every call.
        use_rel_pos: decomposed relative position embeddings in every block.
        rel_pos_zero_init: start them at zero.
        window_size: attention window (14) of the blocks in `window_block_indexes`; the others attend globally.
        window_block_indexes: windowed blocks (ViTDet-B: all but 2, 5, 8, 11).
        use_act_checkpoint: recompute each block in the backward pass instead of storing its
            activations (less memory, about a third more compute in training).
        pretrain_img_size, pretrain_use_cls_token: the pretraining grid of ``pos_embed`` (MAE: 224, True).
        out_feature: name of the output.

    Differs from Detectron2's ViT: keyword-only arguments, `norm_eps` instead of a `norm_layer`
    partial, no residual conv blocks; blocks without relative positions use PyTorch's fused
    attention (same result, less memory).
    """

    def __init__(self, *, img_size: int = 1024, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0, norm_eps: float = 1e-6, use_abs_pos: bool = True,
                 use_rel_pos: bool = True, rel_pos_zero_init: bool = True, window_size: int = 14,
                 window_block_indexes: Sequence[int] = (0, 1, 3, 4, 6, 7, 9, 10), use_act_checkpoint: bool = False,
                 pretrain_img_size: int = 224, pretrain_use_cls_token: bool = True, out_feature: str = "last_feat"):
        super().__init__()
        bad = [i for i in window_block_indexes if not 0 <= i < depth]
        if bad:
            raise ValueError(f"ViT window_block_indexes {bad} are not blocks of a depth-{depth} ViT")
        self.patch_size = patch_size
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_channels=in_channels, embed_dim=embed_dim)
        if use_abs_pos:
            num_positions = (pretrain_img_size // patch_size) ** 2 + int(pretrain_use_cls_token)
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, embed_dim))
        else:
            self.pos_embed = None
        drop_path = torch.linspace(0, drop_path_rate, depth).tolist()
        grid = (img_size // patch_size, img_size // patch_size)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path[i],
                  norm_eps=norm_eps, use_rel_pos=use_rel_pos, rel_pos_zero_init=rel_pos_zero_init,
                  window_size=window_size if i in window_block_indexes else 0, input_size=grid)
            for i in range(depth)
        )
        self.out_feature = out_feature
        self._shape = ShapeSpec(channels=embed_dim, stride=patch_size)
        # Initialisation of MAE / timm / Detectron2: truncated normal 0.02 for linears and positions.
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_layers(self) -> int:
        return len(self.blocks)

    @property
    def size_divisibility(self) -> int:
        return self.patch_size

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: Tensor[N, C, H, W], H and W multiples of the patch size -> {out_feature: Tensor[N, D, H/p, W/p]}."""
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + abs_pos_for_grid(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        for block in self.blocks:
            if self.use_act_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return {self.out_feature: x.permute(0, 3, 1, 2)}

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {self.out_feature: self._shape}


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> embed_dim channels: Tensor[N, C, H, W] -> Tensor[N, H/p, W/p, D]."""

    def __init__(self, *, patch_size: int = 16, in_channels: int = 3, embed_dim: int = 768):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


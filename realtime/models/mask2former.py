"""Mask2Former's network core in plain PyTorch, shared by M2FP (human parsing) and the COCO
panoptic model: MSDeformAttn pixel decoder and masked-attention transformer decoder on top of a
ResNet whose stages the caller supplies.

Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation" (CVPR 2022);
reference code facebookresearch/Mask2Former (`MSDeformAttnPixelDecoder`,
`MultiScaleMaskedTransformerDecoder`), which ModelScope's M2FP and EasyCV's Mask2Former copy with
the same parameter names.

Network: backbone {"res2".."res5"} -> pixel decoder (res3..res5 through 6 deformable encoder
layers, an FPN level on res2, 256-channel mask features at stride 4) -> transformer decoder (100
queries, 9 layers, 3 feature levels in turn) -> per query class logits (C + 1, the last is "no
object") and mask logits at stride 4.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.common import NetworkParser
from realtime.models.deform_attn import MSDeformAttn, compiled_sampler, gather_levels
from realtime.models.resnet import ConvNorm, fold_frozen_norms

SIZE_DIVISIBILITY = 32


def sine_position_embedding(x: torch.Tensor, num_feats: int = 128, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's normalised sine code of (y, x) for a B x C x H x W map -> B x 2*num_feats x H x W."""
    batch, _, height, width = x.shape
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=x.device)
    y = y / (y[-1:] + eps) * scale
    x_pos = torch.arange(1, width + 1, dtype=torch.float32, device=x.device)
    x_pos = x_pos / (x_pos[-1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / dim_t
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, num_feats)
    pos_x = encode(x_pos)[None, :, :].expand(height, width, num_feats)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).unsqueeze(0).expand(batch, -1, -1, -1)


def flatten_hw(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W -> B x HW x C."""
    return x.flatten(2).transpose(1, 2)


# --- pixel decoder ---------------------------------------------------------------------------

class DeformableEncoderLayer(nn.Module):
    def __init__(self, d_model: int = 256, d_ffn: int = 1024, n_levels: int = 3, n_heads: int = 8) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, 4, compiled=compiled_sampler())
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes))
        return self.norm2(src + self.linear2(F.relu_(self.linear1(src))))


class EncoderStack(nn.Module):
    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DeformableEncoderLayer() for _ in range(num_layers))


class DeformableEncoder(nn.Module):
    """Deformable DETR's encoder over the flattened levels: B x S x C in, B x S x C out."""

    def __init__(self, num_layers: int = 6, n_levels: int = 3, d_model: int = 256) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.zeros(n_levels, d_model))
        self.encoder = EncoderStack(num_layers)

    def forward(self, srcs: list[torch.Tensor]) -> torch.Tensor:
        shapes = [(s.shape[-2], s.shape[-1]) for s in srcs]
        src = torch.cat([flatten_hw(s) for s in srcs], dim=1)
        pos = torch.cat([flatten_hw(sine_position_embedding(s)) + self.level_embed[level].view(1, 1, -1)
                         for level, s in enumerate(srcs)], dim=1)
        reference_points = encoder_reference_points(shapes, src.device).expand(src.shape[0], -1, -1, -1)
        for layer in self.encoder.layers:
            src = layer(src, pos, reference_points, shapes)
        return src


def encoder_reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """Pixel centres of every level, normalised to [0, 1], as (x, y): 1 x S x L x 2."""
    points = []
    for height, width in spatial_shapes:
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=device),
            torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=device),
            indexing="ij",
        )
        points.append(torch.stack((ref_x.reshape(-1) / width, ref_y.reshape(-1) / height), dim=-1))
    return torch.cat(points, dim=0)[None, :, None, :].expand(-1, -1, len(spatial_shapes), -1)


class PixelDecoder(nn.Module):
    """MSDeformAttnPixelDecoder: res3..res5 -> deformable encoder; res2 -> one FPN level.

    forward({"res2".."res5"}) -> (mask features B x 256 x H/4 x W/4, the three encoder levels
    B x 256 x h x w from low to high resolution: strides 32, 16, 8).
    """

    def __init__(self, conv_dim: int = 256, mask_dim: int = 256, num_layers: int = 6) -> None:
        super().__init__()
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim))
            for channels in (2048, 1024, 512)
        )
        self.transformer = DeformableEncoder(num_layers, n_levels=3, d_model=conv_dim)
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        self.adapter_1 = ConvNorm(256, conv_dim, 1, norm=nn.GroupNorm(32, conv_dim))
        self.layer_1 = ConvNorm(conv_dim, conv_dim, 3, padding=1, norm=nn.GroupNorm(32, conv_dim), relu=True)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # Deformable attention runs in float32, as in the reference (autocast off).
        with torch.autocast(features["res2"].device.type, enabled=False):
            srcs = [proj(_at_least_float32(features[name]))
                    for proj, name in zip(self.input_proj, ("res5", "res4", "res3"))]
            memory = self.transformer(srcs)
            levels = [
                part.transpose(1, 2).reshape(src.shape)
                for part, src in zip(memory.split([s.shape[-2] * s.shape[-1] for s in srcs], dim=1), srcs)
            ]
            lateral = self.adapter_1(_at_least_float32(features["res2"]))
            top_down = F.interpolate(levels[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            finest = self.layer_1(lateral + top_down)
            return self.mask_features(finest), levels


# --- transformer decoder ---------------------------------------------------------------------

class MultiheadAttention(nn.Module):
    """nn.MultiheadAttention's parameters (in_proj_weight, in_proj_bias, out_proj), batch first."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                blocked: torch.Tensor | None = None) -> torch.Tensor:
        """query B x Q x C, key/value B x K x C, blocked: B x Q x K (True = may not attend)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        q, k, v = heads(F.linear(query, w_q, b_q)), heads(F.linear(key, w_k, b_k)), heads(F.linear(value, w_v, b_v))
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        if blocked is not None:
            scores = scores.masked_fill(blocked[:, None], float("-inf"))
        out = scores.softmax(-1) @ v
        return self.out_proj(out.transpose(1, 2).flatten(2))


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = x + query_pos
        return self.norm(x + self.self_attn(q, q, x))


class CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.multihead_attn = MultiheadAttention(dim, num_heads)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, blocked: torch.Tensor, pos: torch.Tensor,
                query_pos: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.multihead_attn(x + query_pos, memory + pos, memory, blocked))


class FFNLayer(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.linear2(F.relu_(self.linear1(x))))


class MLP(nn.Module):
    def __init__(self, dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim if i < num_layers - 1 else out_dim) for i in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu_(layer(x))
        return self.layers[-1](x)


class MaskedTransformerDecoder(nn.Module):
    """Mask2Former's MultiScaleMaskedTransformerDecoder (post-norm, no input projection).

    forward(3 levels B x 256 x h_l x w_l, mask features B x 256 x H x W) ->
    {"pred_logits": B x Q x (C + 1), "pred_masks": B x Q x H x W,
     "aux_logits": num_layers x B x Q x (C + 1), the heads before the last one}.
    Layer i cross-attends to level i % 3, only where the previous head's mask, resized to that
    level, has a positive logit. With `masks_from_resized_features` those attention masks come
    from the mask features resized to the level (the same linear maps in the other order), so
    only the last head computes masks at full resolution.
    """

    def __init__(self, num_classes: int, *, hidden_dim: int = 256, num_queries: int = 100, num_heads: int = 8,
                 dim_feedforward: int = 2048, num_layers: int = 9, mask_dim: int = 256, num_levels: int = 3) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(
            FFNLayer(hidden_dim, dim_feedforward) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, mask_dim, 3)
        self.masks_from_resized_features = False

    def forward(self, levels: list[torch.Tensor], mask_features: torch.Tensor) -> dict[str, torch.Tensor]:
        sizes = [tuple(x.shape[-2:]) for x in levels]
        memories = [flatten_hw(x) + self.level_embed.weight[i][None, None] for i, x in enumerate(levels)]
        positions = [flatten_hw(sine_position_embedding(x)) for x in levels]
        batch = mask_features.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(batch, -1, -1)
        output = self.query_feat.weight.unsqueeze(0).expand(batch, -1, -1)

        resized_features = {size: F.interpolate(mask_features, size=size, mode="bilinear", align_corners=False)
                            for size in sizes} if self.masks_from_resized_features else None
        logits, masks, blocked = self._predict(output, mask_features, sizes[0], resized_features)
        all_logits = [logits]
        for i in range(self.num_layers):
            level = i % len(levels)
            blocked = blocked & ~blocked.all(-1, keepdim=True)  # a query blind everywhere sees everything
            output = self.transformer_cross_attention_layers[i](output, memories[level], blocked,
                                                                positions[level], query_pos)
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            next_size = sizes[(i + 1) % len(levels)] if i < self.num_layers - 1 else None
            logits, masks, blocked = self._predict(output, mask_features, next_size, resized_features)
            all_logits.append(logits)
        return {"pred_logits": logits, "pred_masks": masks, "aux_logits": torch.stack(all_logits[:-1])}

    def _predict(self, output: torch.Tensor, mask_features: torch.Tensor, attn_size: tuple[int, int] | None,
                 resized_features: dict[tuple[int, int], torch.Tensor] | None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(class logits, full-size mask logits, attention block mask at attn_size); the masks are
        None for an intermediate head when `resized_features` gives the features at attn_size."""
        decoded = self.decoder_norm(output)
        logits = self.class_embed(decoded)
        embedded = self.mask_embed(decoded)
        if attn_size is None:
            return logits, torch.einsum("bqc,bchw->bqhw", embedded, mask_features), None
        if resized_features is not None:
            resized = torch.einsum("bqc,bchw->bqhw", embedded, resized_features[attn_size])
            return logits, None, resized.sigmoid().flatten(2) < 0.5
        masks = torch.einsum("bqc,bchw->bqhw", embedded, mask_features)
        resized = F.interpolate(masks, size=attn_size, mode="bilinear", align_corners=False)
        return logits, masks, resized.sigmoid().flatten(2) < 0.5


class Mask2FormerHead(nn.Module):
    """Pixel decoder, then the masked-attention decoder: backbone features -> decoder outputs."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.pixel_decoder = PixelDecoder()
        self.predictor = MaskedTransformerDecoder(num_classes)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask_features, levels = self.pixel_decoder(features)
        return self.predictor(levels, mask_features)


class Mask2FormerNet(nn.Module):
    """A backbone and a Mask2FormerHead under the checkpoint's own attribute names
    (`head_attribute`: detectron2's "sem_seg_head", EasyCV's "head").

    `normalize` maps B x 3 x H x W RGB in [0, 255] to the network input (`pixel_norm`, then
    zero-padded bottom/right to a multiple of 32); forward takes that input and returns the
    decoder outputs (see MaskedTransformerDecoder), masks at a quarter of the input.
    """

    head_attribute = "head"

    def __init__(self, backbone: nn.Module, num_classes: int, pixel_norm: nn.Module) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = backbone
        self.add_module(self.head_attribute, Mask2FormerHead(num_classes))
        self.pixel_norm = pixel_norm

    @property
    def predictor(self) -> MaskedTransformerDecoder:
        return getattr(self, self.head_attribute).predictor

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(self.pixel_norm(images), SIZE_DIVISIBILITY)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return getattr(self, self.head_attribute)(self.backbone(x))

    def optimise_for_inference(self) -> Mask2FormerNet:
        """Faster forward, same maths in another rounding: frozen norms folded into the
        convolutions, deformable attention by row gathers (`gather_levels`), attention masks from
        resized mask features. Rounding (~1e-6) can flip masked-attention bits where a mask logit
        is that close to 0. The state_dict no longer matches a checkpoint. Returns self."""
        fold_frozen_norms(self)
        for module in self.modules():
            if isinstance(module, MSDeformAttn):
                module.sampler = gather_levels
        self.predictor.masks_from_resized_features = True
        return self


class Mask2FormerParser(NetworkParser):
    """What the M2FP and the panoptic parsers share (see NetworkParser; under `amp_dtype` the pixel
    decoder stays float32)."""

    def network_batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """H x W x 3 uint8 RGB images of one size -> the normalised, padded B x 3 x H' x W' input."""
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        return self.net.normalize(batch).contiguous(memory_format=self.memory_format)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """B x C x H x W zero-padded at the bottom and right to multiples of `multiple`."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def resize_maps(maps: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """N x H x W -> N x h x w, bilinear with align_corners=False (identity at equal size)."""
    if tuple(maps.shape[-2:]) == tuple(size_hw):
        return maps
    if maps.shape[0] == 0:
        return maps.new_zeros((0, *size_hw))
    return F.interpolate(maps[None], size=size_hw, mode="bilinear", align_corners=False)[0]


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()

"""M2FP (Mask2Former for Parsing, ResNet-101) in plain PyTorch, loading ModelScope's checkpoints.

Network: DeepLab ResNet-101 -> MSDeformAttn pixel decoder (res3..res5 through 6 deformable
encoder layers, FPN level on res2, 256-channel mask features at stride 4) -> masked-attention
transformer decoder (100 queries, 9 layers, 3 feature levels in turn) -> per query class logits
(C + 1, the last is "no object") and mask logits at stride 4.

Single-person (LIP): the frame is centred on a 384 x 512 canvas and the per-class map is
sum_q softmax(class_q)[c] * sigmoid(mask_q). Multi-person (CIHP, 20 parts + Human): the short
side is scaled to `internal_size` and queries become part and human instances, as ModelScope's
`M2FP.instance_parsing_inference` does.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from realtime.models.checkpoint import load_checkpoint, load_into
from realtime.models.common import Parser, Prepared, check_frames
from realtime.models.deform_attn import MSDeformAttn, compiled_sampler, gather_levels
from realtime.models.pixel_norm import PixelNorm
from realtime.models.registry import ModelSpec
from realtime.models.resnet import ConvNorm, DeepLabResNet, fold_frozen_norms
from realtime.types import ParseResult, PersonParse

SIZE_DIVISIBILITY = 32
SINGLE_HUMAN_CANVAS_WH = (384, 512)
MAX_LONG_SIDE = 1333
CANVAS_FILL = 128


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


class M2FPHead(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.pixel_decoder = PixelDecoder()
        self.predictor = MaskedTransformerDecoder(num_classes)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask_features, levels = self.pixel_decoder(features)
        return self.predictor(levels, mask_features)


class M2FPNet(nn.Module):
    """M2FP with detectron2 / ModelScope parameter names.

    `normalize` maps B x 3 x H x W RGB in [0, 255] to the network input (`pixel_norm`, then
    zero-padded bottom/right to a multiple of 32); forward takes that input and returns
    M2FPNet's decoder outputs (see MaskedTransformerDecoder), masks at a quarter of the input.
    """

    def __init__(self, num_classes: int, pixel_norm: PixelNorm) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = DeepLabResNet()
        self.sem_seg_head = M2FPHead(num_classes)
        self.pixel_norm = pixel_norm

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pixel_norm(images)
        height, width = x.shape[-2:]
        pad_h = -height % SIZE_DIVISIBILITY
        pad_w = -width % SIZE_DIVISIBILITY
        return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.sem_seg_head(self.backbone(x))

    def optimise_for_inference(self) -> M2FPNet:
        """Faster forward, same maths in another rounding: frozen norms folded into the
        convolutions, deformable attention by row gathers (`gather_levels`), attention masks from
        resized mask features. Rounding (~1e-6) can flip masked-attention bits where a mask logit
        is that close to 0. The state_dict no longer matches a checkpoint. Returns self."""
        fold_frozen_norms(self)
        for module in self.modules():
            if isinstance(module, MSDeformAttn):
                module.sampler = gather_levels
        self.sem_seg_head.predictor.masks_from_resized_features = True
        return self


def m2fp_state_dict(checkpoint: Mapping[str, torch.Tensor | object]) -> dict[str, torch.Tensor]:
    """detectron2's {'model': ...} or ModelScope's pytorch_model.pt -> M2FPNet's names.

    BatchNorm bookkeeping (`num_batches_tracked`) and a DataParallel `module.` prefix are dropped.
    """
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError("checkpoint holds no state dict (expected a mapping, or one under 'model')")
    return {
        key.removeprefix("module."): value for key, value in state.items()
        if isinstance(value, torch.Tensor) and not key.endswith("num_batches_tracked")
    }


def m2fp_net(spec: ModelSpec) -> M2FPNet:
    """An untrained M2FPNet for `spec`: its classes (plus "Human" for multi-person models) and
    its input normalisation."""
    return M2FPNet(spec.num_classes + (1 if spec.multi_person else 0), PixelNorm.from_spec(spec))


def load_m2fp_net(path: str | Path, spec: ModelSpec) -> M2FPNet:
    """Read a checkpoint file (weights_only) into `spec`'s M2FPNet in eval mode; ValueError for
    the other setting's checkpoint, WeightsError for one that does not fit (load_into)."""
    state = m2fp_state_dict(load_checkpoint(path))
    net = m2fp_net(spec)
    found = state.get("sem_seg_head.predictor.class_embed.weight")
    if found is not None and found.shape[0] != net.num_classes + 1:
        raise ValueError(f"{path}: checkpoint predicts {found.shape[0] - 1} classes, this model has {net.num_classes}; "
                         "is it the single-person (LIP) or the multi-person (CIHP) M2FP?")
    load_into(net, state, source=str(path))
    return net.eval()


# --- pre-processing ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Geometry:
    """Where a frame went: frame size, the unpadded network image size, and for single-person
    input the frame's box (x0, y0, x1, y1) on the canvas."""

    frame_hw: tuple[int, int]
    image_hw: tuple[int, int]
    crop_box: tuple[int, int, int, int] | None = None


def center_on_canvas(rgb: np.ndarray, canvas_wh: tuple[int, int] = SINGLE_HUMAN_CANVAS_WH
                     ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """ModelScope's center_to_target_size_test: shrink to fit (keeping the aspect ratio, sizes
    truncated), then pad with 128 to the canvas, centred. Returns (canvas, crop box x0 y0 x1 y1).

    Differences: cv2's INTER_AREA stands in for PIL's antialiased bilinear when shrinking, and a
    square frame larger than the canvas is fitted (the reference fails on it). Like the
    reference, nothing is padded when the left and top padding are both zero.
    """
    src_h, src_w = rgb.shape[:2]
    trg_w, trg_h = canvas_wh
    new_h, new_w = src_h, src_w
    if src_h > trg_h and src_w > trg_w:
        if src_h >= src_w:
            new_h, new_w = trg_h, int(trg_h * src_w / src_h)
            if new_w > trg_w:
                new_w, new_h = trg_w, int(trg_w * src_h / src_w)
        else:
            new_w, new_h = trg_w, int(trg_w * src_h / src_w)
            if new_h > trg_h:
                new_h, new_w = trg_h, int(trg_h * src_w / src_h)
    elif src_h > trg_h:
        new_h, new_w = trg_h, int(trg_h * src_w / src_h)
    elif src_w > trg_w:
        new_w, new_h = trg_w, int(trg_w * src_h / src_w)
    image = rgb if (new_h, new_w) == (src_h, src_w) else cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    left, top = (trg_w - new_w) // 2, (trg_h - new_h) // 2
    if left or top:
        image = cv2.copyMakeBorder(image, top, trg_h - new_h - top, left, trg_w - new_w - left,
                                   cv2.BORDER_CONSTANT, value=(CANVAS_FILL,) * 3)
    return image, (left, top, left + new_w, top + new_h)


def short_side_size(height: int, width: int, short_side: int, max_long_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """ModelScope's _get_preprocess_shape: (h, w) with the short side scaled to `short_side`,
    the long side capped at `max_long_side`, both rounded half up."""
    scale = short_side / min(height, width)
    new_h, new_w = (short_side, scale * width) if height < width else (scale * height, short_side)
    if max(new_h, new_w) > max_long_side:
        cap = max_long_side / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


# --- post-processing ---------------------------------------------------------------------------

def semantic_inference(pred_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Q x (C + 1) class logits, Q x H x W mask logits -> C x H x W: sum over queries of
    p(class) * sigmoid(mask), the no-object class dropped (not normalised)."""
    probs = pred_logits.softmax(-1)[:, :-1]
    return torch.einsum("qc,qhw->chw", probs, mask_logits.sigmoid())


@dataclass
class InstanceParsing:
    """Multi-person output. Instances refer to queries of `mask_logits` (Q x H x W).

    semantic_probs: P x H x W pasted part probabilities (P = number of parsing classes).
    part_* / human_*: (N,) label, score and query index of each kept instance.
    """

    semantic_probs: torch.Tensor
    part_labels: torch.Tensor
    part_scores: torch.Tensor
    part_queries: torch.Tensor
    human_scores: torch.Tensor
    human_queries: torch.Tensor
    mask_logits: torch.Tensor


def instance_parsing(pred_logits: torch.Tensor, mask_logits: torch.Tensor, *, num_parsing: int,
                     paste_threshold: float, top_k: int = 100) -> InstanceParsing:
    """ModelScope's M2FP.instance_parsing_inference for one image.

    pred_logits: Q x (P + 2) (P parts incl. background, Human = P, no-object); mask_logits:
    Q x H x W at the image size. The top_k (query, class) pairs by class probability become
    instances scored by class probability x mean sigmoid over the mask's positive pixels.
    Background and part instances scoring >= paste_threshold are pasted into per-class maps
    (lowest score first, averaged where several land); part instances need score >= 0.1 and
    human instances score > 0.1.
    """
    num_classes = pred_logits.shape[1] - 1
    scores = pred_logits.softmax(-1)[:, :-1]
    top_scores, top_index = scores.flatten().topk(top_k, sorted=False)
    labels = top_index % num_classes
    queries = top_index // num_classes

    positive = (mask_logits > 0).flatten(1).float()
    mask_quality = (mask_logits.sigmoid().flatten(1) * positive).sum(1) / (positive.sum(1) + 1e-6)
    instance_scores = top_scores * mask_quality[queries]

    height, width = mask_logits.shape[-2:]
    semantic = mask_logits.new_zeros((num_parsing, height, width))
    for label in range(num_parsing):
        chosen = torch.where(labels == label)[0]
        chosen = chosen[instance_scores[chosen].argsort()]
        total = mask_logits.new_zeros((height, width))
        times = mask_logits.new_zeros((height, width))
        for i in chosen.tolist():
            if instance_scores[i] < paste_threshold:
                continue
            probs = mask_logits[queries[i]].sigmoid() * instance_scores[i]
            pasted = probs > 0.5
            total = torch.where(pasted, probs + total, total)
            times += pasted
        semantic[label] = total / torch.where(times == 0, torch.ones_like(times), times)

    is_part = (labels != num_parsing) & (labels != 0) & (instance_scores >= 0.1)
    is_human = (labels == num_parsing) & (instance_scores > 0.1)
    return InstanceParsing(
        semantic_probs=semantic,
        part_labels=labels[is_part], part_scores=instance_scores[is_part], part_queries=queries[is_part],
        human_scores=instance_scores[is_human], human_queries=queries[is_human],
        mask_logits=mask_logits,
    )


# --- parser ------------------------------------------------------------------------------------

class M2FPParser(Parser):
    """numpy API over M2FPNet: RGB frames in, ParseResults (with `people` for CIHP) out.

    `internal_size`: single-person models always use the 384 x 512 canvas (the frame's long
    side is at most 512 there); multi-person models scale the frame's short side to it (long
    side capped at 1333), as ModelScope's pipeline does. `amp_dtype` (float16 / bfloat16 on
    CUDA, bfloat16 on CPUs with AMX) runs the backbone and decoder under autocast; the pixel
    decoder stays float32.

    `fast=False` follows the reference step by step. `fast=True` (the default) runs
    `M2FPNet.optimise_for_inference` and channels_last, and single-person models resize the
    query masks only over the frame's box on the canvas (the reference resizes all of the
    canvas, then crops). Its labels match the reference path except where two classes are
    within rounding of a tie (`bench-model` measures both).
    """

    internal_size_range = (32, 2048)

    def __init__(self, net: M2FPNet, spec: ModelSpec, device: torch.device, *, internal_size: int | None = None,
                 amp_dtype: torch.dtype | None = None, paste_threshold: float = 0.3, fast: bool = True,
                 max_people: int | None = None) -> None:
        if fast:
            net.optimise_for_inference()
        self.fast = fast
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.net = net.to(device).to(memory_format=self.memory_format)
        self.spec = spec
        self.device = device
        self.internal_size = internal_size or spec.internal_size
        self.amp_dtype = amp_dtype
        self.paste_threshold = paste_threshold
        self.max_people = max_people  # CIHP: keep the strongest this many people (None: all)


    def preprocess(self, rgbs: list[np.ndarray]) -> Prepared:
        """Frames of one size -> B x 3 x H x W normalised network input with its Geometry."""
        check_frames(rgbs)
        height, width = rgbs[0].shape[:2]
        if self.spec.multi_person:
            new_h, new_w = short_side_size(height, width, self.internal_size)
            interpolation = cv2.INTER_AREA if new_h < height else cv2.INTER_LINEAR
            images = [rgb if (new_h, new_w) == (height, width) else cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
                      for rgb in rgbs]
            crop_box = None
        else:
            placed = [center_on_canvas(rgb) for rgb in rgbs]
            images, crop_box = [canvas for canvas, _ in placed], placed[0][1]
        batch = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float()
        geometry = Geometry((height, width), tuple(images[0].shape[:2]), crop_box)
        return Prepared(self.net.normalize(batch).contiguous(memory_format=self.memory_format), geometry)

    def infer(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), torch.autocast(batch.device.type, dtype=self.amp_dtype or torch.float32,
                                                    enabled=self.amp_dtype is not None):
            outputs = self.net(batch)
        return {key: value.float() for key, value in outputs.items()}

    def postprocess(self, outputs: dict[str, torch.Tensor], prepared: Prepared) -> list[ParseResult]:
        padded_hw, geometry = tuple(prepared.batch.shape[-2:]), prepared.geometry
        with torch.inference_mode():
            if self.spec.multi_person:
                return [self._people(logits, masks, padded_hw, geometry)
                        for logits, masks in zip(outputs["pred_logits"], outputs["pred_masks"])]
            return [self._single(logits, masks, padded_hw, geometry)
                    for logits, masks in zip(outputs["pred_logits"], outputs["pred_masks"])]


    def single_person_semantics(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor,
                                padded_hw: tuple[int, int], geometry: Geometry) -> torch.Tensor:
        """One image's C x H x W class map at frame size (ModelScope's sem_seg). The Q query masks
        are needed at input size: the sigmoid does not commute with resizing."""
        x0, y0, x1, y1 = geometry.crop_box
        if self.fast:
            semantic = semantic_inference(pred_logits, resized_window(pred_masks, padded_hw, geometry.crop_box))
        else:
            image_h, image_w = geometry.image_hw
            semantic = semantic_inference(pred_logits, _resize(pred_masks, padded_hw))[:, :image_h, :image_w][:, y0:y1, x0:x1]
        return _resize(semantic, geometry.frame_hw)

    def _single(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded_hw: tuple[int, int],
                geometry: Geometry) -> ParseResult:
        semantic = self.single_person_semantics(pred_logits, pred_masks, padded_hw, geometry)
        labels = semantic.argmax(0).to(torch.uint8).cpu().numpy()
        return ParseResult(labels=labels, person_mask=labels > 0, label_names=self.label_names,
                           palette=self.palette, part_probs=None)

    def _people(self, pred_logits: torch.Tensor, pred_masks: torch.Tensor, padded_hw: tuple[int, int],
                geometry: Geometry) -> ParseResult:
        image_h, image_w = geometry.image_hw
        mask_logits = _resize(pred_masks, padded_hw)[:, :image_h, :image_w]
        parsing = instance_parsing(pred_logits, mask_logits, num_parsing=len(self.label_names),
                                   paste_threshold=self.paste_threshold)
        labels = _resize(parsing.semantic_probs, geometry.frame_hw).argmax(0).to(torch.uint8).cpu().numpy()
        order = parsing.human_scores.argsort(descending=True)[:self.max_people]
        human_masks = _resize(mask_logits[parsing.human_queries[order]], geometry.frame_hw) > 0
        people = [
            PersonParse(id=i, mask=mask.cpu().numpy(), keypoints=None, score=float(score))
            for i, (mask, score) in enumerate(zip(human_masks, parsing.human_scores[order]))
        ]
        return ParseResult(labels=labels, person_mask=labels > 0, label_names=self.label_names,
                           palette=self.palette, part_probs=None, people=people)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def resized_window(maps: torch.Tensor, size_hw: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor:
    """`_resize(maps, size_hw)[:, y0:y1, x0:x1]` for box (x0, y0, x1, y1), resizing only the
    source window it reads. When size_hw is a whole multiple of the maps' size, the source
    pixels and weights are those of the full resize, so the values are the same."""
    x0, y0, x1, y1 = box
    (height, width), (out_h, out_w) = maps.shape[-2:], size_hw
    if out_h % height or out_w % width:
        return _resize(maps, size_hw)[:, y0:y1, x0:x1]
    step_y, step_x = out_h // height, out_w // width
    # one source pixel of margin on each side keeps the edge clamping outside the box
    top, bottom = max(y0 // step_y - 1, 0), min(-(-y1 // step_y) + 1, height)
    left, right = max(x0 // step_x - 1, 0), min(-(-x1 // step_x) + 1, width)
    window = _resize(maps[:, top:bottom, left:right], ((bottom - top) * step_y, (right - left) * step_x))
    return window[:, y0 - top * step_y:y1 - top * step_y, x0 - left * step_x:x1 - left * step_x]


def _resize(maps: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """N x H x W -> N x h x w, bilinear with align_corners=False (identity at equal size)."""
    if tuple(maps.shape[-2:]) == tuple(size_hw):
        return maps
    if maps.shape[0] == 0:
        return maps.new_zeros((0, *size_hw))
    return F.interpolate(maps[None], size=size_hw, mode="bilinear", align_corners=False)[0]

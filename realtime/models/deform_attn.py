"""Multi-scale deformable attention (Deformable DETR), as Mask2Former's pixel decoder uses it.

Two plain-PyTorch samplers compute the same sums (bilinear, zero padding, align_corners=False):
`sample_levels` is the reference's `grid_sample` per level; `gather_levels` turns the samples
into weighted row look-ups (`embedding_bag`), about 2-3x faster on CPU. On CUDA, mmcv-full's
compiled kernel is used instead when it can be imported.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Sampler = Callable[..., torch.Tensor]


def sample_levels(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                  sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """Attention-weighted bilinear samples of `value`.

    value: B x S x heads x Dh, the levels' H_l x W_l maps flattened one after another.
    sampling_locations: B x Q x heads x L x P x 2, (x, y) in [0, 1] of each level.
    attention_weights: B x Q x heads x L x P.
    Returns B x Q x (heads * Dh).
    """
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1
    per_level = value.split([h * w for h, w in spatial_shapes], dim=1)
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        level_value = per_level[level].flatten(2).transpose(1, 2).reshape(batch * heads, head_dim, h, w)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # B*heads x Q x P x 2
        sampled.append(F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # B*heads x Dh x Q x P
    weights = attention_weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(batch, heads * head_dim, queries).transpose(1, 2)


def gather_levels(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
                  sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """`sample_levels` as one weighted sum of value rows per (query, head) and level.

    Each sample's four corners become rows of `value` viewed as (B * S * heads) x Dh, weighted by
    attention x bilinear weight (0 outside the map); `embedding_bag` sums them. Coordinates are
    unnormalised as grid_sample does, so results differ from it only by summation order (~1e-7).
    """
    batch, total, heads, head_dim = value.shape
    _, queries, _, _, points, _ = sampling_locations.shape
    device = value.device
    table = value.reshape(-1, head_dim)
    grid_x, grid_y = (2 * sampling_locations - 1).permute(5, 3, 0, 1, 2, 4).contiguous()  # 2 x L x B x Q x heads x P
    level_weights = attention_weights.permute(3, 0, 1, 2, 4)
    row_offsets = torch.arange(heads, dtype=torch.int32, device=device).view(heads, 1, 1)
    if batch > 1:
        row_offsets = row_offsets + (torch.arange(batch, dtype=torch.int32, device=device) * total * heads).view(-1, 1, 1, 1, 1)
    out = None
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        x = ((grid_x[level] + 1) * width - 1) / 2
        y = ((grid_y[level] + 1) * height - 1) / 2
        x0, y0 = x.floor(), y.floor()
        wx = torch.stack((torch.where((x0 >= 0) & (x0 <= width - 1), (x0 + 1) - x, 0),
                          torch.where((x0 >= -1) & (x0 <= width - 2), x - x0, 0)), dim=-1)
        wy_top = torch.where((y0 >= 0) & (y0 <= height - 1), (y0 + 1) - y, 0) * level_weights[level]
        wy_bottom = torch.where((y0 >= -1) & (y0 <= height - 2), y - y0, 0) * level_weights[level]
        weights = torch.cat((wy_top[..., None] * wx, wy_bottom[..., None] * wx), dim=-1)  # nw ne sw se
        corners = torch.tensor((0, 1, width, width + 1), dtype=torch.int32, device=device)
        cells = (y0 * width + x0 + start).int()[..., None] + corners
        # corners outside the map have weight 0; clamping only keeps their rows valid
        rows = cells.clamp_(0, total - 1).mul_(heads) + row_offsets
        sampled = F.embedding_bag(rows.view(-1, points * 4), table, per_sample_weights=weights.view(-1, points * 4),
                                  mode="sum")
        out = sampled if out is None else out + sampled
        start += height * width
    return out.view(batch, queries, heads * head_dim)


def compiled_sampler() -> Sampler | None:
    """mmcv-full's CUDA kernel as a function with `sample_levels`' signature, or None without it."""
    try:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    except ImportError:
        return None

    def sample(value: torch.Tensor, spatial_shapes: list[tuple[int, int]],
               sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
        shapes = torch.tensor(spatial_shapes, dtype=torch.long, device=value.device)
        starts = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
        return MultiScaleDeformableAttnFunction.apply(value, shapes, starts, sampling_locations,
                                                      attention_weights, 128)

    return sample


class MSDeformAttn(nn.Module):
    """Each query attends to `n_points` learned offsets around its reference point on every level.

    Parameter names are Deformable DETR's (sampling_offsets, attention_weights, value_proj,
    output_proj). `sampler` is `sample_levels` (the reference) or `gather_levels`; `compiled` is
    used instead for CUDA tensors when given (see `compiled_sampler`).
    """

    def __init__(self, d_model: int = 256, n_levels: int = 3, n_heads: int = 8, n_points: int = 4, *,
                 compiled: Sampler | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_levels, self.n_heads, self.n_points = n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.compiled = compiled
        self.sampler: Sampler = sample_levels

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, value: torch.Tensor,
                spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """query: B x Q x C; reference_points: B x Q x L x 2, (x, y) in [0, 1];
        value: B x S x C over the L flattened levels of `spatial_shapes` [(H, W), ...].
        Returns B x Q x C."""
        batch, queries, _ = query.shape
        value = self.value_proj(value).view(batch, value.shape[1], self.n_heads, -1)
        offsets = self.sampling_offsets(query).view(batch, queries, self.n_heads, self.n_levels, self.n_points, 2)
        weights = self.attention_weights(query).view(batch, queries, self.n_heads, self.n_levels * self.n_points)
        weights = weights.softmax(-1).view(batch, queries, self.n_heads, self.n_levels, self.n_points)
        normalizer = torch.tensor([(w, h) for h, w in spatial_shapes], dtype=query.dtype, device=query.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        sample = self.compiled if self.compiled is not None and value.is_cuda else self.sampler
        return self.output_proj(sample(value, spatial_shapes, locations, weights))

"""The ch04_multi_head checks pass on right answers and fail, with the right hint, on planted mistakes."""

import math

import pytest
import torch
from torch import nn

from course_lib.attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads
from course_lib.checks.ch04_multi_head import (
    check_copy_into_torch,
    check_merge_heads,
    check_merge_heads_other_sizes,
    check_multi_head_attention,
    check_multi_head_attention_other_sizes,
    check_split_heads,
    check_split_heads_other_sizes,
    check_torch_masks,
)

from check_cases import fails_with


# ------------------------------------------------------------------ (a) split / merge


def test_split_merge_pass():
    for check in (check_split_heads, check_split_heads_other_sizes):
        check(split_heads)
    for check in (check_merge_heads, check_merge_heads_other_sizes):
        check(merge_heads)


def split_without_transpose(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, n_heads, T, C // n_heads)


def split_strided(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, C // n_heads, n_heads).permute(0, 3, 1, 2)


def split_no_transpose_at_all(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads)


def split_detached(x, n_heads):
    return split_heads(x.detach(), n_heads)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (split_without_transpose, ["reshaped straight to (B, H, T, D)"]),
        (split_strided, ["contiguous slice"]),
        (split_no_transpose_at_all, ["expected shape (3, 3, 5, 4), got (3, 5, 3, 4)", "another order"]),
        (split_detached, ["no gradient"]),
    ],
)
def test_split_heads_fails(wrong, words):
    fails_with(check_split_heads, wrong, *words)


def merge_without_transpose(x):
    B, H, T, D = x.shape
    return x.reshape(B, T, H * D)


def merge_d_major(x):
    B, H, T, D = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, H * D)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (merge_without_transpose, ["transpose(1, 2)"]),
        (merge_d_major, ["ordered (D, H)"]),
        (lambda x: x.transpose(1, 2), ["expected shape (3, 5, 12)"]),
    ],
)
def test_merge_heads_fails(wrong, words):
    fails_with(check_merge_heads, wrong, *words)


# ------------------------------------------------------------------ (b) the module


class GoodMHA(nn.Module):
    def __init__(self, d_model, n_heads, scale="head", out_proj=True, merge="right", invert=False, average=False):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        self.scale, self.use_out, self.merge, self.invert, self.average = scale, out_proj, merge, invert, average

    def forward(self, query, key, value, mask=None):
        q, k, v = (split_heads(p(x), self.n_heads) for p, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        d = {"head": q.shape[-1], "model": query.shape[-1], "none": 1}[self.scale]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if mask is not None:
            keep = ~mask if self.invert else mask
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = scores.softmax(-1)
        heads = weights @ v
        B, H, T, D = heads.shape
        merged = merge_heads(heads) if self.merge == "right" else heads.reshape(B, T, H * D)
        out = self.out_proj(merged) if self.use_out else merged
        return out, (weights.mean(1) if self.average else weights)


def variant(**kwargs):
    return lambda d_model, n_heads: GoodMHA(d_model, n_heads, **kwargs)


def test_mha_passes():
    check_multi_head_attention(GoodMHA)
    check_multi_head_attention_other_sizes(GoodMHA)
    check_multi_head_attention(MultiHeadAttention)  # the course's own module


class NoProjections(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.W = nn.Linear(d_model, 3 * d_model)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (variant(scale="model"), ["sqrt(d_model // n_heads)"]),
        (variant(scale="none"), ["not scaled"]),
        (variant(out_proj=False), ["output projection is missing"]),
        (variant(merge="no_transpose"), ["merged in the wrong order"]),
        (variant(invert=True), ["polarity is inverted"]),
        (variant(average=True), ["not their average"]),
        (NoProjections, ["q_proj"]),
    ],
)
def test_mha_fails(wrong, words):
    fails_with(check_multi_head_attention, wrong, *words)


# ------------------------------------------------------------------ (c) torch parity


def to_torch_mha(mha, batch_first=True, order=("q", "k", "v"), transpose=False, copy_bias=True):
    ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=batch_first)
    proj = {"q": mha.q_proj, "k": mha.k_proj, "v": mha.v_proj}
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([proj[n].weight.T if transpose else proj[n].weight for n in order]))
        if copy_bias:
            ref.in_proj_bias.copy_(torch.cat([proj[n].bias for n in order]))
            ref.out_proj.bias.copy_(mha.out_proj.bias)
        else:
            ref.in_proj_bias.zero_()
            ref.out_proj.bias.zero_()
        ref.out_proj.weight.copy_(mha.out_proj.weight.T if transpose else mha.out_proj.weight)
    return ref


def test_copy_into_torch_passes():
    check_copy_into_torch(to_torch_mha)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda m: to_torch_mha(m, batch_first=False), ["batch_first=True"]),
        (lambda m: to_torch_mha(m, order=("k", "q", "v")), ["wrong order"]),
        (lambda m: to_torch_mha(m, transpose=True), ["transposed"]),
        (lambda m: to_torch_mha(m, copy_bias=False), ["biases were not copied"]),
        (lambda m: nn.MultiheadAttention(m.d_model, 1, batch_first=True), ["num_heads=1"]),
        (lambda m: m, ["torch.nn.MultiheadAttention"]),
    ],
)
def test_copy_into_torch_fails(wrong, words):
    fails_with(check_copy_into_torch, wrong, *words)


def test_torch_masks_passes():
    check_torch_masks(lambda pad, attn: (~pad[:, 0, 0, :], ~attn))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda pad, attn: (pad[:, 0, 0, :], attn), ["True = IGNORE"]),
        (lambda pad, attn: (~pad, ~attn), ["(B, S)"]),
        (lambda pad, attn: ((~pad[:, 0, 0, :]).float(), (~attn).float()), ["torch.bool"]),
        (lambda pad, attn: (~pad[:, 0, 0, :], attn.T), ["attn_mask: expected shape (5, 7)"]),
    ],
)
def test_torch_masks_fails(wrong, words):
    fails_with(check_torch_masks, wrong, *words)

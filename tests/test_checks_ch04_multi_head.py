"""The ch04_multi_head checks pass on right answers and fail, with the right hint, on planted mistakes."""

import math

import torch

from torch import nn

from course_lib.attention import MultiHeadAttention, merge_heads, split_heads
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

from check_cases import planted_mistake_tests

# ------------------------------------------------------------------ (a) split / merge


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


def split_with_split(x, n_heads):  # split(n_heads) makes pieces OF SIZE n_heads
    return torch.stack(x.split(n_heads, dim=-1), dim=1)


def split_stack_dim2(x, n_heads):
    return torch.stack(x.chunk(n_heads, dim=-1), dim=2)


def split_chunk_time(x, n_heads):  # chunks the time axis into heads
    B, T, C = x.shape
    return x.reshape(B, T, n_heads, C // n_heads).permute(0, 2, 1, 3)[:, :, torch.arange(T).flip(0)]


def merge_without_transpose(x):
    B, H, T, D = x.shape
    return x.reshape(B, T, H * D)


def merge_d_major(x):
    B, H, T, D = x.shape
    return x.permute(0, 2, 3, 1).reshape(B, T, H * D)


def merge_view_after_transpose(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).view(B, T, H * D)


def merge_sum(x):
    return x.sum(dim=1)


def merge_mean(x):
    return x.mean(1)


def merge_cat_time(x):
    return torch.cat(x.unbind(1), dim=1)


def merge_detached(x):
    return merge_heads(x.detach())


SPLIT_MERGE_CASES = [
    (check_split_heads, split_heads, [
        (split_without_transpose, "reshaped straight to (B, H, T, D)"),
        (split_strided, "contiguous slice"),
        (split_no_transpose_at_all, "move H in front of T"),
        (split_detached, "no gradient"),
        (split_with_split, "x.split(size) takes the size of each piece"),
        (split_stack_dim2, "move H in front of T"),
        (split_chunk_time, "in another order along T"),
    ]),
    (check_split_heads_other_sizes, split_heads, [
        (split_strided, "contiguous slice"),
        (split_no_transpose_at_all, "move H in front of T"),
        (split_detached, "no gradient"),
        (split_with_split, "x.split(size) takes the size of each piece"),
        (split_stack_dim2, "move H in front of T"),
        (lambda x, n_heads: x.view(x.shape[0], x.shape[1], n_heads, -1), "move H in front of T"),
    ]),
    (check_merge_heads, merge_heads, [
        (merge_without_transpose, "transpose(1, 2)"),
        (merge_d_major, "ordered (D, H)"),
        (lambda x: x.transpose(1, 2), "expected shape (3, 5, 12)"),
        (merge_view_after_transpose, ".contiguous().view"),
        (merge_sum, "a sum or mean over H"),
        (merge_cat_time, "concatenated the heads along time"),
        (merge_detached, "no gradient flows back"),
    ]),
    (check_merge_heads_other_sizes, merge_heads, [
        (merge_d_major, "ordered (D, H)"),
        (lambda x: x.transpose(1, 2), "expected shape (2, 1, 20)"),
        (merge_sum, "a sum or mean over H"),
        (merge_mean, "a sum or mean over H"),
        (merge_cat_time, "concatenated the heads along time"),
        (merge_detached, "no gradient flows back"),
    ]),
]


# ------------------------------------------------------------------ (b) the module


class GoodMHA(nn.Module):
    def __init__(self, d_model, n_heads, scale="head", out_proj=True, merge="right", invert=False, average=False,
                 fill=float("-inf"), use_mask=True, kv_from_query=False, split="right", dim=-1):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        self.scale, self.use_out, self.merge, self.invert, self.average = scale, out_proj, merge, invert, average
        self.fill, self.use_mask, self.kv_from_query, self.split, self.dim = fill, use_mask, kv_from_query, split, dim

    def forward(self, query, key, value, mask=None):
        if self.kv_from_query:
            key = value = query
        if self.split == "right":
            q, k, v = (split_heads(p(x), self.n_heads) for p, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        else:
            q, k, v = (p(x).reshape(x.shape[0], self.n_heads, x.shape[1], -1) for p, x in ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        d = {"head": q.shape[-1], "model": query.shape[-1], "none": 1, "d_k_not_sqrt": q.shape[-1] ** 2, "T": query.shape[1]}[self.scale]
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if mask is not None and self.use_mask:
            keep = ~mask if self.invert else mask
            scores = scores.masked_fill(~keep, self.fill)
        weights = scores.softmax(self.dim)
        heads = weights @ v
        B, H, T, D = heads.shape
        merged = merge_heads(heads) if self.merge == "right" else heads.reshape(B, T, H * D)
        out = self.out_proj(merged) if self.use_out else merged
        return out, (weights.mean(1) if self.average else weights)


class SwappedMHA(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.inner = GoodMHA(d_model, n_heads)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = self.inner.q_proj, self.inner.k_proj, self.inner.v_proj, self.inner.out_proj

    def forward(self, query, key, value, mask=None):
        out, weights = self.inner(query, key, value, mask)
        return weights, out


class BatchAveragedMHA(SwappedMHA):
    def forward(self, query, key, value, mask=None):
        out, weights = self.inner(query, key, value, mask)
        return out, weights.mean(0)  # meant to average the heads: averages the batch (B == H here)


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


MHA_CASES = [
    (check_multi_head_attention, GoodMHA, [
        (variant(scale="model"), "sqrt(d_model // n_heads)"),
        (variant(scale="none"), "not scaled"),
        (variant(scale="d_k_not_sqrt"), "divided the scores by d_k"),
        (variant(scale="T"), "a wrong scale"),
        (variant(out_proj=False), "output projection is missing"),
        (variant(merge="no_transpose"), "merged in the wrong order"),
        (variant(invert=True), "polarity is inverted"),
        (variant(invert=True, fill=-1e9), "polarity is inverted"),
        (variant(use_mask=False), "the mask is not applied"),
        (variant(fill=0.0), "masked scores were set to 0"),
        (variant(kv_from_query=True), "not from the query"),
        (variant(split="no_transpose"), "split in the wrong order"),
        (variant(dim=-2), "softmax over the wrong axis"),
        (variant(average=True), "not their average"),
        (NoProjections, "q_proj"),
        (lambda d_model, n_heads: SwappedMHA(d_model, n_heads), "wrong order"),
        (lambda d_model, n_heads: BatchAveragedMHA(d_model, n_heads), "expected shape (3, 3, 5, 5)"),
    ]),
    (check_multi_head_attention_other_sizes, GoodMHA, [
        (variant(scale="model"), "sqrt(d_model // n_heads)"),
        (variant(scale="none"), "not scaled"),
        (variant(out_proj=False), "output projection is missing"),
        (variant(merge="no_transpose"), "merged in the wrong order"),
        (variant(invert=True, fill=-1e9), "polarity is inverted"),
        (variant(use_mask=False), "the mask is not applied"),
        (variant(split="no_transpose"), "split in the wrong order"),
        (variant(average=True), "not their average"),
    ]),
]


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


TORCH_CASES = [
    (check_copy_into_torch, to_torch_mha, [
        (lambda m: to_torch_mha(m, batch_first=False), "batch_first=True"),
        (lambda m: to_torch_mha(m, order=("k", "q", "v")), "wrong order"),
        (lambda m: to_torch_mha(m, order=("q", "v", "k")), "wrong order"),
        (lambda m: to_torch_mha(m, transpose=True), "transposed"),
        (lambda m: to_torch_mha(m, copy_bias=False), "biases were not copied"),
        (lambda m: nn.MultiheadAttention(m.d_model, 1, batch_first=True), "num_heads=1"),
        (lambda m: m, "torch.nn.MultiheadAttention"),
    ]),
    (check_torch_masks, lambda pad, attn: (~pad[:, 0, 0, :], ~attn), [
        (lambda pad, attn: (pad[:, 0, 0, :], attn), "True = IGNORE"),
        (lambda pad, attn: (~pad[:, 0, 0, :], attn), "attn_mask: this is the course's mask unchanged"),
        (lambda pad, attn: (~pad, ~attn), "(B, S)"),
        (lambda pad, attn: ((~pad[:, 0, 0, :]).float(), (~attn).float()), "torch.bool"),
        (lambda pad, attn: (~pad[:, 0, 0, :], attn.T), "attn_mask: expected shape (5, 7)"),
        (lambda pad, attn: (~attn, ~pad[:, 0, 0, :]), "wrong order"),
    ]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(SPLIT_MERGE_CASES + MHA_CASES + TORCH_CASES)

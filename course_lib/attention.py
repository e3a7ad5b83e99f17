"""Attention: score functions, scaled dot-product attention, multi-head attention.

Chapters 1 (score functions), 3 (scaled dot-product) and 4 (multi-head).

Dimension legend:
    B batch, H heads, T query length, S key/value length,
    C d_model, D head dim (d_k = d_v = C // H), Dq/Dk/Dv feature sizes of q, k, v.

Masks are boolean, True = may attend, broadcastable to (B, H, T, S); see
``course_lib.masks``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.masks import check_mask

__all__ = [
    "AttentionOutput",
    "scaled_dot_product_attention",
    "dot_score",
    "scaled_dot_score",
    "cosine_score",
    "GeneralScore",
    "AdditiveScore",
    "ConcatScore",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
]


class AttentionOutput(NamedTuple):
    """``out``: the attended values; ``weights``: softmax(scores), kept for plots."""

    out: torch.Tensor
    weights: torch.Tensor | None


# --------------------------------------------------------------------------- validation


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _check_tensor(x, name: str, min_dim: int = 2) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}: did you pass token ids?")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dims (..., length, features), got shape {_shape(x)}")


def _check_qk(q: torch.Tensor, k: torch.Tensor) -> None:
    _check_tensor(q, "q")
    _check_tensor(k, "k")
    if q.dim() != k.dim():
        raise ValueError(f"q and k must have the same rank: q is {_shape(q)} (..., T, D), k is {_shape(k)} (..., S, D)")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must share the feature size D: expected q (..., T, D) and k (..., S, D), "
            f"got q {_shape(q)} and k {_shape(k)}. Did you transpose k before passing it?"
        )
    if q.dtype != k.dtype:
        raise TypeError(f"q and k must have the same dtype, got {q.dtype} and {k.dtype}")


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    _check_qk(q, k)
    _check_tensor(v, "v")
    if v.dim() != k.dim() or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"k and v must agree on every dim but the last: expected k (..., S, Dk) and v (..., S, Dv), "
            f"got k {_shape(k)} and v {_shape(v)}"
        )
    if v.dtype != q.dtype:
        raise TypeError(f"q, k and v must have the same dtype, got {q.dtype} and {v.dtype}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError as err:
        raise ValueError(f"the batch dims of q {_shape(q)} and k {_shape(k)} do not broadcast") from err


# --------------------------------------------------------------------------- scaled dot-product


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> AttentionOutput:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V  (Vaswani et al. 2017, eq. 1).

    The diagram's boxes in order: MatMul -> Scale -> Mask (opt.) -> SoftMax -> MatMul.

    Shapes:
        q: (..., T, D)   k: (..., S, D)   v: (..., S, Dv)
        mask: bool, broadcastable to (..., T, S), True = may attend
        returns out: (..., T, Dv), weights: (..., T, S)

    A fully masked row gets weights of exactly 0 (and so an output row of 0)
    instead of softmax's NaN. ``weights`` are the ones applied to ``v``, i.e.
    after dropout when ``dropout_p > 0``; ``out == weights @ v`` always holds.
    Dropout is applied whenever ``dropout_p > 0``, as in
    ``torch.nn.functional.scaled_dot_product_attention``.
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., T, D) @ (..., D, S) -> (..., T, S)
    if mask is not None:
        check_mask(mask, _shape(scores))
        # finfo.min acts as -inf (exp underflows to exactly 0) but keeps a fully masked row finite
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)  # normalise over the keys S
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # a fully masked row becomes all-zero, not uniform
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., T, S) @ (..., S, Dv) -> (..., T, Dv)
    return AttentionOutput(out, weights)


# --------------------------------------------------------------------------- score functions
# Every score function maps q (..., T, Dq) and k (..., S, Dk) to scores (..., T, S).


def dot_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """score(q, k) = q . k   (Luong's "dot")."""
    _check_qk(q, k)
    return q @ k.transpose(-2, -1)  # (..., T, D) @ (..., D, S) -> (..., T, S)


def scaled_dot_score(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """score(q, k) = q . k / sqrt(d_k)   (Vaswani et al.)."""
    return dot_score(q, k) / math.sqrt(q.shape[-1])


def cosine_score(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """score(q, k) = q . k / (|q| |k|): the dot product with the lengths divided out."""
    _check_qk(q, k)
    q_unit = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    k_unit = k / k.norm(dim=-1, keepdim=True).clamp_min(eps)
    return q_unit @ k_unit.transpose(-2, -1)  # (..., T, S), each entry in [-1, 1]


class GeneralScore(nn.Module):
    """score(q, k) = q^T W k   (Luong's "general" / multiplicative)."""

    def __init__(self, d_q: int, d_k: int):
        super().__init__()
        self.W = nn.Linear(d_k, d_q, bias=False)  # maps k into q's space

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        _check_tensor(q, "q")
        _check_tensor(k, "k")
        if k.shape[-1] != self.W.in_features or q.shape[-1] != self.W.out_features:
            raise ValueError(
                f"GeneralScore expects q (..., T, {self.W.out_features}) and k (..., S, {self.W.in_features}), "
                f"got q {_shape(q)} and k {_shape(k)}"
            )
        return q @ self.W(k).transpose(-2, -1)  # (..., T, Dq) @ (..., Dq, S) -> (..., T, S)


class AdditiveScore(nn.Module):
    """score(q, k) = v^T tanh(W1 q + W2 k)   (Bahdanau et al. 2014, "additive"/"perceptron")."""

    def __init__(self, d_q: int, d_k: int, d_hidden: int):
        super().__init__()
        self.W1 = nn.Linear(d_q, d_hidden, bias=False)
        self.W2 = nn.Linear(d_k, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        _check_tensor(q, "q")
        _check_tensor(k, "k")
        if q.shape[-1] != self.W1.in_features or k.shape[-1] != self.W2.in_features:
            raise ValueError(
                f"AdditiveScore expects q (..., T, {self.W1.in_features}) and k (..., S, {self.W2.in_features}), "
                f"got q {_shape(q)} and k {_shape(k)}"
            )
        hidden = torch.tanh(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))  # (..., T, 1, Dh) + (..., 1, S, Dh)
        return self.v(hidden).squeeze(-1)  # (..., T, S, 1) -> (..., T, S)


class ConcatScore(nn.Module):
    """score(q, k) = v^T tanh(W [q; k])   (Luong's "concat").

    Splitting W = [W1 W2] shows it is the additive score with one bias shared.
    """

    def __init__(self, d_q: int, d_k: int, d_hidden: int):
        super().__init__()
        self.d_q, self.d_k = d_q, d_k
        self.W = nn.Linear(d_q + d_k, d_hidden)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        _check_tensor(q, "q")
        _check_tensor(k, "k")
        if q.shape[-1] != self.d_q or k.shape[-1] != self.d_k:
            raise ValueError(
                f"ConcatScore expects q (..., T, {self.d_q}) and k (..., S, {self.d_k}), got q {_shape(q)} and k {_shape(k)}"
            )
        T, S = q.shape[-2], k.shape[-2]
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        q_pairs = q.unsqueeze(-2).expand(*batch, T, S, self.d_q)  # (..., T, S, Dq)
        k_pairs = k.unsqueeze(-3).expand(*batch, T, S, self.d_k)  # (..., T, S, Dk)
        hidden = torch.tanh(self.W(torch.cat([q_pairs, k_pairs], dim=-1)))  # (..., T, S, Dh)
        return self.v(hidden).squeeze(-1)  # (..., T, S)


# --------------------------------------------------------------------------- multi-head


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, C) -> (B, H, T, D) with D = C // H: the last dim is cut into H slices."""
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, C), got {_shape(x)}")
    B, T, C = x.shape
    if C % n_heads:
        raise ValueError(f"the feature size C={C} is not divisible by n_heads={n_heads}")
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)  # (B, T, H, D) -> (B, H, T, D)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, D) -> (B, T, H*D): the inverse of ``split_heads`` (the paper's Concat)."""
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, H, T, D), got {_shape(x)}")
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, C)


class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
    head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)   (Vaswani et al. 2017, sec. 3.2.2).

    The h per-head projections W_i^Q (C x D) are stored side by side as one
    (C x C) ``q_proj``; ``split_heads`` then cuts its output into heads.

    Shapes:
        query: (B, T, C)   key, value: (B, S, C)
        mask: bool, broadcastable to (B, H, T, S), True = may attend
        returns out: (B, T, C), weights: (B, H, T, S) (None when need_weights=False)
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _check_inputs(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        for name, x in (("query", query), ("key", key), ("value", value)):
            _check_tensor(x, name)
            if x.dim() != 3 or x.shape[-1] != self.d_model:
                raise ValueError(f"{name} must have shape (B, length, d_model={self.d_model}), got {_shape(x)}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"key and value must have the same (B, S), got {_shape(key)} and {_shape(value)}")
        if query.shape[0] != key.shape[0]:
            raise ValueError(f"query and key must have the same batch size, got {_shape(query)} and {_shape(key)}")

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        need_weights: bool = True,
    ) -> AttentionOutput:
        self._check_inputs(query, key, value)
        q = split_heads(self.q_proj(query), self.n_heads)  # (B, T, C) -> (B, H, T, D)
        k = split_heads(self.k_proj(key), self.n_heads)  # (B, S, C) -> (B, H, S, D)
        v = split_heads(self.v_proj(value), self.n_heads)  # (B, S, C) -> (B, H, S, D)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p)
        else:
            # Fused path (chapter 4's efficiency aside): same maths, no (B, H, T, S) weights kept;
            # tests assert it equals the explicit path.
            if mask is not None:
                check_mask(mask, (q.shape[0], self.n_heads, q.shape[2], k.shape[2]))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            if mask is not None:
                out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # fully masked rows -> 0, as above
            weights = None
        return AttentionOutput(self.out_proj(merge_heads(out)), weights)  # (B, H, T, D) -> (B, T, C)

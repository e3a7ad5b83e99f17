"""Every ch02 check passes on the right answer and fails, with the right hint, on planted mistakes."""

import math

import torch

from course_lib.attention import cosine_score
from course_lib.checks import (
    check_cosine_scores,
    check_cosine_scores_zero_vector,
    check_cross_attention,
    check_cross_attention_one_query,
    check_qkv_projections,
    check_qkv_projections_square,
    check_self_attention,
    check_self_attention_unbatched,
)

from check_cases import planted_mistake_tests

# --------------------------------------------------------------------------- (a) projections


def qkv_ok(x, W_q, W_k, W_v):
    return x @ W_q, x @ W_k, x @ W_v


def qkv_swapped_kv(x, W_q, W_k, W_v):
    return x @ W_q, x @ W_v, x @ W_k


def qkv_transposed(x, W_q, W_k, W_v):
    return x @ W_q.T, x @ W_k.T, x @ W_v.T


def qkv_chapter1_style(x, W_q, W_k, W_v):  # keys and values are the inputs themselves
    return x @ W_q, x, x


def qkv_swapped_qk(x, W_q, W_k, W_v):
    return x @ W_k, x @ W_q, x @ W_v


def qkv_detached(x, W_q, W_k, W_v):
    return tuple(t.detach() for t in qkv_ok(x, W_q, W_k, W_v))


def qkv_same_matrix(x, W_q, W_k, W_v):  # one projection reused
    q = x @ W_q
    return q, q, x @ W_v


# --------------------------------------------------------------------------- (b), (d) attention


def attend(q, k, v):
    w = (q @ k.transpose(-2, -1)).softmax(-1)
    return w @ v, w


def self_ok(x, W_q, W_k, W_v):
    return attend(x @ W_q, x @ W_k, x @ W_v)


def self_scaled(x, W_q, W_k, W_v):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v, w


def self_wrong_axis(x, W_q, W_k, W_v):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    w = (q @ k.transpose(-2, -1)).softmax(-2)
    return w @ v, w


def self_transposes_q(x, W_q, W_k, W_v):
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    w = (q.transpose(-2, -1) @ k).softmax(-1)  # (D, D): the wrong tensor transposed
    return w, w


def self_fixed_axes(x, W_q, W_k, W_v):  # right for (B, T, C), fails on an unbatched (T, C) sentence
    q, k, v = x @ W_q, x @ W_k, x @ W_v
    w = (q @ k.transpose(1, 2)).softmax(-1)
    return w @ v, w


def self_q_q(x, W_q, W_k, W_v):
    q, v = x @ W_q, x @ W_v
    return attend(q, q, v)


def self_sums_inputs(x, W_q, W_k, W_v):
    _, w = self_ok(x, W_q, W_k, W_v)
    return w @ x, w


def self_swapped(x, W_q, W_k, W_v):
    out, w = self_ok(x, W_q, W_k, W_v)
    return w, out


def self_unprojected(x, W_q, W_k, W_v):
    w = (x @ x.transpose(-2, -1)).softmax(-1)
    return w @ (x @ W_v), w


def cross_ok(x_dec, x_enc, W_q, W_k, W_v):
    return attend(x_dec @ W_q, x_enc @ W_k, x_enc @ W_v)


def cross_is_self_attention(x_dec, x_enc, W_q, W_k, W_v):
    return attend(x_dec @ W_q, x_dec @ W_k, x_dec @ W_v)


def cross_queries_from_encoder(x_dec, x_enc, W_q, W_k, W_v):
    return attend(x_enc @ W_q, x_dec @ W_k, x_dec @ W_v)


def cross_values_from_decoder_last(x_dec, x_enc, W_q, W_k, W_v):
    """Values taken from the decoder, padded/cut to the source length: the output is wrong."""
    v = (x_dec @ W_v)[:, :1].expand(-1, x_enc.shape[1], -1)
    _, w = cross_ok(x_dec, x_enc, W_q, W_k, W_v)
    return w @ v, w


def cross_scaled(x_dec, x_enc, W_q, W_k, W_v):
    q, k, v = x_dec @ W_q, x_enc @ W_k, x_enc @ W_v
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v, w


def cross_swapped(x_dec, x_enc, W_q, W_k, W_v):
    out, w = cross_ok(x_dec, x_enc, W_q, W_k, W_v)
    return w, out


def cross_wrong_axis(x_dec, x_enc, W_q, W_k, W_v):
    q, k, v = x_dec @ W_q, x_enc @ W_k, x_enc @ W_v
    w = torch.softmax(q @ k.transpose(1, 2), dim=1)
    return w @ v, w


def cross_unprojected_values(x_dec, x_enc, W_q, W_k, W_v):
    q, k = x_dec @ W_q, x_enc @ W_k
    w = (q @ k.transpose(-2, -1)).softmax(-1)
    return w @ x_enc, w


# --------------------------------------------------------------------------- (c) cosine


def cosine_ok(q, k):
    return cosine_score(q, k)


def cosine_plain_dot(q, k):
    return q @ k.transpose(-2, -1)


def cosine_only_k(q, k):
    return q @ (k / k.norm(dim=-1, keepdim=True)).transpose(-2, -1)


def cosine_wrong_norm_axis(q, k):
    return (q / q.norm(dim=-2, keepdim=True)) @ (k / k.norm(dim=-2, keepdim=True)).transpose(-2, -1)


def cosine_no_eps(q, k):
    return (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).transpose(-2, -1)


def cosine_torch_builtin(q, k):  # right: F.cosine_similarity with broadcasting
    return torch.nn.functional.cosine_similarity(q.unsqueeze(-2), k.unsqueeze(-3), dim=-1)


def cosine_squared_norms(q, k):
    qq = (q * q).sum(-1, keepdim=True).clamp_min(1e-12)
    kk = (k * k).sum(-1, keepdim=True).clamp_min(1e-12)
    return (q / qq) @ (k / kk).transpose(-2, -1)


def cosine_softmax(q, k):
    return cosine_score(q, k).softmax(dim=-1)


def cosine_only_q(q, k):
    return (q / q.norm(dim=-1, keepdim=True)) @ k.transpose(-2, -1)


CASES = [
    (check_qkv_projections, qkv_ok, [
        (qkv_swapped_kv, "k = x @ W_k"),
        (qkv_transposed, "raised RuntimeError"),
        (qkv_chapter1_style, "chapter 1's hs"),
        (qkv_swapped_qk, "q must use W_q: yours equals x @ W_k"),
        (qkv_same_matrix, "k must use W_k: yours equals x @ W_q"),
        (qkv_detached, "gradients do not flow"),
    ]),
    (check_qkv_projections_square, qkv_ok, [
        (qkv_transposed, "not x @ W.T"),
        (qkv_chapter1_style, "chapter 1's hs"),
        (qkv_swapped_qk, "q must use W_q: yours equals x @ W_k"),
        (qkv_swapped_kv, "k must use W_k: yours equals x @ W_v"),
        (qkv_same_matrix, "k must use W_k: yours equals x @ W_q"),
        (qkv_detached, "gradients do not flow"),
    ]),
    (check_self_attention, self_ok, [
        (self_scaled, "no scale yet"),
        (self_wrong_axis, "wrong axis"),
        (self_transposes_q, "Transpose k's last two axes"),
        (self_q_q, "compared the queries with themselves"),
        (self_sums_inputs, "not weights @ x"),
        (self_swapped, "wrong order"),
        (self_unprojected, "compared the raw inputs"),
    ]),
    (check_self_attention_unbatched, self_ok, [
        (self_fixed_axes, "raised"),
        (self_wrong_axis, "wrong axis"),
        (self_scaled, "no scale yet"),
        (self_q_q, "compared the queries with themselves"),
        (self_swapped, "wrong order"),
        (self_unprojected, "compared the raw inputs"),
    ]),
    (check_cosine_scores, cosine_ok, [
        (cosine_plain_dot, "plain dot product"),
        (cosine_only_k, "BOTH q and k"),
        (cosine_only_q, "BOTH q and k"),
        (cosine_wrong_norm_axis, "norm over its features"),
        (cosine_squared_norms, "squared lengths"),
        (cosine_softmax, "you applied a softmax"),
    ]),
    (check_cosine_scores_zero_vector, cosine_ok, [
        (cosine_no_eps, "NaN"),
        (cosine_plain_dot, "plain dot product"),
        (cosine_only_k, "BOTH q and k"),
        (cosine_wrong_norm_axis, "norm over its features"),
        (cosine_squared_norms, "squared lengths"),
        (cosine_softmax, "you applied a softmax"),
    ]),
    (check_cross_attention, cross_ok, [
        (cross_is_self_attention, "keys (and values) come from the ENCODER"),
        (cross_queries_from_encoder, "queries and keys are swapped"),
        (cross_values_from_decoder_last, "out = weights @ v with v = x_enc @ W_v"),
        (cross_scaled, "no scale yet"),
        (cross_swapped, "wrong order"),
        (cross_wrong_axis, "wrong axis"),
        (cross_unprojected_values, "project the values first"),
    ]),
    (check_cross_attention_one_query, cross_ok, [
        (cross_is_self_attention, "keys (and values) come from the ENCODER"),
        (cross_scaled, "no scale yet"),
        (cross_queries_from_encoder, "queries and keys are swapped"),
        (cross_swapped, "wrong order"),
        (cross_wrong_axis, "softmax over an axis of size 1"),
        (cross_unprojected_values, "project the values first"),
    ]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_at_least_two_planted_mistakes,
) = planted_mistake_tests(CASES)


def test_torch_builtin_cosine_is_accepted():
    check_cosine_scores(cosine_torch_builtin)

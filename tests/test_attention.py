"""course_lib.attention against PyTorch's own implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import (
    AdditiveScore,
    ConcatScore,
    GeneralScore,
    MultiHeadAttention,
    cosine_score,
    dot_score,
    merge_heads,
    scaled_dot_product_attention,
    scaled_dot_score,
    split_heads,
)
from course_lib.masks import causal_mask, combine_masks, padding_mask, to_torch_key_padding_mask

from conftest import B, C, H, S, T

D, DV = 4, 6


def qkv(dtype=torch.float32, T_=T, S_=S):
    return torch.randn(B, H, T_, D, dtype=dtype), torch.randn(B, H, S_, D, dtype=dtype), torch.randn(B, H, S_, DV, dtype=dtype)


def pad_tokens(lengths, S_=S, pad_id=0):
    tokens = torch.randint(1, 50, (len(lengths), S_))
    for b, n in enumerate(lengths):
        tokens[b, n:] = pad_id
    return tokens


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_matches_torch_without_mask(dtype):
    q, k, v = qkv(dtype)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert weights.shape == (B, H, T, S)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T, dtype=dtype))
    torch.testing.assert_close(out, weights @ v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sdpa_matches_torch_with_padding_and_causal_masks(dtype):
    q, k, v = qkv(dtype, T_=S)
    mask = combine_masks(padding_mask(pad_tokens([7, 5, 3]), 0), causal_mask(S))
    assert mask.shape == (B, 1, S, S)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert (weights[~mask.expand_as(weights)] == 0).all(), "masked keys must get exactly zero weight"


def test_fully_masked_row_gives_zeros_not_nan():
    q, k, v = qkv(torch.float64)
    mask = torch.ones(T, S, dtype=torch.bool)
    mask[2] = False  # query 2 may attend to nothing
    q.requires_grad_(True)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (weights[..., 2, :] == 0).all() and (out[..., 2, :] == 0).all()
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_sdpa_dropout_keeps_out_equal_weights_at_v():
    q, k, v = qkv()
    out, weights = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    torch.testing.assert_close(out, weights @ v)
    assert (weights == 0).any()


def test_sdpa_gradcheck():
    q, k, v = (x.requires_grad_(True) for x in qkv(torch.float64))
    mask = causal_mask(T)[:, :S] if S <= T else torch.ones(T, S, dtype=torch.bool).tril(2)
    assert torch.autograd.gradcheck(lambda q, k, v: scaled_dot_product_attention(q, k, v, mask).out, (q, k, v))


def test_score_functions():
    q, k = torch.randn(B, T, D, dtype=torch.float64), torch.randn(B, S, D, dtype=torch.float64)
    torch.testing.assert_close(dot_score(q, k), torch.einsum("btd,bsd->bts", q, k))
    torch.testing.assert_close(scaled_dot_score(q, k), dot_score(q, k) / math.sqrt(D))
    torch.testing.assert_close(cosine_score(q, k), F.cosine_similarity(q[:, :, None, :], k[:, None, :, :], dim=-1))

    general = GeneralScore(D, 5).double()
    k5 = torch.randn(B, S, 5, dtype=torch.float64)
    torch.testing.assert_close(general(q, k5), torch.einsum("btd,de,bse->bts", q, general.W.weight, k5))

    additive = AdditiveScore(D, 5, 8).double()
    expected = torch.empty(B, T, S, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            for s in range(S):
                h = torch.tanh(additive.W1.weight @ q[b, t] + additive.W2.weight @ k5[b, s])
                expected[b, t, s] = additive.v.weight[0] @ h
    torch.testing.assert_close(additive(q, k5), expected)

    concat = ConcatScore(D, 5, 8).double()
    b, t, s = 1, 2, 3
    h = torch.tanh(concat.W(torch.cat([q[b, t], k5[b, s]])))
    torch.testing.assert_close(concat(q, k5)[b, t, s], concat.v(h)[0])


def test_split_merge_heads_roundtrip_and_equal_h_separate_projections():
    x = torch.randn(B, T, C)
    heads = split_heads(x, H)
    assert heads.shape == (B, H, T, C // H)
    torch.testing.assert_close(merge_heads(heads), x)
    # one big (C x C) projection split into heads == H separate (C x D) projections
    W = torch.randn(C, C)
    big = split_heads(x @ W.T, H)
    for h in range(H):
        W_h = W[h * (C // H) : (h + 1) * (C // H)]  # rows of head h
        torch.testing.assert_close(big[:, h], x @ W_h.T)


def copy_into_torch_mha(mha: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(mha.d_model, mha.n_heads, bias=True, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("masks", ["none", "padding", "causal", "both"])
def test_mha_matches_torch(masks):
    mha = MultiHeadAttention(C, H).eval()
    ref = copy_into_torch_mha(mha)
    tokens = pad_tokens([7, 4, 2])
    x = torch.randn(B, S, C)
    pad = padding_mask(tokens, 0)  # (B, 1, 1, S), True = attend
    causal = causal_mask(S)  # (S, S), True = attend
    ours_mask = {"none": None, "padding": pad, "causal": causal, "both": combine_masks(pad, causal)}[masks]
    # torch uses the opposite polarity: key_padding_mask (B, S) and attn_mask (T, S) are True = IGNORE
    kpm = to_torch_key_padding_mask(pad) if masks in ("padding", "both") else None
    am = ~causal if masks in ("causal", "both") else None
    out, weights = mha(x, x, x, mask=ours_mask)
    ref_out, ref_weights = ref(x, x, x, key_padding_mask=kpm, attn_mask=am, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)
    fused, none_weights = mha(x, x, x, mask=ours_mask, need_weights=False)
    assert none_weights is None
    torch.testing.assert_close(fused, out)


def test_mha_cross_attention_shapes_and_gradcheck():
    mha = MultiHeadAttention(C, H).double()
    query, memory = torch.randn(B, T, C, dtype=torch.float64), torch.randn(B, S, C, dtype=torch.float64)
    out, weights = mha(query, memory, memory)
    assert out.shape == (B, T, C) and weights.shape == (B, H, T, S)
    query.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: mha(x, memory, memory).out, (query,))


def test_mha_fully_masked_row_is_zero_on_both_paths():
    mha = MultiHeadAttention(C, H).eval()
    x = torch.randn(B, T, C)
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    mask[0, 0, 1] = False
    out, _ = mha(x, x, x, mask)
    fused, _ = mha(x, x, x, mask, need_weights=False)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(fused, out)
    torch.testing.assert_close(out[0, 1], mha.out_proj.bias)  # zero attention output, then the output bias


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, exc, words",
    [
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 3), torch.randn(7, 6)), ValueError, "feature size D"),
        (lambda: scaled_dot_product_attention(torch.randn(5), torch.randn(7, 4), torch.randn(7, 6)), ValueError, "at least 2 dims"),
        (lambda: scaled_dot_product_attention(torch.randn(2, 5, 4), torch.randn(7, 4), torch.randn(7, 6)), ValueError, "same rank"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 4), torch.randn(6, 6)), ValueError, "k and v"),
        (lambda: scaled_dot_product_attention(torch.randint(0, 3, (5, 4)), torch.randn(7, 4), torch.randn(7, 6)), TypeError, "floating-point"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 4).double(), torch.randn(7, 6)), TypeError, "dtype"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 4), torch.randn(7, 6), torch.ones(5, 7)), TypeError, "torch.bool"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 4), torch.randn(7, 6), torch.ones(7, 5, dtype=torch.bool)), ValueError, "does not broadcast"),
        (lambda: scaled_dot_product_attention(torch.randn(5, 4), torch.randn(7, 4), torch.randn(7, 6), dropout_p=1.5), ValueError, "dropout_p"),
        (lambda: scaled_dot_product_attention([[1.0]], torch.randn(7, 4), torch.randn(7, 6)), TypeError, "torch.Tensor"),
        (lambda: MultiHeadAttention(10, 3), ValueError, "divisible"),
        (lambda: MultiHeadAttention(C, H)(torch.randn(B, T, C + 1), torch.randn(B, S, C), torch.randn(B, S, C)), ValueError, "d_model=12"),
        (lambda: MultiHeadAttention(C, H)(torch.randn(T, C), torch.randn(S, C), torch.randn(S, C)), ValueError, "(B, length, d_model"),
        (lambda: MultiHeadAttention(C, H)(torch.randn(B, T, C), torch.randn(B, S, C), torch.randn(B, S - 1, C)), ValueError, "same (B, S)"),
        (lambda: MultiHeadAttention(C, H)(torch.randn(B, T, C), torch.randn(B, S, C), torch.randn(B, S, C), torch.ones(B, 1, 1, T, dtype=torch.bool)), ValueError, "does not broadcast"),
        (lambda: split_heads(torch.randn(B, T, 10), 3), ValueError, "not divisible"),
        (lambda: merge_heads(torch.randn(B, T, C)), ValueError, "(B, H, T, D)"),
        (lambda: GeneralScore(4, 5)(torch.randn(T, 4), torch.randn(S, 4)), ValueError, "GeneralScore expects"),
        (lambda: AdditiveScore(4, 5, 8)(torch.randn(T, 5), torch.randn(S, 5)), ValueError, "AdditiveScore expects"),
    ],
)
def test_bad_input_raises_clear_error(make, exc, words):
    with pytest.raises(exc, match=None) as info:
        make()
    assert words in str(info.value), str(info.value)

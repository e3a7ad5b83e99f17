"""The ch06_masking checks pass on right answers and fail, with the right hint, on planted mistakes."""

import math

import pytest
import torch

from course_lib.attention import scaled_dot_product_attention
from course_lib.checks.ch06_masking import (
    check_causal_mask,
    check_combined_mask,
    check_masked_attention,
    check_masked_attention_float32,
    check_padding_mask,
    check_padding_mask_other_pad_id,
)
from course_lib.masks import causal_mask, combine_masks, padding_mask

from check_cases import fails_with


def test_masks_pass():
    check_padding_mask(padding_mask)
    check_padding_mask_other_pad_id(padding_mask)
    check_causal_mask(causal_mask)
    check_causal_mask(lambda T: torch.tril(torch.ones(T, T)).bool())
    check_combined_mask(lambda tokens, pad_id: combine_masks(padding_mask(tokens, pad_id), causal_mask(tokens.shape[1])))


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda tokens, pad_id: (tokens == pad_id)[:, None, None, :], ["polarity is inverted"]),
        (lambda tokens, pad_id: tokens != pad_id, ["(B, 1, 1, S)", "broadcasts"]),
        (lambda tokens, pad_id: (tokens != pad_id)[:, None, :, None], ["hides *keys*"]),
        (lambda tokens, pad_id: (tokens != pad_id).float()[:, None, None, :], ["torch.bool"]),
    ],
)
def test_padding_mask_fails(wrong, words):
    fails_with(check_padding_mask, wrong, *words)


def test_padding_mask_other_id_fails_on_hard_coded_zero():
    fails_with(check_padding_mask_other_pad_id, lambda tokens, pad_id: (tokens != 0)[:, None, None, :], "not with 0")


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), ["upper triangle"]),
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), ["diagonal must be True"]),
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), ["polarity is inverted", "attn_mask convention"]),
        (lambda T: torch.ones(T, T).tril(), ["torch.bool"]),
        (lambda T: torch.ones(1, T, T, dtype=torch.bool).tril(), ["expected shape (5, 5)"]),
    ],
)
def test_causal_mask_fails(wrong, words):
    fails_with(check_causal_mask, wrong, *words)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (lambda tokens, pad_id: padding_mask(tokens, pad_id) | causal_mask(tokens.shape[1]), ["AND"]),
        (lambda tokens, pad_id: padding_mask(tokens, pad_id).expand(-1, 1, tokens.shape[1], -1), ["causal part is missing"]),
        (lambda tokens, pad_id: causal_mask(tokens.shape[1]).expand(tokens.shape[0], 1, -1, -1), ["padding part is missing"]),
        (lambda tokens, pad_id: (tokens != pad_id)[:, None, :, None] & causal_mask(tokens.shape[1]), ["hides queries"]),
        (lambda tokens, pad_id: causal_mask(tokens.shape[1]), ["(B, 1, T, T)"]),
    ],
)
def test_combined_mask_fails(wrong, words):
    fails_with(check_combined_mask, wrong, *words)


def sdpa_pair(q, k, v, mask):
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    return out, weights


def naive_inf(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return weights @ v, weights


def zero_after(q, k, v, mask):
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) * mask
    return weights @ v, weights


def inverted(q, k, v, mask):
    return sdpa_pair(q, k, v, ~mask)


def mild_fill(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, -10.0)
    weights = scores.softmax(-1)
    return weights @ v, weights


def uniform_fully_masked(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, -1e30)
    weights = scores.softmax(-1)
    return weights @ v, weights


def test_masked_attention_passes():
    check_masked_attention(sdpa_pair)
    check_masked_attention_float32(sdpa_pair)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (naive_inf, ["NaN", "fully masked"]),
        (zero_after, ["sum to 1", "zeroed the masked weights after"]),
        (inverted, ["polarity"]),
        (mild_fill, ["tiny but not 0"]),
        (uniform_fully_masked, ["fully masked row", "not a uniform row"]),
    ],
)
def test_masked_attention_fails(wrong, words):
    fails_with(check_masked_attention, wrong, *words)

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

from check_cases import fails_with, planted_mistake_tests


def test_masks_pass():
    check_padding_mask(padding_mask)
    check_padding_mask_other_pad_id(padding_mask)
    check_causal_mask(causal_mask)
    check_causal_mask(lambda T: torch.tril(torch.ones(T, T)).bool())
    check_combined_mask(lambda tokens, pad_id: combine_masks(padding_mask(tokens, pad_id), causal_mask(tokens.shape[1])))


def padding_ok(tokens, pad_id):
    return (tokens != pad_id)[:, None, None, :]


PADDING_MISTAKES = [
    (lambda tokens, pad_id: (tokens == pad_id)[:, None, None, :], "polarity is inverted"),
    (lambda tokens, pad_id: tokens != pad_id, "broadcasts"),
    (lambda tokens, pad_id: (tokens != pad_id)[:, None, :, None], "hides *keys*"),
    (lambda tokens, pad_id: (tokens != pad_id).unsqueeze(1).unsqueeze(-1), "hides *keys*"),
    (lambda tokens, pad_id: (tokens != pad_id).float()[:, None, None, :], "torch.bool"),
    (lambda tokens, pad_id: (tokens != pad_id).long()[:, None, None, :], "torch.bool"),
    (lambda tokens, pad_id: (tokens != pad_id).unsqueeze(1), "puts B on the head axis"),
]

MASK_CASES = [
    (check_padding_mask, padding_ok, PADDING_MISTAKES),
    (check_padding_mask_other_pad_id, padding_ok, PADDING_MISTAKES[:1] + PADDING_MISTAKES[2:4] + PADDING_MISTAKES[-1:] + [
        (lambda tokens, pad_id: (tokens != 0)[:, None, None, :], "not with 0"),
        (lambda tokens, pad_id: (tokens > 0)[:, None, None, :], "not with 0"),
    ]),
    (check_causal_mask, causal_mask, [
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(), "upper triangle"),
        (lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), "diagonal must be True"),
        (lambda T: torch.ones(T, T, dtype=torch.bool).triu(1), "attn_mask convention"),
        (lambda T: torch.ones(T, T).tril(), "torch.bool"),
        (lambda T: torch.ones(1, T, T, dtype=torch.bool).tril(), "expected shape (5, 5)"),
        (lambda T: torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=1), "off by one"),
        (lambda T: torch.ones(T, T, dtype=torch.bool), "nothing is hidden"),
    ]),
    (check_combined_mask, lambda tokens, pad_id: combine_masks(padding_mask(tokens, pad_id), causal_mask(tokens.shape[1])), [
        (lambda tokens, pad_id: padding_mask(tokens, pad_id) | causal_mask(tokens.shape[1]), "AND"),
        (lambda tokens, pad_id: padding_mask(tokens, pad_id).expand(-1, 1, tokens.shape[1], -1), "causal part is missing"),
        (lambda tokens, pad_id: causal_mask(tokens.shape[1]).expand(tokens.shape[0], 1, -1, -1), "padding part is missing"),
        (lambda tokens, pad_id: (tokens != pad_id)[:, None, :, None] & causal_mask(tokens.shape[1]), "hides queries"),
        (lambda tokens, pad_id: causal_mask(tokens.shape[1]), "the padding part (B, 1, 1, T) is missing"),
        (lambda tokens, pad_id: (tokens == pad_id)[:, None, None, :] & causal_mask(tokens.shape[1]), "padding part is inverted"),
        (lambda tokens, pad_id: padding_mask(tokens, pad_id) & torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).tril(1), "off by one"),
        (lambda tokens, pad_id: padding_mask(tokens, pad_id) & causal_mask(tokens.shape[1]).T, "upper triangle"),
    ]),
]


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


def ignores_mask(q, k, v, mask):
    return sdpa_pair(q, k, v, None)


def fill_zero(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(mask == 0, 0.0)
    weights = scores.softmax(-1)
    return weights @ v, weights


def mask_on_queries(q, k, v, mask):
    return sdpa_pair(q, k, v, mask.transpose(-1, -2))


def float64_fill_in_float32(q, k, v, mask):  # finfo of float64 overflows float32 to -inf
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, torch.finfo(torch.float64).min)
    weights = scores.softmax(-1).masked_fill(~mask, 0.0)
    return weights @ v, weights


def unscaled_masked(q, k, v, mask):
    scores = (q @ k.transpose(-2, -1)).masked_fill(~mask, torch.finfo(q.dtype).min)
    weights = scores.softmax(-1).masked_fill(~mask, 0.0)
    return weights @ v, weights


ATTENTION_MISTAKES = [
    (naive_inf, "fully masked"),
    (zero_after, "zeroed the masked weights after"),
    (inverted, "polarity"),
    (mild_fill, "set to -10"),
    (uniform_fully_masked, "not a uniform row"),
    (ignores_mask, "the mask is not applied"),
    (fill_zero, "masked scores were set to 0"),
    (mask_on_queries, "applied to the queries"),
    (lambda q, k, v, mask: sdpa_pair(q, k, v, mask)[::-1], "wrong order"),
]

ATTENTION_CASES = [
    (check_masked_attention, sdpa_pair, ATTENTION_MISTAKES),
    (check_masked_attention_float32, sdpa_pair, ATTENTION_MISTAKES + [(float64_fill_in_float32, "torch.finfo(scores.dtype).min")]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(MASK_CASES + ATTENTION_CASES)


def test_masked_attention_passes():
    check_masked_attention(sdpa_pair)
    check_masked_attention_float32(sdpa_pair)


@pytest.mark.parametrize(
    "wrong, words",
    [
        (naive_inf, ["NaN", "fully masked"]),
        (zero_after, ["sum to 1", "zeroed the masked weights after"]),
        (inverted, ["polarity"]),
        (mild_fill, ["not negative enough"]),
        (uniform_fully_masked, ["fully masked row", "not a uniform row"]),
    ],
)
def test_masked_attention_fails(wrong, words):
    fails_with(check_masked_attention, wrong, *words)

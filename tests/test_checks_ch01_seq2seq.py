"""Every ch01 check passes on the right answer and fails, with the right hint, on planted mistakes."""

import torch

from torch import nn

from course_lib.attention import AdditiveScore as ReferenceAdditive
from course_lib.checks import (
    check_additive_score,
    check_additive_score_other_sizes,
    check_attention_context,
    check_attention_context_matmul,
    check_attention_context_matmul_square,
    check_attention_context_other_sizes,
    check_attention_decoder_step,
    check_attention_decoder_steps,
)
from course_lib.seq2seq import attention_context as lib_context
from course_lib.seq2seq import attention_context_matmul as lib_matmul

from check_cases import planted_mistake_tests

# --------------------------------------------------------------------------- (a), (b) attention for one state


def context_ok(h, hs):
    scores = (hs * h.unsqueeze(1)).sum(-1)
    weights = scores.softmax(-1)
    return (hs * weights.unsqueeze(-1)).sum(1), weights


def context_softmax_batch_axis(h, hs):
    weights = (hs * h.unsqueeze(1)).sum(-1).softmax(0)
    return (hs * weights.unsqueeze(-1)).sum(1), weights


def context_weighted_by_scores(h, hs):
    scores = (hs * h.unsqueeze(1)).sum(-1)
    return (hs * scores.unsqueeze(-1)).sum(1), scores.softmax(-1)


def context_sum_wrong_axis(h, hs):
    weights = (hs * h.unsqueeze(1)).sum(-1).softmax(-1)
    return (hs * weights.unsqueeze(-1)).sum(2), weights  # (B, S): summed over C


def context_scaled(h, hs):
    weights = ((hs * h.unsqueeze(1)).sum(-1) / hs.shape[-1] ** 0.5).softmax(-1)
    return (hs * weights.unsqueeze(-1)).sum(1), weights


def context_detached(h, hs):
    return tuple(x.detach() for x in context_ok(h, hs))


def context_square_bug(h, hs):
    """Sums the score over the source axis when the sizes agree: right shapes only if S == C."""
    weights = (hs * h.unsqueeze(2)).sum(1).softmax(-1)  # (B, C, 1)... broadcasts only when S == C
    return (hs * weights.unsqueeze(-1)).sum(1), weights


def matmul_ok(h, hs, mask=None):
    return tuple(lib_matmul(h, hs, mask))


def matmul_inverted_mask(h, hs, mask=None):
    return tuple(lib_matmul(h, hs, None if mask is None else ~mask))


def matmul_zero_after_softmax(h, hs, mask=None):
    context, weights = lib_matmul(h, hs)
    if mask is not None:
        weights = weights * mask
        context = (weights.unsqueeze(1) @ hs).squeeze(1)
    return context, weights


def matmul_ignores_mask(h, hs, mask=None):
    return tuple(lib_matmul(h, hs))


def matmul_transposes_h(h, hs, mask=None):
    """(B, C, 1) x (B, 1, S)... an outer product summed the wrong way: right shapes when S == C."""
    scores = (hs @ h.unsqueeze(-1)).squeeze(-1)  # right: (B, S)
    wrong = (hs.transpose(1, 2) @ h.unsqueeze(-1)).squeeze(-1) if hs.shape[1] == hs.shape[2] else scores
    if mask is not None:
        wrong = wrong.masked_fill(~mask, float("-inf"))
    weights = wrong.softmax(-1)
    return (weights.unsqueeze(1) @ hs).squeeze(1), weights


def context_swapped(h, hs):
    context, weights = context_ok(h, hs)
    return weights, context


def context_mean(h, hs):
    weights = (hs * h.unsqueeze(1)).sum(-1).softmax(-1)
    return (hs * weights.unsqueeze(-1)).mean(1), weights


def context_last_state(h, hs):
    weights = (hs * h.unsqueeze(1)).sum(-1).softmax(-1)
    return hs[:, -1], weights


def context_sigmoid(h, hs):
    weights = torch.sigmoid((hs * h.unsqueeze(1)).sum(-1))
    return (hs * weights.unsqueeze(-1)).sum(1), weights


def context_raw_scores(h, hs):
    scores = (hs * h.unsqueeze(1)).sum(-1)
    return (hs * scores.softmax(-1).unsqueeze(-1)).sum(1), scores


def matmul_swapped(h, hs, mask=None):
    context, weights = matmul_ok(h, hs, mask)
    return weights, context


def matmul_fill_zero(h, hs, mask=None):
    scores = (hs @ h.unsqueeze(-1)).squeeze(-1)  # (B, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, 0)
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(1) @ hs).squeeze(1), weights


def matmul_inverted_neg_inf(h, hs, mask=None):
    scores = torch.bmm(hs, h.unsqueeze(2)).squeeze(2)
    if mask is not None:
        scores[mask] = float("-inf")
    weights = torch.softmax(scores, dim=1)
    return torch.bmm(weights.unsqueeze(1), hs).squeeze(1), weights


def matmul_scaled(h, hs, mask=None):
    scores = (hs @ h.unsqueeze(-1)).squeeze(-1) / hs.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)
    return (weights.unsqueeze(1) @ hs).squeeze(1), weights


def matmul_softmax_dim0(h, hs, mask=None):
    scores = (hs @ h.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(0)
    return (weights.unsqueeze(1) @ hs).squeeze(1), weights


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


# --------------------------------------------------------------------------- (c) additive score


class AdditiveOk(nn.Module):
    def __init__(self, d_q, d_k, d_hidden):
        super().__init__()
        self.W1 = nn.Linear(d_q, d_hidden, bias=False)
        self.W2 = nn.Linear(d_k, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q, k):
        return self.v(torch.tanh(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))).squeeze(-1)


class AdditiveNoTanh(AdditiveOk):
    def forward(self, q, k):
        return self.v(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3)).squeeze(-1)


class AdditiveSumsHidden(AdditiveOk):
    def forward(self, q, k):
        return torch.tanh(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3)).sum(-1)


class AdditiveSoftmax(AdditiveOk):
    def forward(self, q, k):
        return super().forward(q, k).softmax(-1)


class AdditiveSwappedBroadcast(AdditiveOk):
    def forward(self, q, k):  # (B, S, T)
        return self.v(torch.tanh(self.W1(q).unsqueeze(-3) + self.W2(k).unsqueeze(-2))).squeeze(-1)


class AdditiveWithBias(AdditiveOk):
    def __init__(self, d_q, d_k, d_hidden):
        super().__init__(d_q, d_k, d_hidden)
        self.W1 = nn.Linear(d_q, d_hidden)


class AdditiveWrongV(AdditiveOk):
    def __init__(self, d_q, d_k, d_hidden):
        super().__init__(d_q, d_k, d_hidden)
        self.v = nn.Linear(1, d_hidden, bias=False)


class AdditiveSquareW1(AdditiveOk):
    """nn.Linear(d_hidden, d_hidden) for W1: right only when d_q == d_hidden."""

    def __init__(self, d_q, d_k, d_hidden):
        super().__init__(d_q, d_k, d_hidden)
        self.W1 = nn.Linear(d_hidden, d_hidden, bias=False)


# --------------------------------------------------------------------------- (d) decoder step


def step_ok(y_prev, h_prev, hs, mask, layers):
    h = layers.cell(layers.embed(y_prev), h_prev)
    context, weights = lib_context(h, hs, mask)
    logits = layers.out(torch.tanh(layers.combine(torch.cat([context, h], dim=-1))))
    return logits, h, weights


def step_bahdanau_order(y_prev, h_prev, hs, mask, layers):
    context, weights = lib_context(h_prev, hs, mask)
    h = layers.cell(layers.embed(y_prev), h_prev)
    logits = layers.out(torch.tanh(layers.combine(torch.cat([context, h], dim=-1))))
    return logits, h, weights


def step_concat_swapped(y_prev, h_prev, hs, mask, layers):
    h = layers.cell(layers.embed(y_prev), h_prev)
    context, weights = lib_context(h, hs, mask)
    return layers.out(torch.tanh(layers.combine(torch.cat([h, context], dim=-1)))), h, weights


def step_no_tanh(y_prev, h_prev, hs, mask, layers):
    h = layers.cell(layers.embed(y_prev), h_prev)
    context, weights = lib_context(h, hs, mask)
    return layers.out(layers.combine(torch.cat([context, h], dim=-1))), h, weights


def step_no_mask(y_prev, h_prev, hs, mask, layers):
    return step_ok(y_prev, h_prev, hs, None, layers)


def step_returns_old_state(y_prev, h_prev, hs, mask, layers):
    logits, _, weights = step_ok(y_prev, h_prev, hs, mask, layers)
    return logits, h_prev, weights


class AdditiveScaled(AdditiveOk):
    def forward(self, q, k):  # a scale borrowed from chapter 3
        return super().forward(q, k) / q.shape[-1] ** 0.5


def step_weights_first(y_prev, h_prev, hs, mask, layers):
    logits, h, weights = step_ok(y_prev, h_prev, hs, mask, layers)
    return weights, logits, h


CASES = [
    (check_attention_context, context_ok, [
        (context_softmax_batch_axis, "dim=0 is the batch"),
        (context_weighted_by_scores, "not by the raw scores"),
        (context_sum_wrong_axis, "sum over the source axis"),
        (context_scaled, "without the 1/sqrt(d) scale"),
        (context_detached, "gradients do not flow"),
        (context_swapped, "wrong order"),
        (context_mean, "averaged (mean) over the source positions"),
        (context_last_state, "the last encoder state"),
        (context_raw_scores, "raw scores"),
        (context_sigmoid, "you used sigmoid"),
        (not_implemented, "not implemented yet"),
    ]),
    (check_attention_context_other_sizes, context_ok, [
        (context_square_bug, "S == C"),
        (context_softmax_batch_axis, "dim=0 is the batch"),
        (context_swapped, "wrong order"),
        (context_scaled, "without the 1/sqrt(d) scale"),
        (context_mean, "averaged (mean) over the source positions"),
        (context_weighted_by_scores, "not by the raw scores"),
    ]),
    (check_attention_context_matmul, matmul_ok, [
        (matmul_inverted_mask, "polarity is inverted"),
        (matmul_inverted_neg_inf, "polarity is inverted"),
        (matmul_zero_after_softmax, "zeroed the masked weights after the softmax"),
        (matmul_ignores_mask, "the mask is ignored"),
        (matmul_fill_zero, "masked scores were set to 0"),
        (matmul_swapped, "wrong order"),
        (matmul_scaled, "without the 1/sqrt(d) scale"),
        (matmul_softmax_dim0, "dim=0 is the batch"),
        (lambda h, hs, mask=None: lib_matmul(h, hs, mask).out, "should return a tuple"),
    ]),
    (check_attention_context_matmul_square, matmul_ok, [
        (matmul_transposes_h, "transpose hs to (B, C, S)"),
        (matmul_inverted_mask, "polarity is inverted"),
        (matmul_fill_zero, "masked scores were set to 0"),
        (matmul_zero_after_softmax, "zeroed the masked weights after the softmax"),
        (matmul_ignores_mask, "the mask is ignored"),
        (matmul_swapped, "wrong order"),
    ]),
    (check_additive_score, AdditiveOk, [
        (AdditiveNoTanh, "tanh is missing"),
        (AdditiveSumsHidden, "instead of applying v"),
        (AdditiveSoftmax, "before softmax"),
        (AdditiveSwappedBroadcast, "another order"),
        (AdditiveWithBias, "no bias"),
        (AdditiveWrongV, "nn.Linear(d_hidden, 1)"),
        (AdditiveScaled, "constant scale"),
    ]),
    (check_additive_score_other_sizes, AdditiveOk, [
        (AdditiveSquareW1, "nn.Linear(d_q, d_hidden)"),
        (AdditiveNoTanh, "tanh is missing"),
        (AdditiveSumsHidden, "instead of applying v"),
        (AdditiveSoftmax, "before softmax"),
        (AdditiveWithBias, "no bias"),
        (AdditiveWrongV, "nn.Linear(d_hidden, 1)"),
    ]),
    (check_attention_decoder_step, step_ok, [
        (step_bahdanau_order, "Bahdanau's order"),
        (step_concat_swapped, "context first"),
        (step_no_tanh, "tanh is missing"),
        (step_no_mask, "pass the mask"),
        (step_returns_old_state, "not h_prev"),
        (step_weights_first, "in that order"),
    ]),
    (check_attention_decoder_steps, step_ok, [
        (step_returns_old_state, "your steps all start from the first state"),
        (step_concat_swapped, "context first"),
        (step_bahdanau_order, "Bahdanau's order"),
        (step_no_tanh, "tanh is missing"),
        (step_no_mask, "pass the mask"),
        (step_weights_first, "in that order"),
    ]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_at_least_two_planted_mistakes,
) = planted_mistake_tests(CASES)


def test_course_lib_versions_pass():
    """The library's own implementations are right answers (one source of truth)."""
    check_attention_context(lambda h, hs: tuple(lib_context(h, hs)))
    check_attention_context_matmul(matmul_ok)
    check_additive_score(ReferenceAdditive)

"""Every ch03 check passes on the right answer and fails, with the right hint, on planted mistakes."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import scaled_dot_product_attention as reference
from course_lib.checks import (
    CheckFailed,
    check_attention_entropy,
    check_attention_entropy_one_hot,
    check_attention_weights,
    check_attention_weights_batched_heads,
    check_dot_product_variance,
    check_scaled_dot_product_attention,
    check_sdpa_fully_masked_row,
)
from course_lib.grading import recorder

from check_cases import planted_mistake_tests

# --------------------------------------------------------------------------- right answers


def weights_ok(q, k):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)


def sdpa_ok(q, k, v, mask=None):
    return tuple(reference(q, k, v, mask))


def variance_ok(d_k, n_samples):
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q * k).sum(-1).var().item()


def entropy_ok(w):
    return -torch.special.xlogy(w, w).sum(-1)


# --------------------------------------------------------------------------- planted mistakes


def weights_unscaled(q, k):
    return (q @ k.transpose(-2, -1)).softmax(dim=-1)


def weights_wrong_axis(q, k):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-2)


def weights_detached(q, k):
    return weights_ok(q.detach(), k.detach())


def weights_d_from_axis_2(q, k):  # right for (B, T, D), wrong for (B, H, T, D)
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[2])).softmax(dim=-1)


def weights_float64_constant(q, k):
    scale = torch.full((1,), math.sqrt(q.shape[-1]), dtype=torch.float64)  # a 1-element float64 tensor promotes
    return (q @ k.transpose(-2, -1) / scale).softmax(dim=-1)


def weights_dot_T(q, k):  # k.T reverses every axis: breaks on 4-D inputs
    return (q @ k.mT.mT.permute(*reversed(range(k.dim()))) / math.sqrt(q.shape[-1])).softmax(dim=-1)


def sdpa_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_inverted_mask(q, k, v, mask=None):
    return sdpa_ok(q, k, v, None if mask is None else ~mask)


def sdpa_zero_after_softmax(q, k, v, mask=None):
    w = weights_ok(q, k)
    if mask is not None:
        w = w * mask
    return w @ v, w


def sdpa_neg_inf(q, k, v, mask=None):  # right except for fully masked rows: NaN
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_uniform_masked_row(q, k, v, mask=None):  # finite fill but no zeroing: a fully masked row is uniform
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    w = scores.softmax(-1)
    return w @ v, w


def variance_scaled(d_k, n_samples):
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return ((q * k).sum(-1) / math.sqrt(d_k)).var().item()


def variance_uniform(d_k, n_samples):
    q, k = torch.rand(n_samples, d_k), torch.rand(n_samples, d_k)
    return (q * k).sum(-1).var().item()


def entropy_no_minus(w):
    return torch.special.xlogy(w, w).sum(-1)


def entropy_log2(w):
    return -torch.special.xlogy(w, w).sum(-1) / math.log(2)


def entropy_wrong_axis(w):
    return -torch.special.xlogy(w, w).sum(-2)


def entropy_naive_log(w):  # 0 * log 0 = NaN
    return -(w * w.log()).sum(-1)


def entropy_nan_to_zero_wrong(w):  # clamps instead: one-hot rows fine, zero rows fine, but log of clamp shifts values
    return -(w * (w + 1e-3).log()).sum(-1)


def weights_divided_by_d(q, k):
    return (q @ k.transpose(-2, -1) / q.shape[-1]).softmax(dim=-1)


def weights_times_sqrt_d(q, k):
    return (q @ k.transpose(-2, -1) * math.sqrt(q.shape[-1])).softmax(dim=-1)


def weights_d_from_axis_1(q, k):
    d_k = q.size(1)
    return torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k), dim=-1)


def weights_sigmoid(q, k):
    return torch.sigmoid(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))


def weights_scaled_after_softmax(q, k):
    return (q @ k.transpose(-2, -1)).softmax(dim=-1) / math.sqrt(q.shape[-1])


def weights_no_softmax(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def weights_sqrt_d_plus_1(q, k):  # an off-by-one in the scale
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1] + 1)).softmax(dim=-1)


def weights_softmax_dim1(q, k):  # dim=1 is the query axis for (B, T, S), the head axis for (B, H, T, S)
    return F.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=1)


def weights_transpose_1_2(q, k):  # right for (B, S, D), wrong for (B, H, S, D)
    return (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(dim=-1)


def sdpa_inverted_neg_inf(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_ignores_mask(q, k, v, mask=None):
    w = weights_ok(q, k)
    return w @ v, w


def sdpa_fill_zero(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask == 0, 0.0)
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_scores_times_mask(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_fill_minus_ten(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -10.0)
    w = scores.softmax(-1)
    return w @ v, w


def sdpa_swapped(q, k, v, mask=None):
    out, w = sdpa_ok(q, k, v, mask)
    return w, out


def sdpa_weights_at_k(q, k, v, mask=None):
    out, w = sdpa_ok(q, k, v, mask)
    return w @ k, w


def sdpa_out_without_mask(q, k, v, mask=None):
    _, w = sdpa_ok(q, k, v, mask)
    return weights_ok(q, k) @ v, w


def sdpa_finite_unscaled(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    w = scores.softmax(-1)
    if mask is not None:
        w = w.masked_fill(~mask, 0.0)
    return w @ v, w


def sdpa_finite_inverted(q, k, v, mask=None):
    return sdpa_ok(q, k, v, None if mask is None else ~mask)


def variance_std(d_k, n_samples):
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q * k).sum(-1).std().item()


def variance_mean(d_k, n_samples):
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q * k).sum(-1).mean().item()


def variance_one_component(d_k, n_samples):  # the variance of every q_i k_i, not of their sum
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q * k).var().item()


def variance_sums_product(d_k, n_samples):  # (sum q)(sum k): variance d_k^2
    q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
    return (q.sum(-1) * k.sum(-1)).var().item()


def entropy_mean(w):
    return -torch.special.xlogy(w, w).mean(-1)


def entropy_log10(w):
    return -(torch.special.xlogy(w, w) / math.log(10)).sum(-1)


def entropy_detached(w):
    return entropy_ok(w.detach())


def entropy_keepdim(w):
    return -torch.special.xlogy(w, w).sum(-1, keepdim=True)


def entropy_all(w):
    return -torch.special.xlogy(w, w).sum()


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


CASES = [
    # (check, right answer, [(wrong answer, phrase the failure must contain), ...])
    (check_attention_weights, weights_ok, [
        (weights_unscaled, "did not divide the scores by sqrt(d_k)"),
        (weights_wrong_axis, "softmax over the wrong axis"),
        (weights_divided_by_d, "divided by d_k"),
        (weights_times_sqrt_d, "multiplied by sqrt(d_k)"),
        (weights_d_from_axis_1, "read d_k from axis 1"),
        (weights_sigmoid, "you used sigmoid"),
        (weights_scaled_after_softmax, "after the softmax"),
        (weights_no_softmax, "apply softmax"),
        (weights_sqrt_d_plus_1, "a wrong scale"),
        (weights_detached, "gradients do not flow"),
        (not_implemented, "not implemented yet"),
    ]),
    (check_attention_weights_batched_heads, weights_ok, [
        (weights_d_from_axis_2, "d_k is the size of the last axis"),
        (weights_float64_constant, "expected dtype float32"),
        (weights_dot_T, "raised RuntimeError"),
        (weights_unscaled, "did not divide the scores by sqrt(d_k)"),
        (weights_softmax_dim1, "sum to 1 over axis 1"),
        (weights_divided_by_d, "divided by d_k"),
        (weights_transpose_1_2, "raised RuntimeError"),
    ]),
    (check_scaled_dot_product_attention, sdpa_ok, [
        (sdpa_unscaled, "did not divide the scores by sqrt(d_k)"),
        (sdpa_inverted_mask, "polarity is inverted"),
        (sdpa_inverted_neg_inf, "polarity is inverted"),
        (sdpa_ignores_mask, "the mask is not applied"),
        (sdpa_fill_zero, "masked scores were set to 0"),
        (sdpa_scores_times_mask, "masked scores were set to 0"),
        (sdpa_fill_minus_ten, "set to -10"),
        (sdpa_zero_after_softmax, "zeroed the masked weights after the softmax"),
        (sdpa_swapped, "wrong order"),
        (sdpa_weights_at_k, "not the keys or queries"),
        (sdpa_out_without_mask, "equals out without it"),
        (lambda q, k, v, mask=None: reference(q, k, v, mask).out, "should return a pair"),
    ]),
    (check_sdpa_fully_masked_row, sdpa_ok, [
        (sdpa_neg_inf, "NaN"),
        (sdpa_uniform_masked_row, "weights of exactly 0"),
        (sdpa_finite_inverted, "polarity is inverted"),
        (sdpa_ignores_mask, "the mask is not applied"),
        (sdpa_zero_after_softmax, "zeroed the masked weights after the softmax"),
        (sdpa_finite_unscaled, "did not divide the scores by sqrt(d_k)"),
        (sdpa_fill_zero, "masked scores were set to 0"),
    ]),
    (check_dot_product_variance, variance_ok, [
        (variance_scaled, "*unscaled* sum"),
        (variance_uniform, "not uniform"),
        (variance_std, "standard deviation"),
        (variance_mean, "mean of q . k"),
        (variance_one_component, "*unscaled* sum"),
        (variance_sums_product, "grows like d_k^2"),
        (lambda d_k, n: torch.tensor([1.0, 2.0]), "should return a float"),
    ]),
    (check_attention_entropy, entropy_ok, [
        (entropy_no_minus, "minus sign"),
        (entropy_log2, "log base 2"),
        (entropy_log10, "log base 10"),
        (entropy_mean, "averaged over the keys"),
        (entropy_wrong_axis, "sum over the keys"),
        (entropy_keepdim, "no keepdim"),
        (entropy_all, "one entropy per query"),
        (entropy_detached, "gradients do not flow"),
    ]),
    (check_attention_entropy_one_hot, entropy_ok, [
        (entropy_naive_log, "0 * log(0)"),
        (entropy_nan_to_zero_wrong, "inside the log"),
        (entropy_no_minus, "minus sign"),
        (entropy_log2, "log base 2"),
        (entropy_mean, "averaged over the keys"),
        (entropy_wrong_axis, "sum over the keys"),
    ]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(CASES)


def test_recordings_reverify_in_a_clean_verify(tmp_path, monkeypatch):
    """What a check records under the grader is exactly what verify() needs, and a wrong answer stays wrong."""
    from course_lib.checks import get_check

    monkeypatch.setenv(recorder.ENV_VAR, str(tmp_path))
    for check, right, wrongs in CASES:
        name = check.check_name
        recorder.begin("cell")
        check(right)
        recorder.end()
        c = get_check(name)
        c.verify(c.make_inputs(), recorder.load(tmp_path / f"cell__{name}.pt"))
        wrong = wrongs[0][0]
        recorder.begin("cell")
        with pytest.raises(CheckFailed):
            check(wrong)
        recorder.end()
        path = tmp_path / f"cell__{name}.pt"
        if path.exists():  # recorded before the in-kernel verify failed: must fail clean too
            with pytest.raises(CheckFailed):
                c.verify(c.make_inputs(), recorder.load(path))


def test_verify_does_not_use_patched_torch_allclose(monkeypatch):
    """The comparison in expect_close is written out; a patched torch.allclose changes nothing."""
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    with pytest.raises(CheckFailed):
        check_attention_weights(weights_unscaled)

"""Checks for assignment ch03_scaled_dot_product (chapter 3)."""

from __future__ import annotations

import math

import torch

from course_lib.attention import scaled_dot_product_attention as reference_sdpa
from course_lib.checks._core import (
    Check,
    CheckFailed,
    expect_close,
    expect_shape,
    is_close,
    randn,
    student_call,
)

# Deliberately uneven sizes so that swapped axes fail: B=3, T=5, S=7, D=6, Dv=4.
B, T, S, D, DV = 3, 5, 7, 6, 4


def _unpack(result, what: str):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"{what} should return a pair (out, weights), got {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        )
    return result


def _diagnose_weights(got: torch.Tensor, q, k, mask) -> str:
    """Name the likely mistake by recomputing the common wrong variants."""
    scores = q @ k.transpose(-2, -1)
    variants = {
        "you did not divide the scores by sqrt(d_k) (the 'Scale' box)": scores,
        "you divided by d_k; the paper divides by sqrt(d_k)": scores / D,
        "you multiplied by sqrt(d_k) instead of dividing": scores * math.sqrt(D),
    }
    for hint, sc in variants.items():
        if mask is not None:
            sc = sc.masked_fill(~mask, float("-inf"))
        if is_close(got, sc.softmax(-1)):
            return hint
    scaled = scores / math.sqrt(D)
    if mask is not None:
        if is_close(got, scaled.masked_fill(mask, torch.finfo(scaled.dtype).min).softmax(-1), atol=1e-4):
            return "the mask polarity is inverted: in course_lib True means 'may attend', so fill where the mask is False"
        if is_close(got, scaled.softmax(-1) * mask):
            return "you zeroed the masked weights after softmax; mask the scores with -inf before softmax so rows still sum to 1"
    if is_close(got, scaled.softmax(-2)):
        return "softmax over the wrong axis: normalise over the keys (the last dim), not the queries"
    return "compare your scores with q @ k.transpose(-2, -1) / sqrt(d_k) step by step"


class ScaledDotProductAttentionCheck(Check):
    """scaled_dot_product_attention(q, k, v, mask=None) -> (out, weights)."""

    name = "scaled_dot_product_attention"
    success = "shapes, normalisation, masking, values and gradients match the reference"

    def make_inputs(self):
        q, k, v = randn(B, T, D, seed=0), randn(B, S, D, seed=1), randn(B, S, DV, seed=2)
        lengths = torch.tensor([7, 4, 2])  # keys beyond each length are padding
        mask = (torch.arange(S)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, S)
        grad_out = randn(B, T, DV, seed=3)
        return {"q": q, "k": k, "v": v, "mask": mask, "grad_out": grad_out}

    def run(self, fn, inputs):
        q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs["mask"]
        out, weights = _unpack(student_call(fn, q, k, v, what="scaled_dot_product_attention(q, k, v)"), "your function")
        m_out, m_weights = _unpack(
            student_call(fn, q, k, v, mask, what="scaled_dot_product_attention(q, k, v, mask)"), "your function"
        )
        qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
        grads = None
        g_out, _ = _unpack(student_call(fn, qg, kg, vg, what="scaled_dot_product_attention"), "your function")
        if isinstance(g_out, torch.Tensor) and g_out.shape == inputs["grad_out"].shape and g_out.requires_grad:
            (g_out * inputs["grad_out"]).sum().backward()
            grads = [x.grad for x in (qg, kg, vg)]
        return {"out": out, "weights": weights, "masked_out": m_out, "masked_weights": m_weights, "grads": grads}

    def verify(self, inputs, outputs):
        q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs["mask"]
        # 1. shapes
        expect_shape(outputs["out"], (B, T, DV), "out", hint="out = weights @ v has shape (B, T, Dv)")
        expect_shape(outputs["weights"], (B, T, S), "weights", hint="one weight per (query, key) pair: (B, T, S)")
        weights = outputs["weights"].detach().double()
        # 2. behaviour
        row_sums = weights.sum(-1)
        if not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-5):
            hint = (
                "each query's weights over the keys must sum to 1; "
                + ("your columns sum to 1: softmax over the wrong axis?" if torch.allclose(weights.sum(-2), torch.ones(B, S, dtype=weights.dtype), atol=1e-5) else "did you apply softmax?")
            )
            raise CheckFailed(f"weights: rows should sum to 1, got sums like {row_sums.flatten()[:3].tolist()}\nHint: {hint}")
        m_weights = expect_shape(outputs["masked_weights"], (B, T, S), "weights with a mask").detach().double()
        leaked = m_weights.masked_fill(mask, 0.0).abs().max()
        if leaked > 1e-6:
            raise CheckFailed(
                f"weights with a mask: masked keys (mask False) must get weight exactly 0, got up to {float(leaked):.3g}\n"
                f"Hint: {_diagnose_weights(m_weights, q, k, mask)}"
            )
        # 3. values
        ref_out, ref_weights = reference_sdpa(q, k, v)
        expect_close(weights, ref_weights, "weights", hint=_diagnose_weights(weights, q, k, None))
        expect_close(outputs["out"], ref_out, "out", hint="out is weights @ v")
        ref_m_out, ref_m_weights = reference_sdpa(q, k, v, mask)
        expect_close(m_weights, ref_m_weights, "weights with a mask", hint=_diagnose_weights(m_weights, q, k, mask))
        expect_close(outputs["masked_out"], ref_m_out, "out with a mask")
        # 4. gradients
        if outputs["grads"] is None:
            raise CheckFailed(
                "gradients do not flow: your output does not require grad when q, k, v do.\n"
                "Hint: use torch operations only (no .detach(), .numpy() or torch.no_grad())."
            )
        qg, kg, vg = (x.clone().requires_grad_(True) for x in (q, k, v))
        (reference_sdpa(qg, kg, vg).out * inputs["grad_out"]).sum().backward()
        for name, got, ref in zip("qkv", outputs["grads"], (qg.grad, kg.grad, vg.grad)):
            if got is None:
                raise CheckFailed(f"no gradient reached {name}: is it used through a detached copy?")
            expect_close(got, ref, f"gradient with respect to {name}")


class DotProductVarianceCheck(Check):
    """dot_product_variance(d_k, n_samples) -> float: Var[q . k] for q, k ~ N(0, I_{d_k})."""

    name = "dot_product_variance"
    success = "Var[q . k] grows like d_k, which is why the scores are divided by sqrt(d_k)"
    dims = (4, 16, 64, 256)

    def make_inputs(self):
        return {"dims": list(self.dims), "n_samples": 20000}

    def run(self, fn, inputs):
        torch.manual_seed(0)
        values = []
        for d_k in inputs["dims"]:
            v = student_call(fn, d_k, inputs["n_samples"], what=f"dot_product_variance({d_k}, {inputs['n_samples']})")
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            values.append(v)
        return {"values": values}

    def verify(self, inputs, outputs):
        values = outputs["values"]
        if not isinstance(values, list) or len(values) != len(inputs["dims"]):
            raise CheckFailed(f"expected one variance per d_k in {inputs['dims']}, got {values!r:.100}")
        for d_k, v in zip(inputs["dims"], values):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise CheckFailed(f"dot_product_variance({d_k}) should return a float, got {v!r:.60}")
            ratio = v / d_k
            if 0.85 <= ratio <= 1.15:
                continue
            if 0.7 <= v <= 1.3:
                hint = "your variance stays near 1: you measured the *scaled* product q.k / sqrt(d_k); measure q.k itself"
            elif 0.03 <= ratio <= 0.07:
                hint = "components should be standard normal (torch.randn), not uniform on [0, 1) (torch.rand)"
            elif 0.85 <= v / d_k**2 <= 1.15:
                hint = "you seem to have computed a variance that grows like d_k^2: the variance of a sum of d_k independent unit-variance products is d_k"
            else:
                hint = "draw n_samples pairs q, k of shape (n_samples, d_k), take (q * k).sum(-1), and return its variance"
            raise CheckFailed(f"dot_product_variance({d_k}): expected about {d_k} (= d_k), got {v:.4g}\nHint: {hint}")


check_scaled_dot_product_attention = ScaledDotProductAttentionCheck().as_function()
check_dot_product_variance = DotProductVarianceCheck().as_function()

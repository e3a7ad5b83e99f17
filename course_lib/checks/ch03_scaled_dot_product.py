"""Checks for assignment ch03_scaled_dot_product (chapter 3).

Visible checks (called from the exercise's test cells):
    check_attention_weights            part (a): softmax(q k^T / sqrt(d_k))
    check_scaled_dot_product_attention part (b): (out, weights) with an optional mask
    check_dot_product_variance         part (c): Var[q . k] grows like d_k
    check_attention_entropy            part (d): entropy of each row of weights
Hidden checks (stripped from exercises/, run by the grader):
    check_attention_weights_batched_heads   4-D (B, H, T, D) float32 inputs of other sizes
    check_sdpa_fully_masked_row             a query with no visible key: zeros, not NaN (other sizes)
    check_attention_entropy_one_hot         0 log 0 = 0: one-hot and all-zero rows (another layout)
Every requirement the instructions state is also tested by the part's visible check (issue 27);
the hidden ones only try other sizes and numbers, so that an answer fitted to the visible inputs fails.
"""

from __future__ import annotations

import math

import torch

from course_lib.attention import scaled_dot_product_attention as reference_sdpa
from course_lib.checks._core import (
    Check,
    CheckFailed,
    as_number,
    backward_grads,
    diagnose_mask,
    expect_close,
    expect_grads,
    expect_not_swapped,
    expect_shape,
    fit_scale,
    is_close,
    is_finite_number,
    leaf_copies,
    normalised_axis,
    randn,
    student_call,
)

# Deliberately uneven sizes so that swapped axes fail: B=3, H=2, T=5, S=7, D=6, Dv=4.
B, H, T, S, D, DV = 3, 2, 5, 7, 6, 4
# The hidden checks' sizes: the visible checks test every stated requirement; these only catch answers fitted to them.
B2, H2, T2, S2, D2, DV2 = 2, 4, 3, 9, 8, 5


def _unpack(result, what: str):
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise CheckFailed(
            f"{what} should return a pair (out, weights), got {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
        )
    return result


def _masked_softmax(scores: torch.Tensor, mask) -> torch.Tensor:
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1).nan_to_num(0.0)  # a fully masked row: zeros


def _scale_hint(c: float, q: torch.Tensor) -> str:
    """Name the scale factor c a learner's weights used (softmax(c * q k^T))."""
    d = q.shape[-1]
    named = [
        (1.0, "you did not divide the scores by sqrt(d_k) (the 'Scale' box)"),
        (1 / d, "you divided by d_k; the paper divides by sqrt(d_k)"),
        (math.sqrt(d), "you multiplied by sqrt(d_k) instead of dividing"),
    ]
    for axis in range(q.dim() - 1):
        if q.shape[axis] != d:
            named.append((1 / math.sqrt(q.shape[axis]), f"you read d_k from axis {axis} (size {q.shape[axis]}); d_k is the size of the last axis, q.shape[-1]"))
    for value, hint in named:
        if abs(c - value) <= 1e-4 * abs(value):
            return hint
    return f"your weights are softmax(c * q k^T) with c = {c:.4g}: a wrong scale; it must be 1 / sqrt(d_k) = {1 / math.sqrt(d):.4g} (d_k = q.shape[-1] = {d})"


def _diagnose_weights(got: torch.Tensor, q, k, mask) -> str | None:
    """Name the mistake behind wrong weights by what they do; None when nothing specific matches."""
    got = got.detach().double()
    if tuple(got.shape) != tuple(q.shape[:-1]) + (k.shape[-2],):
        return None
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1)
    scaled = scores / math.sqrt(d)
    if mask is not None:
        hint = diagnose_mask(got, mask, scores=scaled, ref_unmasked=scaled.softmax(-1))
        if hint:
            return hint
        candidates = [1.0, 1 / d, math.sqrt(d)] + [1 / math.sqrt(q.shape[a]) for a in range(q.dim() - 1)]
        for c in candidates:
            if is_close(got, _masked_softmax(c * scores, mask), atol=1e-4):
                return _scale_hint(c, q)
    else:
        c = fit_scale(got, scores)
        if c is not None:
            return _scale_hint(c, q)
    axis = normalised_axis(got)
    if axis is not None:
        return (f"softmax over the wrong axis: your weights sum to 1 over axis {axis} (size {got.shape[axis]}); "
                "normalise over the keys (the last dim), not the queries")
    if is_close(got, scaled.masked_fill(~mask, 0.0) if mask is not None else scaled):
        return "these are the scaled scores: apply softmax over the keys to turn them into weights"
    if is_close(got, torch.sigmoid(scaled)):
        return "you used sigmoid: the weights are a softmax over the keys, so each row sums to 1"
    sums = got.sum(-1)
    if bool(((sums - sums.flatten()[0]).abs() < 1e-6).all()) and abs(float(sums.flatten()[0]) - 1) > 1e-3:
        c = float(sums.flatten()[0])
        if is_close(got / c, _masked_softmax(scaled, mask)) or is_close(got / c, _masked_softmax(scores, mask)):
            return f"every row sums to {c:.4g}: you scaled the weights after the softmax; divide the scores by sqrt(d_k) before it"
    return None


def _expect_weights(weights: torch.Tensor, q, k, mask, ref: torch.Tensor, what: str) -> None:
    """Specific diagnoses first, then the generic rows-sum-to-1 test, then the values."""
    hint = _diagnose_weights(weights, q, k, mask)
    w = weights.detach().double()
    if mask is None:
        sums = w.sum(-1)
        if not bool(torch.isfinite(w).all()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            raise CheckFailed(f"{what}: rows should sum to 1, got sums like {[round(float(x), 4) for x in sums.flatten()[:3]]}\n"
                              f"Hint: {hint or 'each query needs a softmax over the keys (the last axis)'}")
    else:
        leaked = w.masked_fill(mask, 0.0).abs().nan_to_num(1.0).max()
        if leaked > 1e-6:
            raise CheckFailed(f"{what}: masked keys (mask False) must get weight exactly 0, got up to {float(leaked):.3g}\n"
                              f"Hint: {hint or 'fill the scores of masked keys with -inf before the softmax'}")
    expect_close(weights, ref, what, hint=hint or "", axes="B T S" if weights.dim() == 3 else "B H T S")


class ScaledDotProductAttentionCheck(Check):
    """scaled_dot_product_attention(q, k, v, mask=None) -> (out, weights)."""

    name = "scaled_dot_product_attention"
    reference = staticmethod(reference_sdpa)  # timed only when an answer is slow (the slow note)
    success = ("shapes, normalisation, masking (a fully masked row too), values and gradients match the reference "
               "(the grader also tries other inputs)")

    def make_inputs(self):
        q, k, v = randn(B, T, D, seed=0), randn(B, S, D, seed=1), randn(B, S, DV, seed=2)
        lengths = torch.tensor([7, 4, 2])  # keys beyond each length are padding
        mask = (torch.arange(S)[None, :] < lengths[:, None])[:, None, :]  # (B, 1, S)
        grad_out = randn(B, T, DV, seed=3)
        # the instructions: a query that may see no key gets weights 0 and output 0, never NaN (4-D, float32)
        fm = {n: randn(B, H, L, Dn, seed=4 + i, dtype=torch.float32) for i, (n, L, Dn) in enumerate((("q", T, D), ("k", S, D), ("v", S, DV)))}
        fm_mask = (torch.arange(S)[None, :] < torch.tensor([6, 2, 7])[:, None])[:, None, None, :].expand(B, 1, T, S).clone()
        fm_mask[1, 0, 2, :] = False  # query 2 of example 1 may attend to nothing (the grader's hidden test puts it elsewhere)
        return {"q": q, "k": k, "v": v, "mask": mask, "grad_out": grad_out, "fully_masked": {**fm, "mask": fm_mask}}

    def run(self, fn, inputs):
        q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs["mask"]
        out, weights = _unpack(student_call(fn, q, k, v, what="scaled_dot_product_attention(q, k, v)"), "your function")
        m_out, m_weights = _unpack(
            student_call(fn, q, k, v, mask, what="scaled_dot_product_attention(q, k, v, mask)"), "your function"
        )
        qg, kg, vg = leaf_copies(q, k, v)
        g_out, _ = _unpack(student_call(fn, qg, kg, vg, what="scaled_dot_product_attention"), "your function")
        grads = backward_grads(g_out, (qg, kg, vg), inputs["grad_out"])
        outputs = {"out": out, "weights": weights, "masked_out": m_out, "masked_weights": m_weights, "grads": grads}
        if "fully_masked" in inputs:
            outputs["fully_masked"] = SdpaFullyMaskedRowCheck.run(self, fn, inputs["fully_masked"])
        return outputs

    def verify(self, inputs, outputs):
        q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs["mask"]
        ref_out, ref_weights = reference_sdpa(q, k, v)
        # 1. shapes
        expect_not_swapped(outputs, "out", "weights", ref_out, ref_weights, "out, weights")
        _expect_out_shape(outputs["out"], (B, T, DV), "out")
        expect_shape(outputs["weights"], (B, T, S), "weights", hint="one weight per (query, key) pair: (B, T, S)")
        # 2. behaviour and 3. values, specific diagnoses before the generic tests
        _expect_weights(outputs["weights"], q, k, None, ref_weights, "weights")
        expect_close(outputs["out"], ref_out, "out", hint=_out_hint(outputs["out"], outputs["weights"], v), axes="B T Dv")
        ref_m_out, ref_m_weights = reference_sdpa(q, k, v, mask)
        expect_shape(outputs["masked_weights"], (B, T, S), "weights with a mask")
        _expect_weights(outputs["masked_weights"], q, k, mask, ref_m_weights, "weights with a mask")
        expect_close(outputs["masked_out"], ref_m_out, "out with a mask", hint=_out_hint(outputs["masked_out"], None, v, mask, q, k), axes="B T Dv")
        # 4. gradients
        qg, kg, vg = leaf_copies(q, k, v)
        (reference_sdpa(qg, kg, vg).out * inputs["grad_out"]).sum().backward()
        expect_grads(outputs["grads"], (qg.grad, kg.grad, vg.grad), "qkv", "scaled_dot_product_attention")
        if "fully_masked" in inputs:  # the same tests as the grader's, on other numbers
            SdpaFullyMaskedRowCheck.verify(self, inputs["fully_masked"], outputs["fully_masked"])


def _expect_out_shape(out, shape, what):
    if isinstance(out, torch.Tensor) and out.dim() == len(shape) and tuple(out.shape[:-1]) == tuple(shape[:-1]) and out.shape[-1] == D != shape[-1]:
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {tuple(out.shape)}: {D} features, the size of q and k\n"
                          "Hint: out = weights @ v: the output mixes the values v (Dv features), not the keys or queries")
    expect_shape(out, shape, what, hint="out = weights @ v has shape (..., T, Dv)")


def _out_hint(out, weights, v, mask=None, q=None, k=None) -> str:
    """out is wrong although the weights were right: name what it was computed from."""
    if isinstance(out, torch.Tensor) and mask is not None and is_close(out, reference_sdpa(q, k, v).out):
        return "out with a mask equals out without it: compute out from the masked weights"
    return "out = weights @ v, with the same weights you return"


class DotProductVarianceCheck(Check):
    """dot_product_variance(d_k, n_samples) -> float: Var[q . k] for q, k ~ N(0, I_{d_k})."""

    name = "dot_product_variance"
    success = "Var[q . k] grows like d_k, which is why the scores are divided by sqrt(d_k)"
    dims = (4, 16, 64, 256)

    def make_inputs(self):
        return {"dims": list(self.dims), "n_samples": 20000}

    def vary_inputs(self, inputs, g):  # other dimensions, another sample count
        dims = sorted({int(d) for d in torch.randint(3, 300, (len(self.dims),), generator=g)} | {int(torch.randint(3, 9, (1,), generator=g))})
        return {"dims": dims, "n_samples": int(torch.randint(18000, 26000, (1,), generator=g)), "torch_seed": int(torch.randint(1, 2**31, (1,), generator=g))}

    def run(self, fn, inputs):
        torch.manual_seed(inputs.get("torch_seed", 0))
        values, kinds = [], []
        for d_k in inputs["dims"]:
            v = student_call(fn, d_k, inputs["n_samples"], what=f"dot_product_variance({d_k}, {inputs['n_samples']})")
            kinds.append(type(v).__name__)
            values.append(as_number(v))
        # a measurement varies with the random numbers and the sample count; a closed form does not (issue 26)
        d0, probes = inputs["dims"][0], []
        for seed, n in ((1, inputs["n_samples"]), (2, inputs["n_samples"]), (3, 500), (4, 2000)):
            torch.manual_seed(inputs.get("torch_seed", 0) + seed)
            probes.append(as_number(student_call(fn, d0, n, what=f"dot_product_variance({d0}, {n})")))
        return {"values": values, "probes": probes, "types": kinds}

    def verify(self, inputs, outputs):
        values = outputs["values"]
        if not isinstance(values, list) or len(values) != len(inputs["dims"]):
            raise CheckFailed(f"expected one variance per d_k in {inputs['dims']}, got {values!r:.100}")
        for d_k, v in zip(inputs["dims"], values):
            if not is_finite_number(v):
                raise CheckFailed(f"dot_product_variance({d_k}) should return a float, got {v!r:.60}")
            ratio = v / d_k
            if 0.85 <= ratio <= 1.15:
                continue
            if 0.7 <= v <= 1.3:
                hint = ("your variance stays near 1 instead of growing with d_k: measure the *unscaled* sum "
                        "q . k = sum over all d_k components of q_i k_i (not divided by sqrt(d_k), not a single component)")
            elif 0.03 <= ratio <= 0.07:
                hint = "components should be standard normal (torch.randn), not uniform on [0, 1) (torch.rand)"
            elif abs(v) < 5 * math.sqrt(d_k / inputs["n_samples"]):
                hint = "your value is near 0: that is the mean of q . k; return its variance (torch.var)"
            elif 0.85 <= v / math.sqrt(d_k) <= 1.15:
                hint = "your value grows like sqrt(d_k): that is the standard deviation; return the variance (its square)"
            elif 0.85 <= v / d_k**2 <= 1.15:
                hint = "you seem to have computed a variance that grows like d_k^2: the variance of a sum of d_k independent unit-variance products is d_k"
            else:
                hint = f"your value is {ratio:.3g} times d_k; draw n_samples pairs q, k of shape (n_samples, d_k), take (q * k).sum(-1), and return its variance"
            raise CheckFailed(f"dot_product_variance({d_k}): expected about {d_k} (= d_k), got {v:.4g}\nHint: {hint}")
        _expect_a_measurement(inputs, outputs)


def _expect_a_measurement(inputs, outputs) -> None:
    """The exercise asks to *measure* Var[q . k]: a Python float that changes with the random draws or
    the sample count, not the closed form d_k returned as a constant (issue 26)."""
    kinds = outputs.get("types") or []
    if "Tensor" in kinds:
        raise CheckFailed(f"dot_product_variance should return a Python float, got a torch.Tensor\n"
                          "Hint: turn the one-element tensor into a number with .item() (or float(...))")
    probes = outputs.get("probes")
    if isinstance(probes, list) and len(probes) == 4 and all(is_finite_number(p) for p in probes) and len(set(probes)) == 1:
        d0 = inputs["dims"][0]
        closed = " (exactly d_k, the closed form)" if probes[0] == d0 else ""
        raise CheckFailed(f"dot_product_variance({d0}, n) returned {probes[0]!r}{closed} for two random seeds and for "
                          "n_samples = 500, 2000 and " f"{inputs['n_samples']}: the same value every time\n"
                          "Hint: the exercise asks for a measurement: draw n_samples random pairs q, k, compute their dot products "
                          "and return the variance you observe, which changes a little with the draws and the sample count")


def _reference_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return reference_sdpa(q, k, k[..., :1]).weights  # v is irrelevant to the weights


def _expect_rows_sum_to_one(weights: torch.Tensor, what: str) -> None:
    row_sums = weights.sum(-1)
    if bool(((row_sums - 1).abs() > 1e-5).any()):
        columns = weights.sum(-2)
        hint = (
            "your columns sum to 1: softmax over the wrong axis? Normalise over the keys (dim=-1)"
            if bool(((columns - 1).abs() <= 1e-5).all())
            else "did you apply softmax to the scores?"
        )
        raise CheckFailed(f"{what}: each row should sum to 1, got sums like {row_sums.flatten()[:3].tolist()}\nHint: {hint}")


def _weights_and_grads(fn, q, k, grad_w, what: str) -> dict:
    """Call fn(q, k) twice: once plainly, once on leaf copies to backpropagate grad_w."""
    weights = student_call(fn, q, k, what=what)
    qg, kg = leaf_copies(q, k)
    w = student_call(fn, qg, kg, what=what)
    return {"weights": weights, "grads": backward_grads(w, (qg, kg), grad_w)}


class AttentionWeightsCheck(Check):
    """attention_weights(q, k) -> weights = softmax(q k^T / sqrt(d_k)) over the keys."""

    name = "attention_weights"
    reference = staticmethod(_reference_weights)  # timed only when an answer is slow (the slow note)
    success = ("weights have the right shape, rows sum to 1, values and gradients match softmax(q k^T / sqrt(d_k)), "
               "also for (B, H, T, D) float32 inputs (the grader also tries other inputs)")

    def make_inputs(self):
        return {"q": randn(B, T, D, seed=10), "k": randn(B, S, D, seed=11), "grad_w": randn(B, T, S, seed=12),
                # the instructions: any leading axes, float32 in, float32 out
                "heads": {"q": randn(B, H, T, D, seed=13, dtype=torch.float32), "k": randn(B, H, S, D, seed=14, dtype=torch.float32)}}

    def run(self, fn, inputs):
        outputs = _weights_and_grads(fn, inputs["q"], inputs["k"], inputs["grad_w"], "attention_weights(q, k)")
        if "heads" in inputs:
            outputs["heads"] = AttentionWeightsBatchedHeadsCheck.run(self, fn, inputs["heads"])
        return outputs

    def verify(self, inputs, outputs):
        q, k = inputs["q"], inputs["k"]
        # 1. shapes
        weights = expect_shape(
            outputs["weights"], (B, T, S), "weights",
            hint="one weight per (query, key) pair: q (B, T, D) @ k^T (B, D, S) -> (B, T, S); transpose the last two axes of k",
        )
        # 2. behaviour and 3. values (specific diagnoses first)
        _expect_weights(weights, q, k, None, _reference_weights(q, k), "weights")
        # 4. gradients
        qg, kg = leaf_copies(q, k)
        (_reference_weights(qg, kg) * inputs["grad_w"]).sum().backward()
        expect_grads(outputs["grads"], (qg.grad, kg.grad), "qk", "attention_weights")
        if "heads" in inputs:  # (B, H, T, D) float32: the same tests as the grader's, on other numbers
            AttentionWeightsBatchedHeadsCheck.verify(self, inputs["heads"], outputs["heads"])


class AttentionWeightsBatchedHeadsCheck(Check):
    """Hidden: attention_weights on 4-D (B, H, T, D) float32 inputs keeps shape and dtype."""

    name = "attention_weights_batched_heads"
    success = "works on (B, H, T, D) float32 inputs of other sizes"

    def make_inputs(self):
        return {"q": randn(B2, H2, T2, D2, seed=20, dtype=torch.float32), "k": randn(B2, H2, S2, D2, seed=21, dtype=torch.float32)}

    def run(self, fn, inputs):
        return {"weights": student_call(fn, inputs["q"], inputs["k"], what="attention_weights(q, k) with q (B, H, T, D)")}

    def verify(self, inputs, outputs):
        q, k = inputs["q"], inputs["k"]
        weights = expect_shape(
            outputs["weights"], tuple(q.shape[:-1]) + (k.shape[-2],), "weights for 4-D inputs",
            hint="transpose only the last two axes of k (k.transpose(-2, -1)); k.T reverses every axis",
        )
        if weights.dtype != torch.float32:
            raise CheckFailed(
                f"weights for float32 inputs: expected dtype float32, got {weights.dtype}\n"
                "Hint: keep computing in the inputs' dtype: no .double(), no float64 tensors mixed in; scale by a Python float"
            )
        q64, k64 = q.double(), k.double()
        _expect_weights(weights, q64, k64, None, _reference_weights(q64, k64), "weights for 4-D inputs")


class SdpaFullyMaskedRowCheck(Check):
    """Hidden: a query whose keys are all masked gets weights 0 and output 0 (not NaN), 4-D float32."""

    name = "sdpa_fully_masked_row"
    success = "a fully masked row gives zeros, not NaN, on (B, H, T, D) float32 inputs of other sizes"

    def make_inputs(self):
        q = randn(B2, H2, T2, D2, seed=30, dtype=torch.float32)
        k = randn(B2, H2, S2, D2, seed=31, dtype=torch.float32)
        v = randn(B2, H2, S2, DV2, seed=32, dtype=torch.float32)
        lengths = torch.tensor([9, 4])
        mask = (torch.arange(S2)[None, :] < lengths[:, None])[:, None, None, :].expand(B2, 1, T2, S2).clone()  # (B, 1, T, S)
        mask[1, 0, 1, :] = False  # query 1 of example 1 may attend to nothing
        return {"q": q, "k": k, "v": v, "mask": mask}

    def run(self, fn, inputs):
        result = student_call(fn, inputs["q"], inputs["k"], inputs["v"], inputs["mask"],
                              what="scaled_dot_product_attention(q, k, v, mask) with a fully masked row")
        out, weights = _unpack(result, "your function")
        return {"out": out, "weights": weights}

    def verify(self, inputs, outputs):
        q, k, v, mask = (inputs[n] for n in ("q", "k", "v", "mask"))
        out = expect_shape(outputs["out"], tuple(q.shape[:-1]) + (v.shape[-1],), "out for 4-D inputs", hint="out = weights @ v: (B, H, T, Dv)")
        weights = expect_shape(outputs["weights"], tuple(q.shape[:-1]) + (k.shape[-2],), "weights for 4-D inputs")
        nan_hint = (
            "softmax of a row where every score is -inf is 0/0 = NaN. Mask with a very negative finite number "
            "(torch.finfo(scores.dtype).min) and set the masked weights to 0 after softmax"
        )
        q64, k64 = q.double(), k.double()
        scaled = q64 @ k64.transpose(-2, -1) / math.sqrt(q.shape[-1])
        specific = diagnose_mask(weights, mask, scores=scaled, ref_unmasked=scaled.softmax(-1))
        if specific and "NaN rows are exactly" not in specific:
            raise CheckFailed(f"weights with a mask (4-D): masked keys must get weight 0\nHint: {specific}")
        if not bool(torch.isfinite(weights).all()) or not bool(torch.isfinite(out).all()):
            raise CheckFailed("a query whose keys are all masked: expected weights 0 and output 0, got NaN or inf\nHint: " + nan_hint)
        row = weights.detach().double()[(~mask.any(-1)).expand(weights.shape[:-1])]  # every fully masked row
        if float(row.abs().max()) > 1e-6:
            raise CheckFailed(
                f"a query whose keys are all masked: expected weights of exactly 0, got up to {float(row.abs().max()):.3g} "
                "(a uniform row spreads attention over keys that must not be seen)\nHint: zero the masked weights after softmax"
            )
        ref = reference_sdpa(q.double(), k.double(), v.double(), mask)
        expect_close(weights, ref.weights, "weights with a mask (4-D)", hint=_diagnose_weights(weights, q64, k64, mask) or "", axes="B H T S")
        expect_close(out, ref.out, "out with a mask (4-D)", hint="out = weights @ v")
        for name, x in (("out", out), ("weights", weights)):
            if x.dtype != torch.float32:
                raise CheckFailed(f"{name} for float32 inputs: expected dtype float32, got {x.dtype}\nHint: avoid float64 constants")


def _entropy_hint(h, w, ref) -> str:
    """Name an entropy mistake by the factor between the learner's values and the reference."""
    got = h.detach().double()
    factors = {
        -1.0: "your entropy is negative: H = -sum w log w (mind the minus sign)",
        1 / math.log(2): "you used log base 2; use the natural logarithm (nats)",
        1 / math.log(10): "you used log base 10; use the natural logarithm (nats)",
        1 / w.shape[-1]: "you averaged over the keys (mean); the entropy is a sum over the keys",
        -1 / w.shape[-1]: "you averaged over the keys (mean) and lost the minus sign: H = -sum w log w",
    }
    for c, hint in factors.items():
        if is_close(got, c * ref):
            return hint
    one_hot = (w == 1).any(-1)
    if bool(one_hot.any()) and bool(torch.isfinite(got).all()):
        vals = got[one_hot].abs()
        if 0 < float(vals.max()) < 0.05:
            return (f"a one-hot row should have entropy exactly 0, yours has {float(vals.max()):.3g}: an eps inside the log "
                    "(log(w + eps)) shifts every term; use torch.special.xlogy(w, w), or treat w = 0 terms as 0")
    if bool((got > math.log(w.shape[-1]) + 1e-6).any()):
        return f"an entropy above log(S) = {math.log(w.shape[-1]):.3f} is impossible for weights that sum to 1"
    return ""


def _reference_entropy(weights: torch.Tensor) -> torch.Tensor:
    return -torch.special.xlogy(weights, weights).sum(-1)


class AttentionEntropyCheck(Check):
    """attention_entropy(weights) -> the entropy (in nats) of each query's weights, shape (..., T)."""

    name = "attention_entropy"
    reference = staticmethod(_reference_entropy)  # timed only when an answer is slow (the slow note)
    success = "entropy per query matches -sum_s w log w, with 0 log 0 = 0 (the grader also tries other inputs)"

    def make_inputs(self):
        scores = randn(B, T, S, seed=40) * 2.0
        # the instructions: 0 log 0 counts as 0, so one-hot rows and a mask's all-zero rows are legal (here 4-D)
        zeros = randn(2, 2, 3, 5, seed=42).softmax(-1)
        zeros[0, 0, 1] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0], dtype=zeros.dtype)  # one-hot
        zeros[1, 1, 0] = 0.0  # a fully masked query
        zeros[1, 0, 2] = torch.tensor([0.0, 0.25, 0.0, 0.75, 0.0], dtype=zeros.dtype)
        return {"weights": scores.softmax(-1), "grad_h": randn(B, T, seed=41), "with_zeros": {"weights": zeros}}

    def run(self, fn, inputs):
        h = student_call(fn, inputs["weights"], what="attention_entropy(weights)")
        wg = inputs["weights"].clone().requires_grad_(True)
        hg = student_call(fn, wg, what="attention_entropy(weights)")
        outputs = {"entropy": h, "grads": backward_grads(hg, (wg,), inputs["grad_h"])}
        if "with_zeros" in inputs:
            outputs["with_zeros"] = AttentionEntropyOneHotCheck.run(self, fn, inputs["with_zeros"])
        return outputs

    def verify(self, inputs, outputs):
        w = inputs["weights"]
        h = expect_shape(outputs["entropy"], (B, T), "entropy",
                         hint="one entropy per query: sum over the keys, the last axis (dim=-1, no keepdim), and keep the other axes")
        ref = _reference_entropy(w)
        hint = _entropy_hint(h, w, ref)
        expect_close(h, ref, "entropy", hint=hint)
        wg = w.clone().requires_grad_(True)
        (_reference_entropy(wg) * inputs["grad_h"]).sum().backward()
        expect_grads(outputs["grads"], (wg.grad,), ["weights"], "attention_entropy")
        if "with_zeros" in inputs:  # the same tests as the grader's, on other rows
            AttentionEntropyOneHotCheck.verify(self, inputs["with_zeros"], outputs["with_zeros"])


class AttentionEntropyOneHotCheck(Check):
    """Hidden: 0 log 0 counts as 0, so one-hot rows and all-zero (fully masked) rows have entropy 0."""

    name = "attention_entropy_one_hot"
    success = "one-hot and all-zero rows have entropy 0, not NaN"

    def make_inputs(self):
        w = torch.zeros(2, 3, 4, dtype=torch.float64)
        w[0, :, 1] = 1.0  # one-hot rows: all attention on key 1
        w[1, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
        # w[1, 1] and w[1, 2] stay all-zero: a fully masked query
        return {"weights": w}

    def vary_inputs(self, inputs, g):  # the same rows, keys in another order
        return {"weights": inputs["weights"][..., torch.randperm(4, generator=g)].contiguous()}

    def run(self, fn, inputs):
        return {"entropy": student_call(fn, inputs["weights"], what="attention_entropy(weights) with zeros in the weights")}

    def verify(self, inputs, outputs):
        h = expect_shape(outputs["entropy"], tuple(inputs["weights"].shape[:-1]), "entropy of rows with zeros",
                         hint="one entropy per query: sum over the keys, the last axis (dim=-1, no keepdim)")
        if not bool(torch.isfinite(h).all()):
            raise CheckFailed(
                "entropy of rows containing zero weights: got NaN or inf\n"
                "Hint: 0 * log(0) is 0 * -inf = NaN in floating point; the limit is 0, so treat those terms as 0"
            )
        ref = _reference_entropy(inputs["weights"])
        expect_close(h, ref, "entropy of rows with zeros",
                     hint=_entropy_hint(h, inputs["weights"], ref) or "a one-hot row has entropy 0; a row (0.5, 0.5, 0, 0) has entropy log 2")


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402


def _sizes(env):
    return {"d_k": env["q"].shape[-1], **({"d_v": env["v"].shape[-1]} if "v" in env else {})}


_LEGEND = {"B": "batch", "H": "head", "T": "query", "S": "key", "Dv": "value feature"}
_WEIGHTS = [
    step("scores", "matmul_t", "q", "k", what="the scores q k^T", axes="B T S"),
    step("scaled", "scale", "scores", scale=("d_k", -0.5), what="the scale", axes="B T S"),
    step("weights", "softmax", "scaled", dim=-1, axes="B T S"),
]
WEIGHTS_STEPS = Program(_WEIGHTS, ("weights",), sizes=_sizes, legend=_LEGEND)
SDPA_STEPS = Program(_WEIGHTS + [step("out", "matmul", "weights", "v", what="weights @ v", axes="B T Dv")], ("out", "weights"),
                     sizes=_sizes, legend=_LEGEND)
SDPA_MASKED_STEPS = Program(
    _WEIGHTS[:2] + [step("masked", "mask", "scaled", "mask", fn=lambda x, m: x.masked_fill(~m, torch.finfo(x.dtype).min), what="the mask", axes="B T S"),
                    step("softmaxed", "softmax", "masked", dim=-1, axes="B T S"),
                    step("weights", "mul", "softmaxed", "mask", what="zeroing the masked weights after the softmax", axes="B T S"),
                    step("out", "matmul", "weights", "v", what="weights @ v", axes="B T Dv")],
    ("out", "weights"), sizes=_sizes, legend=_LEGEND, names={"mask": "the mask"})
ENTROPY_STEPS = Program(
    [step("plogp", "xlogy", "weights", fn=lambda w: torch.special.xlogy(w, w), what="w log w", axes="B T S"),
     step("total", "sum", "plogp", dim=-1, what="the sum over the keys", axes="B T"),
     step("entropy", "neg", "total", fn=torch.neg, what="the minus sign", axes="B T")],
    ("entropy",), legend=_LEGEND, axes={"weights": "B T S"})


def _cases_sdpa(self, inputs, outputs):
    cases = [(SDPA_STEPS, inputs, {"out": outputs.get("out"), "weights": outputs.get("weights")})]
    if "masked_out" in outputs:
        cases.append((SDPA_MASKED_STEPS, inputs, {"out": outputs.get("masked_out"), "weights": outputs.get("masked_weights")}))
    return cases


ScaledDotProductAttentionCheck.mutation_cases = _cases_sdpa
SdpaFullyMaskedRowCheck.steps = SDPA_MASKED_STEPS
AttentionWeightsCheck.steps = WEIGHTS_STEPS
AttentionWeightsBatchedHeadsCheck.steps = WEIGHTS_STEPS
AttentionEntropyCheck.steps = ENTROPY_STEPS
AttentionEntropyOneHotCheck.steps = ENTROPY_STEPS


check_attention_weights = AttentionWeightsCheck().as_function()
check_scaled_dot_product_attention = ScaledDotProductAttentionCheck().as_function()
check_dot_product_variance = DotProductVarianceCheck().as_function()
check_attention_entropy = AttentionEntropyCheck().as_function()
check_attention_weights_batched_heads = AttentionWeightsBatchedHeadsCheck().as_function()
check_sdpa_fully_masked_row = SdpaFullyMaskedRowCheck().as_function()
check_attention_entropy_one_hot = AttentionEntropyOneHotCheck().as_function()

"""Checks for assignment ch02_qkv (chapter 2: query, key, value).

Parts:
    (a) qkv_projections(x, W_q, W_k, W_v) -> (q, k, v)          Q = X W^Q, K = X W^K, V = X W^V
    (b) self_attention(x, W_q, W_k, W_v) -> (out, weights)       softmax(q k^T) v, q, k, v all from x
    (c) cosine_scores(q, k) -> scores                             q . k / (|q| |k|)
    (d) cross_attention(x_dec, x_enc, W_q, W_k, W_v) -> (out, weights)   queries from x_dec, keys/values from x_enc

Chapter 2's attention uses the plain dot product; chapter 3 adds the 1/sqrt(d_k) scale.

Dimension legend: B batch, T query length, S key length, C input features,
Dk query/key size, Dv value size.
"""

from __future__ import annotations

import math

import torch

from course_lib.checks._core import (
    Check,
    CheckFailed,
    backward_grads,
    expect_close,
    expect_grads,
    expect_not_swapped,
    expect_shape,
    expect_tuple,
    fit_scale,
    is_close,
    leaf_copies,
    randn,
    student_call,
)

# Deliberately uneven sizes so that swapped axes fail.
B, T, S, C, DK, DV = 3, 5, 7, 6, 4, 8


def _attend(q, k, v):
    weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)  # (..., T, S)
    return weights @ v, weights


def _expect_rows_sum_to_one(weights: torch.Tensor, what: str) -> None:
    sums = weights.sum(-1)
    if torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        return
    if weights.shape[-2] == 1 and bool(((weights - 1).abs() < 1e-6).all()):
        hint = "every weight is 1: a softmax over an axis of size 1 (here the queries, T = 1); normalise over the keys, the last axis"
    elif torch.allclose(weights.sum(-2), torch.ones_like(weights.sum(-2)), atol=1e-5):
        hint = "your columns sum to 1: softmax over the wrong axis. Each query's weights over the keys (the last axis) must sum to 1"
    else:
        hint = "apply softmax over the keys (the last axis)"
    raise CheckFailed(f"{what}: each query's weights should sum to 1, got sums like {[round(float(s), 4) for s in sums.flatten()[:3]]}\nHint: {hint}")


def _diagnose_attention(weights, xq, xkv, Wq, Wk) -> str:
    q, k = xq @ Wq, xkv @ Wk
    scores = q @ k.transpose(-2, -1)
    if is_close(weights, (scores / math.sqrt(q.shape[-1])).softmax(-1)):
        return "this chapter's attention has no scale yet: weights = softmax(q k^T); the 1/sqrt(d_k) comes in chapter 3"
    if is_close(weights, scores.softmax(-2)):
        return "softmax over the wrong axis: normalise each query's scores over the keys (the last axis)"
    if q.shape == k.shape and is_close(weights, (q @ q.transpose(-2, -1)).softmax(-1)):
        return "the keys must come from W_k: you compared the queries with themselves (q @ q^T)"
    if xq.shape[-1] == xkv.shape[-1] and is_close(weights, (xq @ xkv.transpose(-2, -1)).softmax(-1)):
        return "you compared the raw inputs (x @ x^T): project them first, q = x @ W_q and k = x @ W_k"
    c = fit_scale(weights, scores)
    if c is not None:
        return f"your weights are softmax(c * q k^T) with c = {c:.4g}: this chapter's attention has no scale, c = 1"
    return "q = x @ W_q, k = x @ W_k, v = x @ W_v; weights = softmax(q @ k^T over the keys); out = weights @ v"


# --------------------------------------------------------------------------- (a) projections


class QKVProjectionsCheck(Check):
    """qkv_projections(x, W_q, W_k, W_v) -> (q, k, v) = (x W_q, x W_k, x W_v)."""

    name = "ch2.qkv_projections"
    success = "q, k and v are the three projections of x, with gradients"

    def make_inputs(self):
        return {
            "x": randn(B, T, C, seed=200), "W_q": randn(C, DK, seed=201), "W_k": randn(C, DK, seed=202),
            "W_v": randn(C, DV, seed=203), "grad": randn(B, T, DK, seed=204),
        }  # fmt: skip

    def run(self, fn, inputs):
        args = [inputs[n] for n in ("x", "W_q", "W_k", "W_v")]
        q, k, v = expect_tuple(student_call(fn, *args, what="qkv_projections(x, W_q, W_k, W_v)"), 3, "q, k, v")
        leaves = leaf_copies(*args)
        _, gk, _ = expect_tuple(student_call(fn, *leaves, what="qkv_projections(x, W_q, W_k, W_v)"), 3, "q, k, v")
        return {"q": q, "k": k, "v": v, "grads": backward_grads(gk, leaves[:3:2], inputs["grad"])}

    def verify(self, inputs, outputs):
        x, Wq, Wk, Wv = (inputs[n] for n in ("x", "W_q", "W_k", "W_v"))
        b, t, _ = x.shape
        proj = "project the input: x (B, T, C) @ W (C, D) -> (B, T, D); no transpose is needed because W is stored as (C, D)"
        for name, W in (("q", Wq), ("k", Wk), ("v", Wv)):
            got = outputs[name]
            if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(x.shape) and W.shape[1] != x.shape[-1] and is_close(got, x):
                raise CheckFailed(f"{name}: you returned x itself\nHint: that is chapter 1's hs used directly as key and value: "
                                  "here each role gets its own learned projection")
            got = expect_shape(outputs[name], (b, t, W.shape[1]), name, hint=f"{name} = x @ W_{name}: " + proj)
            if not is_close(got, x @ W):
                if is_close(got, x[..., : W.shape[1]]) or (W.shape[1] == x.shape[-1] and is_close(got, x)):
                    hint = "that is chapter 1's hs used directly as key and value: here each role gets its own learned projection"
                elif any(is_close(got, x @ other) for other in (Wq, Wk, Wv) if other.shape == W.shape and other is not W):
                    other = next(n for n, o in (("q", Wq), ("k", Wk), ("v", Wv)) if o.shape == W.shape and o is not W and is_close(got, x @ o))
                    hint = f"{name} must use W_{name}: yours equals x @ W_{other} (a projection is swapped or reused)"
                else:
                    hint = proj
                expect_close(got, x @ W, name, hint=hint)
        xg, Wkg = leaf_copies(x, Wk)
        ((xg @ Wkg) * inputs["grad"]).sum().backward()
        expect_grads(outputs["grads"], (xg.grad, Wkg.grad), ("x (through k)", "W_k"), "qkv_projections")


class QKVProjectionsSquareCheck(QKVProjectionsCheck):
    """Hidden: square projections (C = Dk = Dv), where a swapped or transposed W keeps every shape."""

    name = "ch2.qkv_projections_square"
    success = "right with square projections too: no transposed or swapped W"

    def make_inputs(self):
        return {
            "x": randn(2, 3, 5, seed=210), "W_q": randn(5, 5, seed=211), "W_k": randn(5, 5, seed=212),
            "W_v": randn(5, 5, seed=213), "grad": randn(2, 3, 5, seed=214),
        }  # fmt: skip

    def verify(self, inputs, outputs):
        x = inputs["x"]
        for name in ("q", "k", "v"):
            W = inputs["W_" + name]
            got = outputs[name]
            if isinstance(got, torch.Tensor) and got.shape == (x @ W).shape and is_close(got, x @ W.T) and not is_close(got, x @ W):
                raise CheckFailed(f"{name}: you multiplied by W_{name}^T.\nHint: Q = X W^Q with W stored as (C, D): use x @ W, not x @ W.T")
        super().verify(inputs, outputs)


# --------------------------------------------------------------------------- (b) self-attention


class SelfAttentionCheck(Check):
    """self_attention(x, W_q, W_k, W_v) -> (out, weights): softmax(q k^T) v with q, k, v all from x."""

    name = "ch2.self_attention"
    success = ("every position attends to every position of the same sequence, batched (B, T, C) and unbatched (T, C); "
               "weights, output and gradients match (the grader also tries other inputs)")
    shape = (B, T, C)

    def make_inputs(self):
        inputs = {
            "x": randn(*self.shape, seed=220) * 0.5, "W_q": randn(C, DK, seed=221), "W_k": randn(C, DK, seed=222),
            "W_v": randn(C, DV, seed=223), "grad": randn(*self.shape[:-1], DV, seed=224),
        }  # fmt: skip
        if len(self.shape) == 3:  # the instructions: the same code for (T, C) and (B, T, C) inputs
            inputs["unbatched"] = {**inputs, "x": randn(T + 1, C, seed=225) * 0.5, "grad": randn(T + 1, DV, seed=226)}
        return inputs

    def run(self, fn, inputs):
        args = [inputs[n] for n in ("x", "W_q", "W_k", "W_v")]
        out, weights = expect_tuple(student_call(fn, *args, what="self_attention(x, W_q, W_k, W_v)"), 2, "out, weights")
        leaves = leaf_copies(*args)
        g_out, _ = expect_tuple(student_call(fn, *leaves, what="self_attention(x, W_q, W_k, W_v)"), 2, "out, weights")
        outputs = {"out": out, "weights": weights, "grads": backward_grads(g_out, leaves, inputs["grad"])}
        if "unbatched" in inputs:
            outputs["unbatched"] = SelfAttentionCheck.run(self, fn, inputs["unbatched"])
        return outputs

    def verify(self, inputs, outputs):
        x, Wq, Wk, Wv = (inputs[n] for n in ("x", "W_q", "W_k", "W_v"))
        lead, t = tuple(x.shape[:-2]), x.shape[-2]
        expect_not_swapped(outputs, "out", "weights", *_attend(x @ Wq, x @ Wk, x @ Wv), "out, weights")
        weights = expect_shape(
            outputs["weights"], lead + (t, t), "weights",
            hint="self-attention compares every position with every position: (..., T, T). "
                 "Transpose k's last two axes (k.transpose(-2, -1)), not q, and not with .T or fixed axis numbers",
        )  # fmt: skip
        out = expect_shape(outputs["out"], lead + (t, Wv.shape[1]), "out",
                           hint="out = weights @ v with the values v = x @ W_v (size Dv), not weights @ x: (..., T, Dv)")
        _expect_rows_sum_to_one(weights.detach().double(), "weights")
        ref_out, ref_weights = _attend(x @ Wq, x @ Wk, x @ Wv)
        hint = _diagnose_attention(weights.detach().double(), x, x, Wq, Wk)
        expect_close(weights, ref_weights, "weights", hint=hint)
        expect_close(out, ref_out, "out", hint=hint)
        leaves = leaf_copies(x, Wq, Wk, Wv)
        (_attend(leaves[0] @ leaves[1], leaves[0] @ leaves[2], leaves[0] @ leaves[3])[0] * inputs["grad"]).sum().backward()
        expect_grads(outputs["grads"], [l.grad for l in leaves], ("x", "W_q", "W_k", "W_v"), "self_attention")
        if "unbatched" in inputs:  # the same tests on one (T, C) sentence
            SelfAttentionCheck.verify(self, inputs["unbatched"], outputs["unbatched"])


class SelfAttentionUnbatchedCheck(SelfAttentionCheck):
    """Hidden: self_attention on one unbatched sentence x of shape (T, C)."""

    name = "ch2.self_attention_unbatched"
    success = "works on an unbatched (T, C) sentence"
    shape = (T, C)


# --------------------------------------------------------------------------- (c) cosine similarity


def _reference_cosine(q, k, eps=1e-8):
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    kn = k / k.norm(dim=-1, keepdim=True).clamp_min(eps)
    return qn @ kn.transpose(-2, -1)


def _cosine_hint(got, q, k) -> str:
    """Name a cosine mistake by recomputing the usual wrong normalisations."""
    dots = q @ k.transpose(-2, -1)
    qn, kn = q.norm(dim=-1).clamp_min(1e-8), k.norm(dim=-1).clamp_min(1e-8)
    ref = _reference_cosine(q, k)
    if is_close(got, dots):
        return "that is the plain dot product: divide by the lengths |q| and |k| (A.B = |A||B| cos theta)"
    if is_close(got, dots / kn[..., None, :]) or is_close(got, dots / qn[..., :, None]):
        return "normalise BOTH q and k to unit length"
    if is_close(got, dots / (qn[..., :, None] ** 2 * kn[..., None, :] ** 2)):
        return "you divided by the squared lengths: |q| = sqrt(sum of q_i^2), e.g. q.norm(dim=-1)"
    if is_close(got, (q / q.norm(dim=-2, keepdim=True)) @ (k / k.norm(dim=-2, keepdim=True)).transpose(-2, -1)):
        return "the length of a vector is the norm over its features (the last axis, dim=-1), not over positions"
    if is_close(got, ref.softmax(-1)):
        return "you applied a softmax: the cosine scores are the similarities themselves, in [-1, 1]"
    if bool((got.abs() > 1 + 1e-6).any()):
        return "cosine similarities lie in [-1, 1]: divide each q.k by |q| |k|"
    return ""


class CosineScoresCheck(Check):
    """cosine_scores(q, k) -> q . k / (|q| |k|) for every query-key pair, shape (..., T, S)."""

    name = "ch2.cosine_scores"
    reference = staticmethod(_reference_cosine)  # timed only when an answer is slow (the slow note)
    success = ("cosine similarities in [-1, 1], equal to the dot product of unit vectors; a zero vector scores 0 "
               "(the grader also tries other inputs)")

    def make_inputs(self):
        q = randn(B, T, DK, seed=230) * torch.linspace(0.5, 3.0, T, dtype=torch.float64)[:, None]  # different lengths
        # the instructions: a zero vector has no direction and scores 0, not NaN (here a query and a key)
        zq, zk = randn(2, 4, DK, seed=233), randn(2, 3, DK, seed=234)
        zq[0, 1], zk[1, 2] = 0.0, 0.0
        return {"q": q, "k": randn(B, S, DK, seed=231) * 2.0, "grad": randn(B, T, S, seed=232), "zero": {"q": zq, "k": zk}}

    def run(self, fn, inputs):
        scores = student_call(fn, inputs["q"], inputs["k"], what="cosine_scores(q, k)")
        leaves = leaf_copies(inputs["q"], inputs["k"])
        g = student_call(fn, *leaves, what="cosine_scores(q, k)")
        outputs = {"scores": scores, "grads": backward_grads(g, leaves, inputs["grad"])}
        if "zero" in inputs:
            outputs["zero"] = CosineScoresZeroVectorCheck.run(self, fn, inputs["zero"])
        return outputs

    def verify(self, inputs, outputs):
        q, k = inputs["q"], inputs["k"]
        scores = expect_shape(outputs["scores"], q.shape[:-1] + (k.shape[-2],), "scores",
                              hint="one score per (query, key) pair: (..., T, S); transpose k's last two axes")
        got = scores.detach().double()
        ref = _reference_cosine(q, k)
        if not is_close(got, ref):
            expect_close(got, ref, "scores", hint=_cosine_hint(got, q, k), axes="B T S")
        leaves = leaf_copies(q, k)
        (_reference_cosine(*leaves) * inputs["grad"]).sum().backward()
        expect_grads(outputs["grads"], [l.grad for l in leaves], ("q", "k"), "cosine_scores")
        if "zero" in inputs:  # the same tests as the grader's, on other vectors
            CosineScoresZeroVectorCheck.verify(self, inputs["zero"], outputs["zero"])


class CosineScoresZeroVectorCheck(Check):
    """Hidden: a zero query gives scores 0, not NaN (clamp the length with a small eps)."""

    name = "ch2.cosine_scores_zero_vector"
    success = "a zero vector gives 0, not NaN"

    def make_inputs(self):
        q = randn(2, 3, DK, seed=240)
        q[1, 2] = 0.0  # an all-zero query
        return {"q": q, "k": randn(2, 4, DK, seed=241)}

    def run(self, fn, inputs):
        return {"scores": student_call(fn, inputs["q"], inputs["k"], what="cosine_scores(q, k) with a zero vector")}

    def verify(self, inputs, outputs):
        scores = expect_shape(outputs["scores"], tuple(inputs["q"].shape[:-1]) + (inputs["k"].shape[-2],), "scores")
        if not bool(torch.isfinite(scores).all()):
            raise CheckFailed(
                "scores for an all-zero vector: expected 0, got NaN or inf (0 / 0)\n"
                "Hint: clamp the lengths from below, e.g. q.norm(dim=-1, keepdim=True).clamp_min(1e-8)"
            )
        got = scores.detach().double()
        expect_close(scores, _reference_cosine(inputs["q"], inputs["k"]), "scores with a zero vector",
                     hint=_cosine_hint(got, inputs["q"], inputs["k"]), axes="B T S")


# --------------------------------------------------------------------------- (d) source-target attention


class CrossAttentionCheck(Check):
    """cross_attention(x_dec, x_enc, W_q, W_k, W_v) -> (out, weights): queries from x_dec, keys and values from x_enc."""

    name = "ch2.cross_attention"
    success = "each target position attends over the source positions; weights, output and gradients match"
    sizes = (B, T, S)

    def make_inputs(self):
        b, t, s = self.sizes
        return {
            "x_dec": randn(b, t, C, seed=250) * 0.5, "x_enc": randn(b, s, C, seed=251) * 0.5, "W_q": randn(C, DK, seed=252),
            "W_k": randn(C, DK, seed=253), "W_v": randn(C, DV, seed=254), "grad": randn(b, t, DV, seed=255),
        }  # fmt: skip

    def run(self, fn, inputs):
        args = [inputs[n] for n in ("x_dec", "x_enc", "W_q", "W_k", "W_v")]
        out, weights = expect_tuple(student_call(fn, *args, what="cross_attention(x_dec, x_enc, W_q, W_k, W_v)"), 2, "out, weights")
        leaves = leaf_copies(*args)
        g_out, _ = expect_tuple(student_call(fn, *leaves, what="cross_attention(x_dec, x_enc, W_q, W_k, W_v)"), 2, "out, weights")
        return {"out": out, "weights": weights, "grads": backward_grads(g_out, leaves, inputs["grad"])}

    def verify(self, inputs, outputs):
        xd, xe, Wq, Wk, Wv = (inputs[n] for n in ("x_dec", "x_enc", "W_q", "W_k", "W_v"))
        b, t, s = xd.shape[0], xd.shape[1], xe.shape[1]
        got_w = outputs["weights"]
        expect_not_swapped(outputs, "out", "weights", *_attend(xd @ Wq, xe @ Wk, xe @ Wv), "out, weights")
        if isinstance(got_w, torch.Tensor) and tuple(got_w.shape) == (b, s, t) and t != s:
            raise CheckFailed(
                f"weights: expected shape ({b}, {t}, {s}) (target x source), got {tuple(got_w.shape)} (source x target)\n"
                "Hint: queries and keys are swapped: the queries come from the decoder (x_dec @ W_q), the keys from the encoder"
            )
        if isinstance(got_w, torch.Tensor) and tuple(got_w.shape) == (b, t, t) and t != s:
            raise CheckFailed(
                f"weights: expected shape ({b}, {t}, {s}) (target x source), got {tuple(got_w.shape)} (target x target)\n"
                "Hint: that is self-attention of the decoder: the keys (and values) come from the ENCODER states x_enc"
            )
        weights = expect_shape(
            got_w, (b, t, s), "weights",
            hint="queries come from x_dec (T of them), keys from x_enc (S of them): weights are (B, T, S)",
        )  # fmt: skip
        if isinstance(outputs["out"], torch.Tensor) and tuple(outputs["out"].shape) == (b, t, xe.shape[-1]) and xe.shape[-1] != Wv.shape[1]:
            raise CheckFailed(f"out: expected shape ({b}, {t}, {Wv.shape[1]}), got {tuple(outputs['out'].shape)}\n"
                              "Hint: project the values first: out = weights @ v with v = x_enc @ W_v, not weights @ x_enc")
        out = expect_shape(outputs["out"], (b, t, Wv.shape[1]), "out",
                           hint="out = weights @ v with the values from the encoder, v = x_enc @ W_v: (B, T, Dv)")
        _expect_rows_sum_to_one(weights.detach().double(), "weights")
        ref_out, ref_weights = _attend(xd @ Wq, xe @ Wk, xe @ Wv)
        hint = _diagnose_attention(weights.detach().double(), xd, xe, Wq, Wk)
        if is_close(weights.detach().double(), (xe @ Wq @ (xd @ Wk).transpose(-2, -1)).softmax(-1)):
            hint = "queries and keys are swapped: the queries come from the decoder (x_dec @ W_q), the keys from the encoder"
        expect_close(weights, ref_weights, "weights", hint=hint)
        out_hint = "out = weights @ v with v = x_enc @ W_v"
        if t == s and is_close(out, ref_weights @ (xd @ Wv)):
            out_hint = "the values come from the encoder, like the keys: v = x_enc @ W_v, not x_dec @ W_v"
        expect_close(out, ref_out, "out", hint=out_hint, axes="B T Dv")
        leaves = leaf_copies(xd, xe, Wq, Wk, Wv)
        (_attend(leaves[0] @ leaves[2], leaves[1] @ leaves[3], leaves[1] @ leaves[4])[0] * inputs["grad"]).sum().backward()
        expect_grads(outputs["grads"], [l.grad for l in leaves], ("x_dec", "x_enc", "W_q", "W_k", "W_v"), "cross_attention")


class CrossAttentionOneQueryCheck(CrossAttentionCheck):
    """Hidden: one target position (T=1) attending over a longer source, and B=1."""

    name = "ch2.cross_attention_one_query"
    success = "works for a single query"
    sizes = (1, 1, 9)


check_qkv_projections = QKVProjectionsCheck().as_function()
check_qkv_projections_square = QKVProjectionsSquareCheck().as_function()
check_self_attention = SelfAttentionCheck().as_function()
check_self_attention_unbatched = SelfAttentionUnbatchedCheck().as_function()
check_cosine_scores = CosineScoresCheck().as_function()
check_cosine_scores_zero_vector = CosineScoresZeroVectorCheck().as_function()
check_cross_attention = CrossAttentionCheck().as_function()
check_cross_attention_one_query = CrossAttentionOneQueryCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402

_LEGEND = {"B": "batch", "T": "query", "S": "key", "C": "model feature", "D": "feature"}
_NAMES = {"x": "x", "x_dec": "the decoder states x_dec", "x_enc": "the encoder states x_enc", "W_q": "W_q", "W_k": "W_k", "W_v": "W_v"}


def _attention_steps(xq: str, xkv: str) -> Program:
    return Program(
        [step("q", "xw", xq, "W_q", what="the query projection", axes="B T D"),
         step("k", "xw", xkv, "W_k", what="the key projection", axes="B S D"),
         step("v", "xw", xkv, "W_v", what="the value projection", axes="B S D"),
         step("scores", "matmul_t", "q", "k", what="the scores q k^T", axes="B T S"),
         step("weights", "softmax", "scores", dim=-1, axes="B T S"),
         step("out", "matmul", "weights", "v", what="weights @ v", axes="B T D")],
        ("out", "weights"), sizes=lambda env: {"d_k": env["W_k"].shape[-1]}, legend=_LEGEND, names=_NAMES,
        roles=[("W_q", "W_k"), ("W_k", "W_v"), ("W_q", "W_v"), (xq, xkv)] if xq != xkv else [("W_q", "W_k"), ("W_k", "W_v"), ("W_q", "W_v")])


QKV_STEPS = Program(
    [step("q", "xw", "x", "W_q", what="the query projection", axes="B T D"),
     step("k", "xw", "x", "W_k", what="the key projection", axes="B T D"),
     step("v", "xw", "x", "W_v", what="the value projection", axes="B T D")],
    ("q", "k", "v"), legend=_LEGEND, names=_NAMES, roles=[("W_q", "W_k"), ("W_k", "W_v"), ("W_q", "W_v")])
SELF_ATTENTION_STEPS = _attention_steps("x", "x")
CROSS_ATTENTION_STEPS = _attention_steps("x_dec", "x_enc")
COSINE_STEPS = Program(
    [step("qn", "norm", "q", dim=-1, what="the norm of q", axes="B T 1"),
     step("kn", "norm", "k", dim=-1, what="the norm of k", axes="B S 1"),
     step("qu", "div", "q", "qn", fn=lambda q, n: q / n.clamp_min(1e-8), what="q / |q|", axes="B T D"),
     step("ku", "div", "k", "kn", fn=lambda k, n: k / n.clamp_min(1e-8), what="k / |k|", axes="B S D"),
     step("scores", "matmul_t", "qu", "ku", what="the dot products", axes="B T S")],
    ("scores",), legend=_LEGEND, axes={"q": "B T D", "k": "B S D"})

QKVProjectionsCheck.steps = QKV_STEPS
SelfAttentionCheck.steps = SELF_ATTENTION_STEPS
CrossAttentionCheck.steps = CROSS_ATTENTION_STEPS
CosineScoresCheck.steps = COSINE_STEPS
CosineScoresZeroVectorCheck.steps = COSINE_STEPS

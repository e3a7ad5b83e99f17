"""Checks for assignment ch01_seq2seq (chapter 1: seq2seq and attention).

Parts:
    (a) attention_context(h, hs) -> (context, weights)        elementwise product + sum
    (b) attention_context_matmul(h, hs, mask=None)           the same as matrix products, with a mask
    (c) AdditiveScore(d_q, d_k, d_hidden)                     Bahdanau's v^T tanh(W1 q + W2 k)
    (d) attention_decoder_step(y_prev, h_prev, hs, mask, layers) -> (logits, h, weights)

Dimension legend: B batch, S source length, C hidden size, T query length,
Dq/Dk sizes of q and k, Dh the additive score's hidden size, E embedding, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.checks._core import (
    Check,
    CheckFailed,
    backward_grads,
    diagnose_mask,
    expect_close,
    expect_grads,
    expect_not_swapped,
    expect_shape,
    expect_tuple,
    fit_scale,
    is_close,
    leaf_copies,
    normalised_axis,
    randn,
    seeded,
    student_call,
)
from course_lib.seq2seq import DecoderStepLayers

# Deliberately uneven sizes so that swapped axes fail.
B, S, C = 3, 7, 5
T, DQ, DK, DH = 2, 5, 6, 4
E, V = 4, 9


# --------------------------------------------------------------------------- references (recomputed in verify)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def _reference_context(h, hs, mask=None):
    scores = (hs * h.unsqueeze(1)).sum(-1)  # (B, S)
    weights = _masked_softmax(scores, mask)  # (B, S)
    return (hs * weights.unsqueeze(-1)).sum(1), weights  # (B, C), (B, S)


def _reference_additive(q, k, W1, W2, v):
    hidden = torch.tanh((q @ W1.T).unsqueeze(-2) + (k @ W2.T).unsqueeze(-3))  # (B, T, 1, Dh) + (B, 1, S, Dh)
    return (hidden @ v.T).squeeze(-1)  # (B, T, S)


def _reference_step(y_prev, h_prev, hs, mask, w, attend_to_previous=False, concat_order="ch", use_tanh=True, use_mask=True):
    """One Luong decoder step from raw weights; the keyword switches build the typical mistakes."""
    x = w["embed"][y_prev]  # (B, E)
    r_i, z_i, n_i = (x @ w["cell_w_ih"].T + w["cell_b_ih"]).chunk(3, dim=-1)
    r_h, z_h, n_h = (h_prev @ w["cell_w_hh"].T + w["cell_b_hh"]).chunk(3, dim=-1)
    r, z = torch.sigmoid(r_i + r_h), torch.sigmoid(z_i + z_h)
    n = torch.tanh(n_i + r * n_h)
    h = (1 - z) * n + z * h_prev  # (B, C): torch.nn.GRUCell's update
    query = h_prev if attend_to_previous else h
    context, weights = _reference_context(query, hs, mask if use_mask else None)
    pair = torch.cat([context, h] if concat_order == "ch" else [h, context], dim=-1)  # (B, 2C)
    combined = pair @ w["combine_w"].T + w["combine_b"]
    h_tilde = torch.tanh(combined) if use_tanh else combined
    logits = h_tilde @ w["out_w"].T + w["out_b"]  # (B, V)
    return logits, h, weights


def _lengths_mask(lengths: list[int], S_: int) -> torch.Tensor:
    return torch.arange(S_)[None, :] < torch.tensor(lengths)[:, None]  # (B, S)


def _expect_rows_sum_to_one(weights: torch.Tensor, what: str, hint: str | None = None) -> None:
    sums = weights.sum(-1)
    if torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        return
    if hint is not None:
        pass
    elif weights.dim() == 2 and torch.allclose(weights.sum(0), torch.ones(weights.shape[1], dtype=weights.dtype), atol=1e-5):
        hint = "your weights sum to 1 down each column: softmax over the wrong axis (dim=0 is the batch). Normalise over the source positions, the last axis"
    elif bool((weights < 0).any()):
        hint = "some weights are negative: did you forget the softmax and return the raw scores?"
    else:
        hint = "the weights of one decoder state over the S source positions must sum to 1: softmax over the last axis"
    raise CheckFailed(f"{what}: each row should sum to 1, got sums like {[round(float(s), 4) for s in sums.flatten()[:3]]}\nHint: {hint}")


def _diagnose_context(weights, context, h, hs, mask=None) -> str:
    scores = (hs * h.unsqueeze(1)).sum(-1)
    ref = _reference_context(h, hs, mask)[0]
    got_w = weights.detach().double() if isinstance(weights, torch.Tensor) else None
    if is_close(context, (hs * scores.unsqueeze(-1)).sum(1)):
        return "the context must be weighted by the softmax *weights*, not by the raw scores"
    if is_close(context, ref / hs.shape[1]):
        return "you averaged (mean) over the source positions: the context is the weighted *sum* over S"
    if is_close(context, hs.mean(1)):
        return "your context is the plain average of hs: weight each hs_s by its attention weight before summing"
    if is_close(context, hs[:, -1]):
        return "your context is the last encoder state: that is the decoder WITHOUT attention"
    if got_w is not None and tuple(got_w.shape) == tuple(scores.shape) and not is_close(got_w, _reference_context(h, hs, mask)[1]) \
            and is_close(context, (hs * got_w.unsqueeze(-1)).sum(1)):
        return "your context follows from your weights; fix the weights first"
    return "context = sum over s of weights[b, s] * hs[b, s, :]: multiply hs (B, S, C) by weights[..., None] (B, S, 1) and sum over S"


def _diagnose_weights(weights, h, hs, mask=None) -> str:
    weights = weights.detach().double()
    scores = (hs * h.unsqueeze(1)).sum(-1)
    if mask is not None:
        hint = diagnose_mask(weights, mask, scores=scores, ref_unmasked=scores.softmax(-1))
        if hint:
            if "not applied" in hint:
                return "the mask is ignored: fill the scores of padded positions (mask False) with -inf before the softmax"
            return hint
    axis = normalised_axis(weights)
    if axis == 0:
        return "softmax over the wrong axis: dim=0 is the batch; normalise over the source positions (the last axis)"
    c = fit_scale(weights, scores) if mask is None else None
    if c is not None:
        if abs(c - hs.shape[-1] ** -0.5) < 1e-4 * c:
            return "chapter 1's score is the plain dot product h . hs_s, without the 1/sqrt(d) scale (that comes in chapter 3)"
        return f"your weights are softmax(c * h . hs_s) with c = {c:.4g}: chapter 1's score is the plain dot product, c = 1"
    if is_close(weights, scores):
        return "these are the raw scores: apply softmax over the source positions"
    if is_close(weights, torch.sigmoid(scores)):
        return "you used sigmoid: the weights are a softmax over the source positions, so each row sums to 1"
    hint = "score_s = h . hs_s (multiply h[:, None, :] by hs and sum over the hidden axis C), then softmax over S"
    if hs.shape[1] == hs.shape[2]:
        hint += (". Here S == C, so a sum or transpose over the wrong axis keeps the right shapes: "
                 "hs is (B, S, C); in the matrix form transpose hs to (B, C, S), not h")
    return hint


def _specific_weights_hint(weights, h, hs, mask=None) -> str | None:
    hint = _diagnose_weights(weights, h, hs, mask)
    return None if hint.startswith("score_s = h . hs_s") else hint


# --------------------------------------------------------------------------- (a) clarity-first attention


class AttentionContextCheck(Check):
    """attention_context(h, hs) -> (context, weights), by elementwise product and sum."""

    name = "ch1.attention_context"
    reference = staticmethod(_reference_context)  # timed only when an answer is slow (the slow note)
    success = "weights (B, S) sum to 1 over the source, the context (B, C) and its gradients match"
    sizes = (B, S, C)

    def make_inputs(self):
        b, s, c = self.sizes
        return {"h": randn(b, c, seed=100), "hs": randn(b, s, c, seed=101), "grad_context": randn(b, c, seed=102)}

    def run(self, fn, inputs):
        h, hs = inputs["h"], inputs["hs"]
        context, weights = expect_tuple(student_call(fn, h, hs, what="attention_context(h, hs)"), 2, "context, weights")
        hg, hsg = leaf_copies(h, hs)
        g_context, _ = expect_tuple(student_call(fn, hg, hsg, what="attention_context(h, hs)"), 2, "context, weights")
        grads = backward_grads(g_context, (hg, hsg), inputs["grad_context"])
        return {"context": context, "weights": weights, "grads": grads}

    def verify(self, inputs, outputs):
        h, hs = inputs["h"], inputs["hs"]
        b, s, c = hs.shape
        # 1. shapes
        expect_not_swapped(outputs, "context", "weights", *_reference_context(h, hs), "context, weights")
        weights = expect_shape(outputs["weights"], (b, s), "weights",
                               hint="one weight per source position: sum h[:, None, :] * hs over the hidden axis C (the last one)")
        context = expect_shape(outputs["context"], (b, c), "context",
                               hint="the context is a weighted sum of the S encoder states: sum over the source axis (dim=1), keeping C")
        # 2. behaviour (a specific diagnosis first) and 3. values
        ref_context, ref_weights = _reference_context(h, hs)
        if not is_close(weights, ref_weights):
            _expect_rows_sum_to_one(weights.detach().double(), "weights", hint=_specific_weights_hint(weights, h, hs))
        expect_close(weights, ref_weights, "weights", hint=_diagnose_weights(weights.detach().double(), h, hs))
        expect_close(context, ref_context, "context", hint=_diagnose_context(weights, context.detach().double(), h, hs))
        # 4. gradients
        hg, hsg = leaf_copies(h, hs)
        (_reference_context(hg, hsg)[0] * inputs["grad_context"]).sum().backward()
        expect_grads(outputs["grads"], (hg.grad, hsg.grad), ("h", "hs"), "attention_context")


class AttentionContextOtherSizesCheck(AttentionContextCheck):
    """Hidden: attention_context with one example and S == C."""

    name = "ch1.attention_context_other_sizes"
    success = "works for B=1 and for S == C"
    sizes = (1, 4, 4)  # S == C: a sum over the wrong axis keeps the right shape, so only values catch it


# --------------------------------------------------------------------------- (b) matrix-product form with a mask


class AttentionContextMatmulCheck(Check):
    """attention_context_matmul(h, hs, mask=None) -> (context, weights), as batched matrix products."""

    name = "ch1.attention_context_matmul"
    success = ("the matrix-product form equals the elementwise form, also when S == C, and padded positions get weight 0 "
               "(the grader also tries other sizes)")
    sizes = (B, S, C)
    lengths = [7, 4, 2]

    def make_inputs(self):
        b, s, c = self.sizes
        inputs = {
            "h": randn(b, c, seed=110), "hs": randn(b, s, c, seed=111),
            "mask": _lengths_mask(self.lengths, s), "grad_context": randn(b, c, seed=112),
        }  # fmt: skip
        if s != c:  # the instructions: transpose hs, not h; only S == C keeps the shapes of a wrong transpose
            inputs["square"] = {"h": randn(2, 5, seed=113), "hs": randn(2, 5, 5, seed=114),
                                "mask": _lengths_mask([5, 2], 5), "grad_context": randn(2, 5, seed=115)}
        return inputs

    def run(self, fn, inputs):
        h, hs, mask = inputs["h"], inputs["hs"], inputs["mask"]
        context, weights = expect_tuple(student_call(fn, h, hs, what="attention_context_matmul(h, hs)"), 2, "context, weights")
        m_context, m_weights = expect_tuple(
            student_call(fn, h, hs, mask, what="attention_context_matmul(h, hs, mask)"), 2, "context, weights"
        )
        hg, hsg = leaf_copies(h, hs)
        g_context, _ = expect_tuple(student_call(fn, hg, hsg, mask, what="attention_context_matmul(h, hs, mask)"), 2, "context, weights")
        grads = backward_grads(g_context, (hg, hsg), inputs["grad_context"])
        outputs = {"context": context, "weights": weights, "masked_context": m_context, "masked_weights": m_weights, "grads": grads}
        if "square" in inputs:
            outputs["square"] = AttentionContextMatmulCheck.run(self, fn, inputs["square"])
        return outputs

    def verify(self, inputs, outputs):
        h, hs, mask = inputs["h"], inputs["hs"], inputs["mask"]
        b, s, c = hs.shape
        expect_not_swapped(outputs, "context", "weights", *_reference_context(h, hs), "context, weights")
        transposed = "(B, 1, C) @ (B, C, S) -> (B, 1, S): transpose hs, not h, then squeeze the 1"
        weights = expect_shape(outputs["weights"], (b, s), "weights", hint=transposed)
        context = expect_shape(outputs["context"], (b, c), "context", hint="(B, 1, S) @ (B, S, C) -> (B, 1, C), then squeeze the 1")
        ref_context, ref_weights = _reference_context(h, hs)
        if not is_close(weights, ref_weights):
            _expect_rows_sum_to_one(weights.detach().double(), "weights", hint=_specific_weights_hint(weights, h, hs))
        expect_close(weights, ref_weights, "weights", hint=_diagnose_weights(weights.detach().double(), h, hs))
        expect_close(context, ref_context, "context", hint=_diagnose_context(weights, context.detach().double(), h, hs))
        # with a mask: padded positions get exactly 0, real ones still sum to 1
        m_weights = expect_shape(outputs["masked_weights"], (b, s), "weights with a mask").detach().double()
        leaked = float(m_weights.masked_fill(mask, 0.0).abs().max())
        if leaked > 1e-6:
            raise CheckFailed(
                f"weights with a mask: padded positions (mask False) must get weight exactly 0, got up to {leaked:.3g}\n"
                f"Hint: {_diagnose_weights(m_weights, h, hs, mask)}"
            )
        _expect_rows_sum_to_one(m_weights, "weights with a mask", hint=_diagnose_weights(m_weights, h, hs, mask))
        ref_m_context, ref_m_weights = _reference_context(h, hs, mask)
        expect_close(m_weights, ref_m_weights, "weights with a mask", hint=_diagnose_weights(m_weights, h, hs, mask))
        expect_close(outputs["masked_context"], ref_m_context, "context with a mask")
        hg, hsg = leaf_copies(h, hs)
        (_reference_context(hg, hsg, mask)[0] * inputs["grad_context"]).sum().backward()
        expect_grads(outputs["grads"], (hg.grad, hsg.grad), ("h", "hs"), "attention_context_matmul")
        if "square" in inputs:  # the same tests with S == C
            AttentionContextMatmulCheck.verify(self, inputs["square"], outputs["square"])


class AttentionContextMatmulSquareCheck(AttentionContextMatmulCheck):
    """Hidden: the matrix-product form when S == C (a wrong transpose keeps the shapes) and B=1."""

    name = "ch1.attention_context_matmul_square"
    success = "right when S == C too, so no axis is swapped"
    sizes = (2, 6, 6)
    lengths = [6, 1]


# --------------------------------------------------------------------------- (c) additive score


def _additive_params(seed: int, dq=DQ, dk=DK, dh=DH) -> dict[str, torch.Tensor]:
    return {"W1": randn(dh, dq, seed=seed) * 0.7, "W2": randn(dh, dk, seed=seed + 1) * 0.7, "v": randn(1, dh, seed=seed + 2)}


class AdditiveScoreCheck(Check):
    """AdditiveScore(d_q, d_k, d_hidden): score(q, k) = v^T tanh(W1 q + W2 k), q (B, T, Dq), k (B, S, Dk) -> (B, T, S)."""

    name = "ch1.additive_score"
    success = "parameters W1, W2, v have the right shapes; scores (B, T, S) and gradients match v^T tanh(W1 q + W2 k)"
    sizes = (B, T, S, DQ, DK, DH)

    def make_inputs(self):
        b, t, s, dq, dk, dh = self.sizes
        return {
            "q": randn(b, t, dq, seed=120), "k": randn(b, s, dk, seed=121), "grad_scores": randn(b, t, s, seed=122),
            "params": _additive_params(123, dq, dk, dh), "sizes": [dq, dk, dh],
        }  # fmt: skip

    def run(self, cls, inputs):
        dq, dk, dh = inputs["sizes"]
        module = student_call(cls, dq, dk, dh, what=f"AdditiveScore(d_q={dq}, d_k={dk}, d_hidden={dh})")
        if not isinstance(module, nn.Module):
            raise CheckFailed(f"AdditiveScore(...) should build a torch.nn.Module, got {type(module).__name__}")
        layers = {}
        for name in ("W1", "W2", "v"):
            layer = getattr(module, name, None)
            if not isinstance(layer, nn.Linear):
                raise CheckFailed(
                    f"AdditiveScore needs an nn.Linear attribute named {name!r} (W1 for q, W2 for k, v for the output), "
                    f"got {type(layer).__name__}"
                )
            layers[name] = layer
        shapes = {name: list(layer.weight.shape) for name, layer in layers.items()}
        biases = [name for name, layer in layers.items() if layer.bias is not None]
        if any(shapes[name] != list(inputs["params"][name].shape) for name in layers):
            return {"shapes": shapes, "biases": biases, "scores": None, "grads": None}  # verify names the wrong layer
        module = module.double()
        with torch.no_grad():
            for name, layer in layers.items():
                if list(layer.weight.shape) == list(inputs["params"][name].shape):
                    layer.weight.copy_(inputs["params"][name])
                if layer.bias is not None:
                    layer.bias.zero_()
        q, k = inputs["q"], inputs["k"]
        scores = student_call(module, q, k, what="AdditiveScore.forward(q, k)")
        qg, kg = leaf_copies(q, k)
        g_scores = student_call(module, qg, kg, what="AdditiveScore.forward(q, k)")
        grads = backward_grads(g_scores, (qg, kg), inputs["grad_scores"])
        return {"shapes": shapes, "biases": biases, "scores": scores, "grads": grads}

    def verify(self, inputs, outputs):
        q, k, p = inputs["q"], inputs["k"], inputs["params"]
        b, t, _ = q.shape
        s = k.shape[1]
        expected = {name: list(p[name].shape) for name in ("W1", "W2", "v")}
        for name, want in expected.items():
            got = outputs["shapes"].get(name)
            if got != want:
                hint = {
                    "W1": "W1 maps q (size d_q) to the hidden size: nn.Linear(d_q, d_hidden)",
                    "W2": "W2 maps k (size d_k) to the hidden size: nn.Linear(d_k, d_hidden)",
                    "v": "v maps the hidden size to one score: nn.Linear(d_hidden, 1)",
                }[name]
                raise CheckFailed(f"{name}.weight: expected shape {tuple(want)}, got {tuple(got or ())}\nHint: {hint}")
        if outputs["biases"]:
            raise CheckFailed(
                f"{', '.join(outputs['biases'])} should have no bias (bias=False): Bahdanau's score is v^T tanh(W1 q + W2 k)"
            )
        scores = expect_shape(
            outputs["scores"], (b, t, s), "scores",
            hint="every query meets every key: W1 q as (B, T, 1, Dh) plus W2 k as (B, 1, S, Dh) broadcasts to (B, T, S, Dh); v then gives (B, T, S)",
        )  # fmt: skip
        ref = _reference_additive(q, k, p["W1"], p["W2"], p["v"])
        if not is_close(scores, ref):
            got = scores.detach().double()
            if is_close(got, ((q @ p["W1"].T).unsqueeze(-2) + (k @ p["W2"].T).unsqueeze(-3)) @ p["v"].T.squeeze(-1)):
                hint = "the tanh is missing: score = v^T tanh(W1 q + W2 k)"
            elif is_close(got, torch.tanh((q @ p["W1"].T).unsqueeze(-2) + (k @ p["W2"].T).unsqueeze(-3)).sum(-1)):
                hint = "you summed the hidden units instead of applying v (a learned weighting): use self.v"
            elif torch.allclose(got.sum(-1), torch.ones(b, t, dtype=got.dtype), atol=1e-5):
                hint = "return the scores before softmax: the module computes scores, attention normalises them later"
            else:
                hint = "compute W1(q)[..., :, None, :] + W2(k)[..., None, :, :], then tanh, then v, then drop the last axis of size 1"
            expect_close(scores, ref, "scores", hint=hint)
        qg, kg = leaf_copies(q, k)
        (_reference_additive(qg, kg, p["W1"], p["W2"], p["v"]) * inputs["grad_scores"]).sum().backward()
        expect_grads(outputs["grads"], (qg.grad, kg.grad), ("q", "k"), "AdditiveScore")


class AdditiveScoreOtherSizesCheck(AdditiveScoreCheck):
    """Hidden: AdditiveScore with one query (T=1) and d_q != d_hidden != d_k."""

    name = "ch1.additive_score_other_sizes"
    success = "works with T=1 and other feature sizes"
    sizes = (2, 1, 3, 3, 7, 8)


# --------------------------------------------------------------------------- (d) a decoder step


def _step_weights(seed: int) -> dict[str, torch.Tensor]:
    g = seeded(seed)

    def r(*shape, scale=0.5):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    return {
        "embed": r(V, E, scale=1.0), "cell_w_ih": r(3 * C, E), "cell_w_hh": r(3 * C, C),
        "cell_b_ih": r(3 * C), "cell_b_hh": r(3 * C), "combine_w": r(C, 2 * C), "combine_b": r(C),
        "out_w": r(V, C), "out_b": r(V),
    }  # fmt: skip


def _layers_from(w: dict[str, torch.Tensor]) -> DecoderStepLayers:
    layers = DecoderStepLayers(V, E, C).double()
    with torch.no_grad():
        layers.embed.weight.copy_(w["embed"])
        layers.cell.weight_ih.copy_(w["cell_w_ih"])
        layers.cell.weight_hh.copy_(w["cell_w_hh"])
        layers.cell.bias_ih.copy_(w["cell_b_ih"])
        layers.cell.bias_hh.copy_(w["cell_b_hh"])
        layers.combine.weight.copy_(w["combine_w"])
        layers.combine.bias.copy_(w["combine_b"])
        layers.out.weight.copy_(w["out_w"])
        layers.out.bias.copy_(w["out_b"])
    return layers


def _diagnose_step(logits, h, weights, args, w) -> str:
    y_prev, h_prev, hs, mask = args
    if is_close(h, h_prev):
        return "return the NEW state h_t = layers.cell(embedding, h_prev), not h_prev"
    variants = {
        "attend with the new state h_t (Luong): the GRU step comes first, then attention on its output; "
        "scoring with h_{t-1} is Bahdanau's order": dict(attend_to_previous=True),
        "the order of the concatenation matters: h~_t = tanh(W_c [c_t; h_t]) with the context first": dict(concat_order="hc"),
        "h~_t = tanh(W_c [c_t; h_t]): the tanh is missing": dict(use_tanh=False),
        "padded source positions must get weight 0: pass the mask to the attention (True = may attend)": dict(use_mask=False),
    }
    for hint, kwargs in variants.items():
        v_logits, _, v_weights = _reference_step(y_prev, h_prev, hs, mask, w, **kwargs)
        if is_close(logits, v_logits) or (kwargs.get("attend_to_previous") and is_close(weights, v_weights)):
            return hint
    return "embed y_prev, GRUCell step, attention of h_t over hs (masked), concat [context; h_t], tanh(combine), out"


class AttentionDecoderStepCheck(Check):
    """attention_decoder_step(y_prev, h_prev, hs, mask, layers) -> (logits (B, V), h (B, C), weights (B, S))."""

    name = "ch1.attention_decoder_step"
    success = "the new state, the attention weights and the logits of one decoder step match, gradients flow"

    def make_inputs(self):
        return {
            "y_prev": torch.tensor([1, 5, 8]), "h_prev": randn(B, C, seed=130), "hs": randn(B, S, C, seed=131),
            "mask": _lengths_mask([7, 4, 2], S), "weights": _step_weights(132), "grad_logits": randn(B, V, seed=133),
        }  # fmt: skip

    def run(self, fn, inputs):
        layers = _layers_from(inputs["weights"])
        args = (inputs["y_prev"], inputs["h_prev"], inputs["hs"], inputs["mask"])
        logits, h, weights = expect_tuple(student_call(fn, *args, layers, what="attention_decoder_step(...)"), 3, "logits, h, weights")
        hsg = inputs["hs"].clone().requires_grad_(True)
        g_logits, _, _ = expect_tuple(
            student_call(fn, args[0], args[1], hsg, args[3], layers, what="attention_decoder_step(...)"), 3, "logits, h, weights"
        )
        grads = backward_grads(g_logits, (hsg,), inputs["grad_logits"])
        return {"logits": logits, "h": h, "weights": weights, "grads": grads}

    def verify(self, inputs, outputs):
        y_prev, h_prev, hs, mask, w = (inputs[n] for n in ("y_prev", "h_prev", "hs", "mask", "weights"))
        got_shapes = [tuple(outputs[n].shape) if isinstance(outputs[n], torch.Tensor) else None for n in ("logits", "h", "weights")]
        if sorted(map(str, got_shapes)) == sorted(map(str, [(B, V), (B, C), (B, S)])) and got_shapes != [(B, V), (B, C), (B, S)]:
            raise CheckFailed(f"the three results have the right shapes in the wrong order: got {got_shapes}\n"
                              "Hint: return (logits (B, V), h (B, C), weights (B, S)), in that order")
        logits = expect_shape(outputs["logits"], (B, V), "logits", hint="layers.out maps h~_t (B, C) to (B, V)")
        h = expect_shape(outputs["h"], (B, C), "h", hint="the new decoder state is layers.cell(x, h_prev): (B, C)")
        weights = expect_shape(outputs["weights"], (B, S), "weights", hint="one weight per source position: (B, S)")
        ref_logits, ref_h, ref_weights = _reference_step(y_prev, h_prev, hs, mask, w)
        args = (y_prev, h_prev, hs, mask)
        got = (logits.detach().double(), h.detach().double(), weights.detach().double())
        hint = _diagnose_step(*got, args, w)
        expect_close(h, ref_h, "h (the new decoder state)", hint=hint)
        _expect_rows_sum_to_one(got[2], "weights")
        expect_close(weights, ref_weights, "weights", hint=hint)
        expect_close(logits, ref_logits, "logits", hint=hint)
        hsg = hs.clone().requires_grad_(True)
        (_reference_step(y_prev, h_prev, hsg, mask, w)[0] * inputs["grad_logits"]).sum().backward()
        expect_grads(outputs["grads"], (hsg.grad,), ("hs",), "attention_decoder_step")


class AttentionDecoderStepsCheck(Check):
    """Hidden: four chained steps (feeding each state into the next) match a reference decoder run."""

    name = "ch1.attention_decoder_steps"
    success = "chained steps carry the state correctly"

    def make_inputs(self):
        return {
            "tokens": torch.tensor([[1, 4, 4, 7], [1, 2, 6, 3], [1, 8, 5, 5]]), "h0": randn(B, C, seed=140),
            "hs": randn(B, S, C, seed=141), "mask": _lengths_mask([3, 7, 5], S), "weights": _step_weights(142),
        }  # fmt: skip

    def run(self, fn, inputs):
        layers = _layers_from(inputs["weights"])
        h, all_logits = inputs["h0"], []
        for t in range(inputs["tokens"].shape[1]):
            logits, h, _ = expect_tuple(
                student_call(fn, inputs["tokens"][:, t], h, inputs["hs"], inputs["mask"], layers, what=f"attention_decoder_step at step {t}"),
                3, "logits, h, weights",
            )  # fmt: skip
            if not isinstance(h, torch.Tensor) or not isinstance(logits, torch.Tensor):
                raise CheckFailed(f"step {t}: expected tensors (logits, h, weights)")
            if tuple(h.shape) != tuple(inputs["h0"].shape):
                raise CheckFailed(f"step {t}: the second result should be the new state h, shape {tuple(inputs['h0'].shape)}, "
                                  f"got shape {tuple(h.shape)}\nHint: return (logits, h, weights), in that order")
            all_logits.append(logits.detach())
        return {"logits": all_logits}

    def verify(self, inputs, outputs):
        if not isinstance(outputs["logits"], list) or len(outputs["logits"]) != inputs["tokens"].shape[1]:
            raise CheckFailed("expected one logits tensor per step")
        expected = _chain(inputs)
        for t, (got, ref) in enumerate(zip(outputs["logits"], expected)):
            if is_close(got, ref):
                continue
            hint = "each step must match part (d) on its own, and the new state h_t a step returns becomes h_prev of the next step"
            for variant_hint, kwargs in _STEP_VARIANTS.items():
                if all(is_close(g, r) for g, r in zip(outputs["logits"], _chain(inputs, **kwargs))):
                    hint = variant_hint
                    break
            expect_close(got, ref, f"logits at step {t} of a chained decode", hint=hint, axes="B V")


def _chain(inputs, keep_state: bool = False, **kwargs) -> list[torch.Tensor]:
    """The reference logits of the chained steps; keep_state feeds h0 to every step (the state is not carried)."""
    h, all_logits = inputs["h0"], []
    for t in range(inputs["tokens"].shape[1]):
        logits, h_new, _ = _reference_step(inputs["tokens"][:, t], h, inputs["hs"], inputs["mask"], inputs["weights"], **kwargs)
        all_logits.append(logits)
        h = h if keep_state else h_new
    return all_logits


_STEP_VARIANTS = {
    "the new state h_t a step returns must become h_prev of the next step: your steps all start from the first state "
    "(return the NEW state h_t, not h_prev)": dict(keep_state=True),
    "attend with the new state h_t (Luong): the GRU step comes first, then attention on its output; "
    "scoring with h_{t-1} is Bahdanau's order": dict(attend_to_previous=True),
    "the order of the concatenation matters: h~_t = tanh(W_c [c_t; h_t]) with the context first": dict(concat_order="hc"),
    "h~_t = tanh(W_c [c_t; h_t]): the tanh is missing": dict(use_tanh=False),
    "padded source positions must get weight 0: pass the mask to the attention (True = may attend)": dict(use_mask=False),
}


check_attention_context = AttentionContextCheck().as_function()
check_attention_context_other_sizes = AttentionContextOtherSizesCheck().as_function()
check_attention_context_matmul = AttentionContextMatmulCheck().as_function()
check_attention_context_matmul_square = AttentionContextMatmulSquareCheck().as_function()
check_additive_score = AdditiveScoreCheck().as_function()
check_additive_score_other_sizes = AdditiveScoreOtherSizesCheck().as_function()
check_attention_decoder_step = AttentionDecoderStepCheck().as_function()
check_attention_decoder_steps = AttentionDecoderStepsCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402

_LEGEND = {"B": "batch", "S": "source position", "C": "hidden feature", "T": "query", "Dh": "hidden unit"}


def _context_steps(masked: bool) -> Program:
    mask = [step("masked", "mask", "scores", "mask", what="the mask", axes="B S")] if masked else []
    return Program(
        [step("h1", "unsqueeze", "h", fn=lambda h: h.unsqueeze(1), what="h[:, None, :]", axes="B 1 C"),
         step("prod", "mul", "hs", "h1", what="hs * h", axes="B S C"),
         step("scores", "sum", "prod", dim=-1, what="the sum over the hidden features (the dot product)", axes="B S"),
         *mask,
         step("weights", "softmax", "masked" if masked else "scores", dim=-1, axes="B S"),
         step("w1", "unsqueeze", "weights", fn=lambda w: w.unsqueeze(-1), what="weights[..., None]", axes="B S 1"),
         step("weighted", "mul", "hs", "w1", what="weights * hs", axes="B S C"),
         step("context", "sum", "weighted", dim=1, what="the weighted sum over the source positions", axes="B C")],
        ("context", "weights"), legend=_LEGEND, names={"h": "the decoder state h", "hs": "the encoder states hs", "mask": "the mask"})


CONTEXT_STEPS, CONTEXT_MASKED_STEPS = _context_steps(False), _context_steps(True)
ADDITIVE_STEPS = Program(
    [step("wq", "linear", "q", "W1", what="W1 q", axes="B T Dh"),
     step("wk", "linear", "k", "W2", what="W2 k", axes="B S Dh"),
     step("pair", "add", "wq", "wk", fn=lambda a, b: a.unsqueeze(-2) + b.unsqueeze(-3), what="W1 q + W2 k", axes="B T S Dh"),
     step("hidden", "tanh", "pair", what="tanh", axes="B T S Dh"),
     step("scores", "linear", "hidden", "v", fn=lambda x, v: (x @ v.T).squeeze(-1), what="the output layer v", axes="B T S")],
    ("scores",), legend=_LEGEND, names={"q": "the queries q", "k": "the keys k", "W1": "W1", "W2": "W2"})


def _cases_context(self, inputs, outputs):
    cases = [(CONTEXT_STEPS, inputs, {"context": outputs.get("context"), "weights": outputs.get("weights")})]
    if "masked_context" in outputs:
        cases.append((CONTEXT_MASKED_STEPS, inputs, {"context": outputs.get("masked_context"), "weights": outputs.get("masked_weights")}))
    return cases


def _cases_additive(self, inputs, outputs):
    return [(ADDITIVE_STEPS, {"q": inputs["q"], "k": inputs["k"], **inputs["params"]}, {"scores": outputs.get("scores")})]


AttentionContextCheck.mutation_cases = _cases_context
AttentionContextMatmulCheck.mutation_cases = _cases_context
AdditiveScoreCheck.mutation_cases = _cases_additive

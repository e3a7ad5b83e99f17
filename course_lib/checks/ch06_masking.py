"""Checks for assignment ch06_masking (chapter 6).

Dimension legend: B batch, H heads, T query length, S key length, D head dim.
Masks are boolean, True = may attend (course_lib.masks).
"""

from __future__ import annotations

import math

import torch

from course_lib.attention import scaled_dot_product_attention as reference_sdpa
from course_lib.checks._core import (
    Check,
    CheckFailed,
    diagnose_mask,
    expect_close,
    expect_shape,
    expect_tensor,
    is_close,
    leaf_copies,
    randn,
    student_call,
)
from course_lib.masks import causal_mask as reference_causal
from course_lib.masks import padding_mask as reference_padding

# right-padded rows, and one left-padded row (its first queries see no key under padding + causal)
PAD = 0
TOKENS = torch.tensor(
    [
        [5, 3, 8, 2, 9, 4, 7],
        [6, 2, 7, 1, 0, 0, 0],
        [0, 0, 4, 9, 3, 0, 0],
    ]
)


def _expect_bool(x, what: str) -> torch.Tensor:
    x = expect_tensor(x, what)
    if x.dtype != torch.bool:
        raise CheckFailed(
            f"{what}: expected dtype torch.bool, got {x.dtype}\n"
            "Hint: a 0/1 float mask is ambiguous (does 1 mean keep or drop?); compare with == / != to get booleans"
        )
    return x


def _random_tokens(shape, pad_id: int, g: torch.Generator) -> torch.Tensor:
    """Seeded inputs (``make_inputs(seed=...)``): random real tokens, padding at the end of one row and at both
    ends of another, as in TOKENS, with other lengths; one row has no padding."""
    Bn, Tn = shape
    tokens = torch.randint(1, 10, (Bn, Tn), generator=g)
    tokens[tokens == pad_id] = 0 if pad_id != 0 else 1
    ends = torch.randint(1, Tn, (Bn,), generator=g)
    tokens[1, int(ends[1]):] = pad_id
    tokens[2, : int(torch.randint(1, 3, (1,), generator=g))] = pad_id
    tokens[2, max(int(ends[2]), 3):] = pad_id
    return tokens


class PaddingMaskCheck(Check):
    """padding_mask(tokens, pad_id) -> (B, 1, 1, S) bool, True where the key is a real token."""

    name = "ch6.padding_mask"
    success = "(B, 1, 1, S), True on real tokens, False on padding, for pad id 0 and another (the grader also tries other tokens and ids)"
    pad_id = PAD

    def make_inputs(self):
        tokens = TOKENS.clone()
        if self.pad_id != PAD:  # move the padding to another id, and use 0 as a real token
            tokens = torch.where(tokens == PAD, torch.full_like(tokens, self.pad_id), tokens - 1)
            return {"tokens": tokens, "pad_id": self.pad_id}
        # the instructions: pad_id is not always 0. Here 1 pads and 0 is a real token (the hidden test uses another id)
        other = torch.where(tokens == PAD, torch.ones_like(tokens), torch.where(tokens == 1, torch.zeros_like(tokens), tokens))
        return {"tokens": tokens, "pad_id": self.pad_id, "other_pad": {"tokens": other, "pad_id": 1}}

    def vary_inputs(self, inputs, g):
        return {**inputs, "tokens": _random_tokens(inputs["tokens"].shape, inputs["pad_id"], g)}

    def run(self, fn, inputs):
        outputs = {"mask": student_call(fn, inputs["tokens"].clone(), inputs["pad_id"], what=f"padding_mask(tokens, pad_id={inputs['pad_id']})")}
        if "other_pad" in inputs:
            outputs["other_pad"] = PaddingMaskCheck.run(self, fn, inputs["other_pad"])
        return outputs

    def verify(self, inputs, outputs):
        tokens, pad_id = inputs["tokens"], inputs["pad_id"]
        Bn, Sn = tokens.shape
        mask = _expect_bool(outputs["mask"], "padding mask")
        if tuple(mask.shape) == (Bn, Sn):
            raise CheckFailed(f"padding mask: expected shape (B, 1, 1, S) = {(Bn, 1, 1, Sn)}, got {(Bn, Sn)}\n"
                              "Hint: add a head axis and a query axis so that it broadcasts against (B, H, T, S) scores")
        if tuple(mask.shape) == (Bn, 1, Sn):
            raise CheckFailed(f"padding mask: expected shape (B, 1, 1, S) = {(Bn, 1, 1, Sn)}, got {(Bn, 1, Sn)}\n"
                              "Hint: broadcasting lines shapes up from the right, so (B, 1, S) against (B, H, T, S) puts B on the "
                              "head axis: add both axes, mask[:, None, None, :]")
        if tuple(mask.shape) == (Bn, 1, Sn, 1):
            raise CheckFailed(f"padding mask: expected shape {(Bn, 1, 1, Sn)}, got {(Bn, 1, Sn, 1)}\n"
                              "Hint: padding hides *keys*, the last axis S; you masked queries")
        expect_shape(mask, (Bn, 1, 1, Sn), "padding mask", hint="(B, 1, 1, S) broadcasts against (B, H, T, S)")
        ref = reference_padding(tokens, pad_id)
        if bool((mask == ~ref).all()):
            raise CheckFailed("padding mask: the polarity is inverted: True must mean 'may attend' (a real token), False a pad\n"
                              "Hint: the course's masks mark what a query may see, so the real tokens are True")
        if not bool((mask == ref).all()):
            bad = (mask != ref).nonzero()[0].tolist()
            hint = (f"compare with pad_id itself (here {pad_id}), not with 0" if pad_id != 0 and bool((mask == reference_padding(tokens, 0)).all())
                    else "True exactly at the real tokens, the ids that are not pad_id")
            raise CheckFailed(f"padding mask: wrong value at {tuple(bad)} (batch {bad[0]}, key {bad[3]}) with pad_id={pad_id}\nHint: {hint}")
        if "other_pad" in inputs:  # the same tests with another pad id
            PaddingMaskCheck.verify(self, inputs["other_pad"], outputs["other_pad"])


class PaddingMaskOtherIdCheck(PaddingMaskCheck):
    """padding_mask with pad_id = 3 (0 is then a real token)."""

    name = "ch6.padding_mask_other_pad_id"
    pad_id = 3


class CausalMaskCheck(Check):
    """causal_mask(T) -> (T, T) bool: query t may attend to keys 0..t."""

    name = "ch6.causal_mask"
    success = "lower-triangular (T, T): each position sees itself and the past"

    def make_inputs(self):
        return {"lengths": [5, 1, 7]}

    def vary_inputs(self, inputs, g):
        return {"lengths": [int(n) for n in torch.randint(2, 10, (3,), generator=g)] + [1]}

    def run(self, fn, inputs):
        return {"masks": [student_call(fn, n, what=f"causal_mask({n})") for n in inputs["lengths"]]}

    def verify(self, inputs, outputs):
        for n, mask in zip(inputs["lengths"], outputs["masks"]):
            what = f"causal_mask({n})"
            mask = _expect_bool(mask, what)
            expect_shape(mask, (n, n), what, hint="(T, T): rows are queries, columns keys")
            ref = reference_causal(n)
            if bool((mask == ref).all()):
                continue
            if bool((mask == ref.T).all()):
                hint = "you built the upper triangle: query t (row t) must see keys 0..t (columns at or left of the diagonal)"
            elif bool((mask == ~ref).all()):
                hint = ("the polarity is inverted: this is torch's attn_mask convention (True = masked out, the strict upper "
                        "triangle); the course uses True = may attend")
            elif bool((mask == ref.tril(-1)).all()):
                hint = "the diagonal must be True: a position may attend to itself"
            elif n > 1 and bool((mask == torch.ones(n, n, dtype=torch.bool).tril(1)).all()):
                hint = "off by one: query t also sees key t + 1, one step in the future; keys 0..t only (tril with diagonal=0)"
            elif bool(mask.all()):
                hint = "every entry is True, so nothing is hidden: the future keys (s > t) must be False"
            else:
                hint = "mask[t, s] is True exactly when s <= t"
            raise CheckFailed(f"{what}: wrong values, got\n{mask.int().tolist()}\nHint: {hint}")


def _combined_hint(mask, pad, causal, Bn, Tn) -> str:
    """Read the combined mask as (padding part) op (causal part) and name each wrong part."""
    full = lambda m: m.expand(Bn, 1, Tn, Tn)  # noqa: E731
    if bool((mask == (pad | causal)).all()):
        return "combine with AND (&): a key must pass *both* masks; OR lets padding or the future through"
    ones = torch.ones(Tn, Tn, dtype=torch.bool)
    pads = {
        "right": pad,
        "inverted": ~pad,
        "on queries": pad.transpose(-1, -2),
        "missing": torch.ones_like(pad),
    }
    causals = {
        "right": causal,
        "upper": causal.T,
        "inverted": ~causal,
        "off by one": ones.tril(1),
        "no diagonal": ones.tril(-1),
        "missing": ones,
    }
    pad_words = {
        "inverted": "the padding part is inverted: True must mean a real token (tokens != pad_id)",
        "on queries": "the padding mask hides queries instead of keys: it must be (B, 1, 1, T), the keys on the last axis",
        "missing": "the padding part is missing",
    }
    causal_words = {
        "upper": "the causal part is the upper triangle: query t may see keys 0..t (on and below the diagonal)",
        "inverted": "the causal part is inverted (True = may attend, so the past and the diagonal are True)",
        "off by one": "the causal part is off by one: query t also sees key t + 1; keys 0..t only (tril, diagonal=0)",
        "no diagonal": "the causal part hides the diagonal: a position may attend to itself",
        "missing": "the causal part is missing",
    }
    for pname, p in pads.items():
        for cname, c in causals.items():
            if (pname, cname) != ("right", "right") and bool((mask == full(p & c)).all()):
                return "; ".join(w for w in (pad_words.get(pname), causal_words.get(cname)) if w)
    return "mask[b, 0, t, s] = (tokens[b, s] != pad_id) and (s <= t)"


class CombinedMaskCheck(Check):
    """decoder_mask(tokens, pad_id) -> (B, 1, T, T): padding AND causal."""

    name = "ch6.combined_mask"
    success = "(B, 1, T, T): a key is visible only if it is a real token and not in the future"

    def make_inputs(self):
        return {"tokens": TOKENS.clone(), "pad_id": PAD}

    def vary_inputs(self, inputs, g):
        return {**inputs, "tokens": _random_tokens(inputs["tokens"].shape, inputs["pad_id"], g)}

    def run(self, fn, inputs):
        return {"mask": student_call(fn, inputs["tokens"].clone(), inputs["pad_id"], what="decoder_mask(tokens, pad_id)")}

    def verify(self, inputs, outputs):
        tokens, pad_id = inputs["tokens"], inputs["pad_id"]
        Bn, Tn = tokens.shape
        mask = _expect_bool(outputs["mask"], "combined mask")
        if tuple(mask.shape) == (Tn, Tn):
            raise CheckFailed(f"combined mask: expected shape (B, 1, T, T) = {(Bn, 1, Tn, Tn)}, got {(Tn, Tn)}\n"
                              "Hint: that is the causal mask alone: the padding part (B, 1, 1, T) is missing")
        expect_shape(mask, (Bn, 1, Tn, Tn), "combined mask",
                     hint="(B, 1, 1, T) & (T, T) broadcasts to (B, 1, T, T); make sure both masks have those shapes")
        pad, causal = reference_padding(tokens, pad_id), reference_causal(Tn)
        ref = pad & causal
        if bool((mask == ref).all()):
            return
        hint = _combined_hint(mask, pad, causal, Bn, Tn)
        raise CheckFailed(f"combined mask: {int((mask != ref).sum())} entries are wrong\nHint: {hint}")


class MaskedAttentionCheck(Check):
    """masked_attention(q, k, v, mask) -> (out, weights): weights exactly 0 where the mask is False, no NaN."""

    name = "ch6.masked_attention"
    reference = staticmethod(reference_sdpa)  # timed only when an answer is slow (the slow note)
    success = ("masked keys get weight exactly 0, other rows sum to 1, fully masked rows give 0 (no NaN), gradients finite, "
               "in float64 and float32 (the grader also tries other sizes)")
    dtype = torch.float64
    heads = 2

    def make_inputs(self):
        Bn, Tn = TOKENS.shape
        d = 4
        mask = reference_padding(TOKENS, PAD) & reference_causal(Tn)  # (B, 1, T, T), with fully masked rows in batch 2
        inputs = {
            "q": randn(Bn, self.heads, Tn, d, seed=60, dtype=self.dtype),
            "k": randn(Bn, self.heads, Tn, d, seed=61, dtype=self.dtype),
            "v": randn(Bn, self.heads, Tn, 3, seed=62, dtype=self.dtype),
            "mask": mask,
            "grad_out": randn(Bn, self.heads, Tn, 3, seed=63, dtype=self.dtype),
        }
        if self.dtype == torch.float64:  # a fill value must fit float32 scores too (torch.finfo(scores.dtype).min)
            inputs["float32"] = {n: x.float() if x.is_floating_point() else x for n, x in inputs.items()}
        return inputs

    def run(self, fn, inputs):
        q, k, v, mask = (inputs[n].clone() for n in ("q", "k", "v", "mask"))
        result = student_call(fn, q, k, v, mask, what="masked_attention(q, k, v, mask)")
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"masked_attention should return a pair (out, weights), got {type(result).__name__}")
        out, weights = result
        qg, kg, vg = (inputs[n].clone().requires_grad_(True) for n in ("q", "k", "v"))
        g_out, _ = student_call(fn, qg, kg, vg, mask, what="masked_attention")
        grads = None
        if isinstance(g_out, torch.Tensor) and g_out.shape == inputs["grad_out"].shape and g_out.requires_grad:
            (torch.nan_to_num(g_out) * inputs["grad_out"]).sum().backward()
            grads = [x.grad for x in (qg, kg, vg)]
        outputs = {"out": out, "weights": weights, "grads": grads}
        if "float32" in inputs:
            outputs["float32"] = MaskedAttentionFloat32Check().run(fn, inputs["float32"])
        return outputs

    def verify(self, inputs, outputs):
        q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs["mask"]
        Bn, Hn, Tn, _ = q.shape
        full = mask.expand(Bn, Hn, Tn, Tn)
        allowed_any = full.any(-1)  # (B, H, T): False on fully masked rows
        # 1. shapes
        o, w = outputs["out"], outputs["weights"]
        if isinstance(o, torch.Tensor) and isinstance(w, torch.Tensor) and tuple(o.shape) == (Bn, Hn, Tn, Tn) and tuple(w.shape) == (Bn, Hn, Tn, v.shape[-1]):
            raise CheckFailed("the two results come in the wrong order: your first result has the weights' shape and your second "
                              "the output's\nHint: return (out, weights), in that order")
        out = expect_shape(outputs["out"], (Bn, Hn, Tn, v.shape[-1]), "out")
        weights = expect_shape(outputs["weights"], (Bn, Hn, Tn, Tn), "weights").detach().double()
        # 2. behaviour
        if not torch.isfinite(weights).all() or not torch.isfinite(out).all():
            bad_rows = ~torch.isfinite(weights).all(-1)
            if bool(bad_rows.any()) and bool((bad_rows <= ~allowed_any).all()):
                hint = ("the NaN rows are the fully masked ones (a left-padded query that may see no key): softmax(-inf, ..., -inf) "
                        "= 0/0. Use a very negative *finite* fill value (torch.finfo(dtype).min) and set the weights of masked "
                        "keys to 0 after the softmax")
            else:
                hint = "NaN appears in rows where some keys are allowed: check the mask polarity and the fill value"
            raise CheckFailed(f"weights or out contain NaN/inf\nHint: {hint}")
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        specific = diagnose_mask(weights, full, scores=scores, ref_unmasked=scores.softmax(-1))
        if specific is None:
            transposed = full.transpose(-1, -2)
            on_queries = scores.masked_fill(~transposed, torch.finfo(scores.dtype).min).softmax(-1).masked_fill(~transposed, 0.0)
            if is_close(weights, on_queries, atol=1e-4):
                specific = "the mask is applied to the queries (transposed): the last axis of the mask is the keys, mask[..., t, s]"
        if specific:
            raise CheckFailed(f"weights: masked keys (pad or future) must get weight exactly 0, and the others sum to 1\nHint: {specific}")
        rows_with_keys = allowed_any[..., None].expand_as(full)
        leaked = weights[~full & rows_with_keys]  # fully masked rows are checked below
        if leaked.numel() and bool((leaked != 0).any()):
            mx = float(leaked.abs().max())
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            inverted = scores.masked_fill(full, torch.finfo(scores.dtype).min).softmax(-1)
            if is_close(weights.masked_fill(~allowed_any[..., None] | full, 0), inverted.masked_fill(~allowed_any[..., None] | full, 0), atol=1e-4):
                hint = "the mask polarity is inverted: True means 'may attend', fill the scores where the mask is False"
            elif mx < 1e-3:
                hint = "the masked weights are tiny but not 0: the fill value is not negative enough (use torch.finfo(dtype).min), or zero them after the softmax"
            else:
                hint = "fill the scores of masked keys (mask False) before the softmax"
            raise CheckFailed(f"weights: masked keys (pad or future) must get weight exactly 0, got up to {mx:.3g}\nHint: {hint}")
        sums = weights.sum(-1)
        if not torch.allclose(sums[allowed_any], torch.ones_like(sums[allowed_any]), atol=1e-5):
            hint = "take the softmax over the last axis (the keys) after filling the scores of masked keys"
            raise CheckFailed(f"weights: each query's weights over the keys it may see should sum to 1, got sums like "
                              f"{[round(float(s), 4) for s in sums[allowed_any][:4]]}\nHint: {hint}")
        if bool((weights[~allowed_any] != 0).any()):
            raise CheckFailed("weights: a query that may see no key (fully masked row) must get weights 0, not a uniform row\n"
                              "Hint: after the softmax, set the weights of masked keys to 0 (this also zeroes fully masked rows)")
        # 3. values
        ref_out, ref_weights = reference_sdpa(q, k, v, mask)
        atol = 1e-5 if self.dtype == torch.float64 else 1e-4
        expect_close(weights, ref_weights, "weights", hint="softmax(q k^T / sqrt(d_k)) with masked scores, over the last axis", atol=atol)
        expect_close(out, ref_out, "out", hint="out = weights @ v", atol=atol)
        # 4. gradients: finite, and none reaches v through a masked key
        if outputs["grads"] is None:
            raise CheckFailed("gradients do not flow.\nHint: use torch operations only (no .detach(), .numpy() or torch.no_grad())")
        qg, kg, vg = leaf_copies(q, k, v)
        (reference_sdpa(qg, kg, vg, mask).out * inputs["grad_out"]).sum().backward()
        for name, got, ref in zip("qkv", outputs["grads"], (qg.grad, kg.grad, vg.grad)):
            if got is None:
                raise CheckFailed(f"no gradient reached {name}")
            if not torch.isfinite(got).all():
                raise CheckFailed(f"the gradient with respect to {name} contains NaN\nHint: fully masked rows must stay finite in the backward pass too")
            expect_close(got, ref, f"gradient with respect to {name}", atol=atol)
        if "float32" in inputs:  # the same tests on float32 inputs
            MaskedAttentionFloat32Check().verify(inputs["float32"], outputs["float32"])


class MaskedAttentionFloat32Check(MaskedAttentionCheck):
    """masked_attention in float32 with three heads."""

    name = "ch6.masked_attention_float32"
    dtype = torch.float32
    heads = 3


check_padding_mask = PaddingMaskCheck().as_function()
check_padding_mask_other_pad_id = PaddingMaskOtherIdCheck().as_function()
check_causal_mask = CausalMaskCheck().as_function()
check_combined_mask = CombinedMaskCheck().as_function()
check_masked_attention = MaskedAttentionCheck().as_function()
check_masked_attention_float32 = MaskedAttentionFloat32Check().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402

MASKED_ATTENTION_STEPS = Program(
    [step("scores", "matmul_t", "q", "k", what="the scores q k^T", axes="B H T S"),
     step("scaled", "scale", "scores", scale=("d_k", -0.5), what="the scale", axes="B H T S"),
     step("masked", "mask", "scaled", "mask", fn=lambda x, m: x.masked_fill(~m, torch.finfo(x.dtype).min), what="the mask", axes="B H T S"),
     step("softmaxed", "softmax", "masked", dim=-1, axes="B H T S"),
     step("weights", "mul", "softmaxed", "mask", what="zeroing the masked weights after the softmax", axes="B H T S"),
     step("out", "matmul", "weights", "v", what="weights @ v", axes="B H T Dv")],
    ("out", "weights"), sizes=lambda env: {"d_k": env["q"].shape[-1], "d_v": env["v"].shape[-1]},
    legend={"B": "batch", "H": "head", "T": "query", "S": "key", "Dv": "value feature"}, names={"mask": "the mask"})
MaskedAttentionCheck.steps = MASKED_ATTENTION_STEPS

"""Checks for assignment ch07_transformer (chapter 7).

Parts: an encoder layer (residual + LayerNorm), a decoder layer (causal
self-attention, cross-attention), the learning-rate schedule, the label-smoothed
loss, greedy decoding. The learner's layers keep ``course_lib.transformer``'s
attribute names, so the check can load the same weights into both.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks._core import (
    Check,
    CheckFailed,
    as_number,
    expect_close,
    expect_shape,
    expect_tensor,
    first_match,
    is_close,
    is_finite_number,
    randn,
    seeded,
    student_call,
)
from course_lib.masks import causal_mask
from course_lib.train import transformer_lrate
from course_lib.transformer import (
    DecoderLayer,
    DecoderOutput,
    EncoderLayer,
    EncoderOutput,
    TransformerConfig,
    greedy_decode,
)

# Deliberately uneven sizes so that swapped axes fail: B=3, T=5, S=7, C=12, H=3, F=20.
B, T, S, C, H, F_ = 3, 5, 7, 12, 3, 20
SRC_LENGTHS = (7, 4, 2)  # real source positions per row; the rest is padding


def _src_mask(lengths=SRC_LENGTHS, length: int = S) -> torch.Tensor:
    return (torch.arange(length)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]  # (B, 1, 1, S)


def _state(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights (LayerNorms included, so a misplaced norm shows) in float64."""
    g = seeded(seed)
    state = {}
    for name, p in module.state_dict().items():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm3.weight"):
            state[name] = 0.5 + torch.rand(p.shape, generator=g, dtype=torch.float64)
        elif "norm" in name:
            state[name] = 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
        else:
            state[name] = torch.randn(p.shape, generator=g, dtype=torch.float64) / math.sqrt(p.shape[-1])
    return state


def _build(cls, state, what: str, *args) -> nn.Module:
    layer = student_call(cls, *args, what=what)
    if not isinstance(layer, nn.Module):
        raise CheckFailed(f"{what} should build an nn.Module, got {type(layer).__name__}")
    layer = layer.double().eval()  # dropout off
    expected, got = set(state), set(layer.state_dict())
    if expected != got:
        missing, extra = sorted(expected - got), sorted(got - expected)
        raise CheckFailed(
            f"{what}: the layer's parameters do not have the expected names.\n"
            f"missing: {missing[:6]}{' ...' if len(missing) > 6 else ''}\nunexpected: {extra[:6]}\n"
            "Hint: keep the __init__ given in the notebook (self_attn, ffn, norm1, ... as written there)."
        )
    layer.load_state_dict(state)
    return layer


def _reference(cls, state, *args) -> nn.Module:
    layer = cls(*args, dropout=0.0).double().eval()
    layer.load_state_dict(state)
    return layer


# --------------------------------------------------------------------------- (a) encoder layer


def _encoder_variants(ref: EncoderLayer, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The encoder layer computed in the usual wrong ways, to name the mistake."""
    attn = lambda h, m=mask: ref.self_attn(h, h, h, mask=m).out  # noqa: E731
    ffn, n1, n2 = ref.ffn, ref.norm1, ref.norm2
    with torch.no_grad():
        pre_ln = x + attn(n1(x))
        pre_ln = pre_ln + ffn(n2(pre_ln))
        no_residual = n2(ffn(n1(attn(x))))
        norm_inside = x + n1(attn(x))
        norm_inside = norm_inside + n2(ffn(norm_inside))
        h = n1(x + attn(x))
        ffn_residual_from_input = n2(x + ffn(h))
        h = n1(x + attn(x, None))
        no_mask = n2(h + ffn(h))
        h = n1(x + attn(x, ~mask))
        inverted = n2(h + ffn(h))
        h = n1(x + attn(x, mask.transpose(-1, -2)))
        on_queries = n2(h + ffn(h))
        h = n1(x + attn(x))
        ffn_no_norm = h + ffn(h)
    return {
        "the mask polarity is inverted: True means 'may attend' (a real token), so pass the mask as it is": inverted,
        "the padding mask is applied on the queries (mask.transpose(-1, -2) or (B, 1, S, 1)); it hides *keys*: (B, 1, 1, S)": on_queries,
        "the second Add & Norm is missing its LayerNorm: x = norm2(x + ffn(x))": ffn_no_norm,
        "this is the pre-LN layer (LayerNorm before each sublayer, x + Sublayer(LayerNorm(x))); "
        "the paper's layer normalises after the residual sum: LayerNorm(x + Sublayer(x))": pre_ln,
        "the residual connections are missing: add the sublayer's input back before normalising": no_residual,
        "you normalised the sublayer's output before adding it (x + LayerNorm(Sublayer(x))); "
        "the norm comes after the sum: LayerNorm(x + Sublayer(x))": norm_inside,
        "the FFN's residual adds the layer's original input; it must add the FFN's own input "
        "(the output of the attention block)": ffn_residual_from_input,
        "the mask is not passed to the self-attention, so padded keys are attended": no_mask,
    }


def _diagnose(got: torch.Tensor, variants: dict[str, torch.Tensor], default: str) -> str:
    for hint, value in variants.items():
        if is_close(got, value, atol=1e-6, rtol=1e-7):
            return hint
    return default


class EncoderLayerCheck(Check):
    """EncoderLayer(d_model, n_heads, d_ff, dropout): post-LN self-attention + FFN, each with Add & Norm."""

    name = "encoder_layer"
    success = "shapes, padding mask, Add & Norm order, values and gradients match the reference"
    sizes = (B, S, C, H, F_)
    seed = 70

    def make_inputs(self):
        B_, S_, C_, H_, F__ = self.sizes
        state = _state(EncoderLayer(C_, H_, F__, dropout=0.0), self.seed)
        lengths = [S_, max(1, S_ - 3), 2][:B_]
        x = randn(B_, S_, C_, seed=self.seed + 1)
        x_changed_pad = x.clone()
        for b, n in enumerate(lengths):
            x_changed_pad[b, n:] += 3.0  # only padded positions change
        return {
            "sizes": list(self.sizes), "state": state, "x": x, "x_changed_pad": x_changed_pad, "lengths": lengths,
            "mask": _src_mask(lengths, S_), "grad_out": randn(B_, S_, C_, seed=self.seed + 2),
        }  # fmt: skip

    def run(self, cls, inputs):
        _, _, C_, H_, F__ = inputs["sizes"]
        what = f"EncoderLayer({C_}, {H_}, {F__}, dropout=0.0)"
        layer = _build(cls, inputs["state"], what, C_, H_, F__, 0.0)
        x, mask = inputs["x"], inputs["mask"]
        call = lambda *a: student_call(layer, *a, what="your EncoderLayer's forward(x, mask)")  # noqa: E731
        out = call(x, mask)
        changed = call(inputs["x_changed_pad"], mask)
        xg = x.clone().requires_grad_(True)
        grad = None
        g_out = call(xg, mask)
        if isinstance(g_out, torch.Tensor) and g_out.requires_grad and g_out.shape == x.shape:
            (g_out * inputs["grad_out"]).sum().backward()
            grad = xg.grad
        return {"out": out, "out_changed_pad": changed, "grad_x": grad}

    def verify(self, inputs, outputs):
        B_, S_, C_, H_, F__ = inputs["sizes"]
        x, mask, lengths = inputs["x"], inputs["mask"], inputs["lengths"]
        out = expect_shape(outputs["out"], (B_, S_, C_), "out", hint="a layer maps (B, S, C) to (B, S, C)")
        out = out.detach().double()
        ref = _reference(EncoderLayer, inputs["state"], C_, H_, F__)
        with torch.no_grad():
            expected = ref(x, mask).out
        specific = first_match(out, _encoder_variants(ref, x, mask), atol=1e-6, rtol=1e-7) if not is_close(out, expected, atol=1e-6) else None
        if specific:  # a recognised mistake is named before the generic behaviour tests
            expect_close(out, expected, "out", hint=specific, axes="B S C")
        # behaviour: changing padded positions must not change real positions' outputs
        changed = expect_shape(outputs["out_changed_pad"], (B_, S_, C_), "out").detach().double()
        for b, n in enumerate(lengths):
            if not is_close(changed[b, :n], out[b, :n], atol=1e-6):
                raise CheckFailed(
                    "changing only the padded positions of x changed the outputs at real positions\n"
                    "Hint: the padded keys are visible: pass the mask to the self-attention (True = may attend) so they get weight 0"
                )
        expect_close(out, expected, "out", axes="B S C",
                     hint="compare each step with x = norm1(x + dropout1(attn)), then x = norm2(x + dropout2(ffn(x)))")
        if outputs["grad_x"] is None:
            raise CheckFailed("gradients do not flow back to x.\nHint: no .detach(), .item() or torch.no_grad() in forward")
        xg = x.clone().requires_grad_(True)
        (ref(xg, mask).out * inputs["grad_out"]).sum().backward()
        expect_close(outputs["grad_x"], xg.grad, "gradient with respect to x")


class EncoderLayerOtherSizesCheck(EncoderLayerCheck):
    """The same encoder layer at other sizes (B=2, S=6, C=16, H=4, F=9)."""

    name = "encoder_layer_other_sizes"
    sizes = (2, 6, 16, 4, 9)
    seed = 170


# --------------------------------------------------------------------------- (b) decoder layer


def _decoder_variants(ref: DecoderLayer, x, memory, memory_mask) -> dict[str, torch.Tensor]:
    T_ = x.shape[1]
    causal = causal_mask(T_)
    sa = lambda h, m: ref.self_attn(h, h, h, mask=m).out  # noqa: E731
    ca = lambda q, kv, m=memory_mask: ref.cross_attn(q, kv, kv, mask=m).out  # noqa: E731
    n1, n2, n3, ffn = ref.norm1, ref.norm2, ref.norm3, ref.ffn

    def post_ln(self_mask, cross_kv=None, cross_mask=memory_mask):
        h = n1(x + sa(x, self_mask))
        h = n2(h + ca(h, memory if cross_kv is None else cross_kv(h), cross_mask))
        return n3(h + ffn(h))

    with torch.no_grad():
        pre = x + sa(n1(x), causal)
        pre = pre + ca(n2(pre), memory)
        pre = pre + ffn(n3(pre))
        variants = {
            "the decoder's self-attention sees future positions: combine a causal mask "
            "(course_lib.masks.causal_mask(T), True on and below the diagonal) into it": post_ln(None),
            "the causal mask is upside down: True must mean 'may attend', i.e. keys at or before the query": post_ln(~causal | torch.eye(T_, dtype=torch.bool)),
            "the cross-attention uses the decoder states as keys and values; K and V must come from "
            "the encoder's output (memory), only Q from the decoder": post_ln(causal, cross_kv=lambda h: h, cross_mask=None),
            "the cross-attention ignores memory_mask, so padded source positions are attended": post_ln(causal, cross_mask=None),
            "this is the pre-LN layer (LayerNorm before each sublayer); the paper normalises after each residual sum": pre,
            "the causal mask is off by one: query t also sees key t + 1; keys 0..t only (tril with diagonal=0)":
                post_ln(torch.ones(T_, T_, dtype=torch.bool).tril(1)),
            "the memory mask polarity is inverted: True means 'may attend' (a real source token), so pass memory_mask as it is":
                post_ln(causal, cross_mask=~memory_mask),
        }
    return variants


class DecoderLayerCheck(Check):
    """DecoderLayer(d_model, n_heads, d_ff, dropout).forward(x, memory, memory_mask): causal self-attention,
    cross-attention to the encoder output, FFN, each post-LN Add & Norm."""

    name = "decoder_layer"
    success = "causal self-attention, cross-attention to memory, Add & Norm, values and gradients match"
    sizes = (B, T, S, C, H, F_)
    seed = 71

    def make_inputs(self):
        B_, T_, S_, C_, H_, F__ = self.sizes
        state = _state(DecoderLayer(C_, H_, F__, dropout=0.0), self.seed)
        lengths = [S_, max(1, S_ - 3), 2][:B_]
        x, memory = randn(B_, T_, C_, seed=self.seed + 1), randn(B_, S_, C_, seed=self.seed + 2)
        x_future = x.clone()
        x_future[:, -1] += 3.0  # only the last target position changes
        memory_changed_pad = memory.clone()
        for b, n in enumerate(lengths):
            memory_changed_pad[b, n:] += 3.0
        return {
            "sizes": list(self.sizes), "state": state, "x": x, "memory": memory, "x_future": x_future,
            "memory_changed_pad": memory_changed_pad, "lengths": lengths, "memory_mask": _src_mask(lengths, S_),
            "grad_out": randn(B_, T_, C_, seed=self.seed + 3),
        }  # fmt: skip

    def run(self, cls, inputs):
        _, _, _, C_, H_, F__ = inputs["sizes"]
        what = f"DecoderLayer({C_}, {H_}, {F__}, dropout=0.0)"
        layer = _build(cls, inputs["state"], what, C_, H_, F__, 0.0)
        x, memory, mm = inputs["x"], inputs["memory"], inputs["memory_mask"]
        call = lambda *a: student_call(layer, *a, what="your DecoderLayer's forward(x, memory, memory_mask)")  # noqa: E731
        out = call(x, memory, mm)
        future = call(inputs["x_future"], memory, mm)
        changed_pad = call(x, inputs["memory_changed_pad"], mm)
        xg, mg = x.clone().requires_grad_(True), memory.clone().requires_grad_(True)
        grads = None
        g_out = call(xg, mg, mm)
        if isinstance(g_out, torch.Tensor) and g_out.requires_grad and g_out.shape == x.shape:
            (g_out * inputs["grad_out"]).sum().backward()
            grads = [xg.grad, mg.grad]
        return {"out": out, "out_future": future, "out_changed_pad": changed_pad, "grads": grads}

    def verify(self, inputs, outputs):
        B_, T_, S_, C_, H_, F__ = inputs["sizes"]
        x, memory, mm = inputs["x"], inputs["memory"], inputs["memory_mask"]
        shape_hint = (
            "the output has one vector per *target* position, (B, T, C); if you got (B, S, C), the "
            "cross-attention's query is the memory: the query must come from the decoder"
        )
        out = expect_shape(outputs["out"], (B_, T_, C_), "out", hint=shape_hint).detach().double()
        ref = _reference(DecoderLayer, inputs["state"], C_, H_, F__)
        variants = {h: v for h, v in _decoder_variants(ref, x, memory, mm).items() if v is not None}
        with torch.no_grad():
            expected = ref(x, memory, self_mask=causal_mask(T_), memory_mask=mm).out
        specific = first_match(out, variants, atol=1e-6, rtol=1e-7) if not is_close(out, expected, atol=1e-6) else None
        if specific:  # a recognised mistake is named before the generic behaviour tests
            expect_close(out, expected, "out", hint=specific, axes="B T C")
        # behaviour 1: no peeking at the future
        future = expect_shape(outputs["out_future"], (B_, T_, C_), "out").detach().double()
        if not is_close(future[:, :-1], out[:, :-1], atol=1e-6):
            raise CheckFailed(
                "changing only the last target position changed the outputs at earlier positions\n"
                "Hint: " + _diagnose(out, variants, "the self-attention needs a causal mask (query t may see keys 0..t)")
            )
        # behaviour 2: padded source positions are invisible
        changed = expect_shape(outputs["out_changed_pad"], (B_, T_, C_), "out").detach().double()
        if not is_close(changed, out, atol=1e-6):
            raise CheckFailed(
                "changing only padded positions of memory changed the output\n"
                "Hint: pass memory_mask (True = may attend) to the cross-attention"
            )
        default = "compare each step with norm1(x + self-attention), norm2(x + cross-attention to memory), norm3(x + ffn(x))"
        expect_close(out, expected, "out", hint=default, axes="B T C")
        if outputs["grads"] is None:
            raise CheckFailed("gradients do not flow back to x and memory.\nHint: no .detach() or torch.no_grad() in forward")
        xg, mg = x.clone().requires_grad_(True), memory.clone().requires_grad_(True)
        (ref(xg, mg, self_mask=causal_mask(T_), memory_mask=mm).out * inputs["grad_out"]).sum().backward()
        expect_close(outputs["grads"][0], xg.grad, "gradient with respect to x")
        if outputs["grads"][1] is None:
            raise CheckFailed("no gradient reached memory: is the cross-attention using it (as keys and values)?")
        expect_close(outputs["grads"][1], mg.grad, "gradient with respect to memory")


class DecoderLayerLongerSourceCheck(DecoderLayerCheck):
    """The decoder layer with a source longer than the target and other sizes (B=2, T=4, S=9, C=8, H=2, F=11)."""

    name = "decoder_layer_longer_source"
    sizes = (2, 4, 9, 8, 2, 11)
    seed = 171


# --------------------------------------------------------------------------- (c) schedule


def _schedule_variants(step: int, d_model: int, warmup: int) -> dict[str, float]:
    f = lambda s: d_model**-0.5 * min(s**-0.5, s * warmup**-1.5)  # noqa: E731
    return {
        "your peak comes one step early: you used step + 1 (steps count from 1 already, the first update is step 1)": f(step + 1),
        "your peak comes one step late: you used step - 1 (steps count from 1; the first update is step 1)": f(step - 1) if step > 1 else math.nan,
        "use min(...), not max(...): warmup rises linearly, then the rate decays": d_model**-0.5 * max(step**-0.5, step * warmup**-1.5),
        "after warm-up your rate keeps rising linearly: the decay term is step^-0.5 (1/sqrt(step)), and lrate is the min of "
        "the two terms": d_model**-0.5 * step * warmup**-1.5,
        "the warmup term is step * warmup^-1.5 (power -1.5, not -0.5)": d_model**-0.5 * min(step**-0.5, step * warmup**-0.5),
        "the factor d_model^-0.5 is missing": min(step**-0.5, step * warmup**-1.5),
        "the factor is d_model^-0.5 (1/sqrt(d_model)), not d_model^0.5": d_model**0.5 * min(step**-0.5, step * warmup**-1.5),
        "the factor is d_model^-0.5 (1/sqrt(d_model)), not 1/d_model": d_model**-1 * min(step**-0.5, step * warmup**-1.5),
        "the warm-up is missing: for step < warmup_steps the rate rises as step * warmup_steps^-1.5 (lrate is the min of "
        "the two terms)": d_model**-0.5 * step**-0.5,
    }


def _schedule_hint(cases, values) -> str:
    """Name a schedule mistake from all the (step, d_model, warmup) cases at once; else say which regime differs."""
    close = lambda v, e: abs(v - e) <= 1e-7 * abs(e)  # noqa: E731
    per_case = [_schedule_variants(*c) for c in cases]
    for hint in per_case[0]:
        pairs = [(v, alts[hint]) for v, alts in zip(values, per_case) if math.isfinite(alts[hint])]
        if pairs and all(close(v, alt) for v, alt in pairs):
            return hint
    expected = [transformer_lrate(*c) for c in cases]
    ratios = [v / e for v, e in zip(values, expected)]
    if max(ratios) - min(ratios) < 1e-6 * abs(ratios[0]):
        return f"every rate is {ratios[0]:.4g} times the paper's: the shape of the schedule is right, a constant factor is not"
    during = [close(v, e) for (st, _, w), v, e in zip(cases, values, expected) if st <= w]
    after = [close(v, e) for (st, _, w), v, e in zip(cases, values, expected) if st > w]
    wrong = [(c, v, e) for c, v, e in zip(cases, values, expected) if not close(v, e)]
    (st, d, w), v, e = wrong[0]
    where = f"e.g. lrate({st}, {d}, {w}) = {v:.6g}, expected {e:.6g} (ratio {v / e:.4g})"
    if during and all(during) and after and not any(after):
        return f"your rates match the paper during warm-up (step <= warmup_steps) and differ after it: {where}"
    if after and all(after) and during and not any(during):
        return f"your rates match the paper after warm-up and differ during it (step <= warmup_steps): {where}"
    return f"lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5); {where}"


class LrateCheck(Check):
    """lrate(step, d_model, warmup_steps) -> float: the paper's schedule, steps counted from 1."""

    name = "lrate"
    success = "warmup, peak at step = warmup_steps and the 1/sqrt(step) decay match the paper"
    cases = [(1, 512, 4000), (2000, 512, 4000), (3999, 512, 4000), (4000, 512, 4000), (4001, 512, 4000),
             (16000, 512, 4000), (100000, 1024, 4000), (1, 64, 10), (10, 64, 10), (11, 64, 10)]  # fmt: skip

    def make_inputs(self):
        return {"cases": [list(c) for c in self.cases]}

    def vary_inputs(self, inputs, g):  # other steps on both sides of another warmup
        r = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
        cases = []
        for _ in range(3):
            d_model, warmup = 8 * r(4, 128), r(10, 5000)
            cases += [[1, d_model, warmup], [r(2, warmup), d_model, warmup], [warmup, d_model, warmup], [warmup + r(1, 3 * warmup), d_model, warmup]]
        return {"cases": cases}

    def run(self, fn, inputs):
        values = []
        kinds = []
        for step, d_model, warmup in inputs["cases"]:
            v = student_call(fn, step, d_model, warmup, what=f"lrate({step}, {d_model}, {warmup})")
            kinds.append(type(v).__name__)
            values.append(as_number(v))
        return {"values": values, "types": kinds}

    def verify(self, inputs, outputs):
        values = outputs["values"]
        if not isinstance(values, list) or len(values) != len(inputs["cases"]):
            raise CheckFailed(f"expected one number per call, got {values!r:.100}")
        tensor = "Tensor" in (outputs.get("types") or [])  # issue 26: a wrong return type is named, not read as a wrong value
        type_failure = CheckFailed("lrate should return a Python float, got a torch.Tensor (right only to float32's 7 digits)\n"
                                   "Hint: compute with math (math.sqrt, min) or turn the one-element tensor into a number with .item()")
        for (step, d_model, warmup), v in zip(inputs["cases"], values):
            if not is_finite_number(v):
                raise CheckFailed(f"lrate({step}, {d_model}, {warmup}) should return a finite float, got {v!r:.60}")
            expected = transformer_lrate(step, d_model, warmup)
            if tensor and abs(v - expected) <= 1e-5 * abs(expected) and abs(v - expected) > 1e-7 * abs(expected):
                raise type_failure
            if abs(v - expected) > 1e-7 * abs(expected):
                hint = _schedule_hint(inputs["cases"], [float(x) if is_finite_number(x) else math.nan for x in values]) \
                    if all(is_finite_number(x) for x in values) else "lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)"
                raise CheckFailed(f"lrate({step}, {d_model}, {warmup}): expected {expected:.6g}, got {v:.6g}\nHint: {hint}")
        if tensor:
            raise CheckFailed("lrate should return a Python float, got a torch.Tensor\n"
                              "Hint: compute with math (math.sqrt, min) or turn the one-element tensor into a number with .item()")


class LratePeakCheck(Check):
    """Over steps 1 .. 3 * warmup, the rate peaks exactly at step = warmup (d_model=24, warmup=37)."""

    name = "lrate_peak"
    success = "the schedule peaks at step = warmup_steps"

    def make_inputs(self):
        return {"d_model": 24, "warmup": 37, "n_steps": 111}

    def vary_inputs(self, inputs, g):
        warmup = int(torch.randint(20, 60, (1,), generator=g))
        return {"d_model": 8 * int(torch.randint(2, 64, (1,), generator=g)), "warmup": warmup, "n_steps": 3 * warmup}

    def run(self, fn, inputs):
        values = []
        for step in range(1, inputs["n_steps"] + 1):
            v = student_call(fn, step, inputs["d_model"], inputs["warmup"], what=f"lrate({step}, ...)")
            values.append(float(v) if isinstance(v, (int, float, torch.Tensor)) else math.nan)
        return {"values": values}

    def verify(self, inputs, outputs):
        values = outputs["values"]
        if not isinstance(values, list) or len(values) != inputs["n_steps"] or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise CheckFailed("lrate should return one finite float for every step 1, 2, ...")
        peak = max(range(len(values)), key=values.__getitem__) + 1
        cases = [(s, inputs["d_model"], inputs["warmup"]) for s in range(1, inputs["n_steps"] + 1)]
        if peak != inputs["warmup"]:
            raise CheckFailed(f"with warmup_steps={inputs['warmup']} the rate should peak at step {inputs['warmup']}, yours peaks at step {peak}\n"
                              f"Hint: {_schedule_hint(cases, values)}")
        expected = [transformer_lrate(*c) for c in cases]
        if not all(abs(v - e) <= 1e-7 * abs(e) + 1e-12 for v, e in zip(values, expected)):
            raise CheckFailed(f"the rates for steps 1..{inputs['n_steps']} differ from the paper's although the peak is right\n"
                              f"Hint: {_schedule_hint(cases, values)}")
        expected = [transformer_lrate(s, inputs["d_model"], inputs["warmup"]) for s in range(1, inputs["n_steps"] + 1)]
        expect_close(torch.tensor(values, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64), "the rates for steps 1..111", atol=1e-12, rtol=1e-7)


# --------------------------------------------------------------------------- (d) label smoothing


def _smoothing_reference(logits, target, eps, pad_id):
    return F.cross_entropy(logits.flatten(0, -2), target.flatten(), label_smoothing=eps, ignore_index=pad_id)


def _smoothing_variants(logits, target, eps, pad_id) -> dict[str, torch.Tensor]:
    V = logits.shape[-1]
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = target != pad_id
    mean_real = lambda per_token: (per_token * keep).sum() / keep.sum()  # noqa: E731
    others = (-logp.sum(-1) - nll) / (V - 1)  # mean of -log p over the V - 1 wrong classes
    no_pad_col = (-logp.sum(-1) - nll + logp[..., pad_id]) / (V - 2)  # ... and without the pad class
    per_token = (1 - eps) * nll + eps * (-logp.mean(-1))
    variants = {}
    if pad_id != 0:
        zero = target != 0
        variants["you left out the targets equal to 0, not those equal to pad_id: use the pad_id argument"] = (per_token * zero).sum() / zero.sum()
    return variants | {
        "padded target positions are included in the mean: leave out every position whose target is pad_id": per_token.mean(),
        "you summed over the tokens; the loss is the mean over the real (non-pad) tokens": (per_token * keep).sum(),
        "you divided by the number of all positions, pads included; divide by the number of real (non-pad) tokens":
            (per_token * keep).sum() / keep.numel(),
        "you spread eps over the V - 1 wrong classes; this course (like torch's label_smoothing) gives eps / V to "
        "every class, the true one included: q = (1 - eps) one_hot + eps / V": mean_real((1 - eps) * nll + eps * others),
        "you left the pad class out of the smoothing (and the true class): here, as in torch, eps / V goes to "
        "every class of the vocabulary, pad included": mean_real((1 - eps) * nll + eps * no_pad_col),
        "the smoothed loss is (1 - eps) * nll + eps * (uniform cross-entropy); the nll must be weighted by (1 - eps)": mean_real(nll + eps * (-logp.mean(-1))),
        "this is the plain cross-entropy: eps is not used": mean_real(nll),
        "the uniform part is the *mean* of -log p over the V classes (eps / V each), not their sum": mean_real((1 - eps) * nll + eps * (-logp.sum(-1))),
        "the uniform part is the mean of -log p over all V classes, not over the batch": mean_real((1 - eps) * nll) + eps * (-logp.mean()),
    }


class LabelSmoothedLossCheck(Check):
    """label_smoothed_loss(logits, target, eps, pad_id) -> scalar, equal to
    torch.nn.CrossEntropyLoss(label_smoothing=eps, ignore_index=pad_id)."""

    name = "label_smoothed_loss"
    success = ("value and gradients match cross-entropy against (1 - eps) one_hot + eps / V, padding ignored, "
               "for pad id 0 and another (the grader also tries other ids, eps and sizes)")
    V = 7
    eps = 0.1
    pad_id = 0
    seed = 72

    def make_inputs(self):
        inputs = self._inputs(self.V, self.eps, self.pad_id, self.seed)
        if self.pad_id == 0:  # the instructions: leave out the targets equal to pad_id, whatever it is (and use eps)
            inputs["other_pad"] = self._inputs(9, 0.2, 5, 272)
        return inputs

    @staticmethod
    def _inputs(V: int, eps: float, pad_id: int, seed: int) -> dict:
        logits = randn(B, T, V, seed=seed) * 2
        target = torch.randint(0, V, (B, T), generator=seeded(seed + 1))
        target[target == pad_id] = (pad_id + 1) % V  # no accidental pads ...
        target[0, 3:] = pad_id  # ... only these
        target[2, 1:] = pad_id
        return {"logits": logits, "target": target, "eps": eps, "pad_id": pad_id}

    def run(self, fn, inputs):
        lg = inputs["logits"].clone().requires_grad_(True)
        what = f"label_smoothed_loss(logits, target, eps={inputs['eps']}, pad_id={inputs['pad_id']})"
        loss = student_call(fn, lg, inputs["target"], inputs["eps"], inputs["pad_id"], what=what)
        grad = None
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad:
            (grad,) = torch.autograd.grad(loss.reshape(()), lg)
        outputs = {"loss": loss, "grad": grad}
        if "other_pad" in inputs:
            outputs["other_pad"] = LabelSmoothedLossCheck.run(self, fn, inputs["other_pad"])
        return outputs

    def verify(self, inputs, outputs):
        loss = expect_tensor(outputs["loss"], "the loss")
        if loss.numel() != 1:
            raise CheckFailed(f"the loss should be a scalar (shape ()), got shape {tuple(loss.shape)}\nHint: average over the real tokens")
        logits, target, eps, pad_id = inputs["logits"], inputs["target"], inputs["eps"], inputs["pad_id"]
        expected = _smoothing_reference(logits, target, eps, pad_id)
        got = loss.detach().double().reshape(())
        hint = _diagnose(got, _smoothing_variants(logits, target, eps, pad_id), "(1 - eps) * (-log p_true) + eps * mean over all V classes of (-log p), averaged over non-pad targets")
        expect_close(got, expected, "loss", hint=hint)
        if outputs["grad"] is None:
            raise CheckFailed("no gradient flows to the logits.\nHint: compute the loss with torch operations (no .item())")
        lg = logits.clone().requires_grad_(True)
        (ref_grad,) = torch.autograd.grad(_smoothing_reference(lg, target, eps, pad_id), lg)
        expect_close(outputs["grad"], ref_grad, "gradient with respect to the logits")
        if "other_pad" in inputs:  # the same tests with another pad id and eps
            LabelSmoothedLossCheck.verify(self, inputs["other_pad"], outputs["other_pad"])


class LabelSmoothedLossOtherPadCheck(LabelSmoothedLossCheck):
    """The loss with pad_id = 3, eps = 0.25 and a vocabulary of 11."""

    name = "label_smoothed_loss_other_pad"
    V, eps, pad_id, seed = 11, 0.25, 3, 172


# --------------------------------------------------------------------------- (e) greedy decoding

BOS, EOS, PAD = 1, 2, 0


class _ScriptedModel(nn.Module):
    """Stands in for a trained Transformer, with the same API (``encode(src).out``,
    ``decode(tgt_in, memory, src).out``, ``out_proj``, ``config.pad_id``), but with
    scores read from random tables, so that (unlike a random Transformer) the next
    token depends visibly on the source, the position and the previous token:

        hidden[b, t] = token_table[tgt_in[b, t]] + position_table[t] + mean of source_table over src[b]
        logits = out_proj(hidden), a permutation of the ordinary ids (so skipping out_proj is visible)
    """

    def __init__(self, tables: dict[str, torch.Tensor]):
        super().__init__()
        self.token_table, self.position_table, self.source_table = tables["token"], tables["position"], tables["source"]
        self.config = TransformerConfig(src_vocab_size=self.source_table.shape[0], tgt_vocab_size=self.token_table.shape[1],
                                        d_model=4, n_heads=1, d_ff=4, pad_id=PAD)  # fmt: skip
        V = self.token_table.shape[1]
        # not the identity, so forgetting it changes every token; skip_init: no draw from torch's global generator
        self.out_proj = torch.nn.utils.skip_init(nn.Linear, V, V, dtype=torch.float64)
        with torch.no_grad():
            perm = torch.arange(V)
            perm[3:] = perm[3:].roll(1)  # ids 3.. shift by one; <pad>, <bos>, <eos> stay
            self.out_proj.weight.copy_(torch.eye(V, dtype=torch.float64)[perm])
            self.out_proj.bias.zero_()

    def encode(self, src: torch.Tensor, need_weights: bool = True):
        real = (src != PAD)[..., None].double()  # (B, S, 1)
        return EncoderOutput(self.source_table[src] * real, [])  # (B, S, V)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src: torch.Tensor, need_weights: bool = True):
        if tgt_in.dim() != 2 or tgt_in.shape[1] > self.position_table.shape[0]:
            raise ValueError(f"decode expects tgt_in of shape (B, T) with T <= {self.position_table.shape[0]}, got {tuple(tgt_in.shape)}")
        context = memory.sum(1, keepdim=True) / (src != PAD).sum(1)[:, None, None]  # (B, 1, V)
        scores = self.token_table[tgt_in] + self.position_table[: tgt_in.shape[1]] + context  # (B, T, V)
        return DecoderOutput(scores, [], [])


def _scripted_tables(seed: int, V: int = 7, V_src: int = 13, max_positions: int = 16, eos_bias: float = 0.0):
    g = seeded(seed)
    tables = {
        "token": torch.randn(V, V, generator=g, dtype=torch.float64),
        "position": 0.7 * torch.randn(max_positions, V, generator=g, dtype=torch.float64),
        "source": torch.randn(V_src, V, generator=g, dtype=torch.float64),
    }
    for t in tables.values():
        t[..., PAD] = -10.0  # a trained model never predicts padding or the start token
        t[..., BOS] = -10.0
    tables["position"][:, EOS] += eos_bias + 0.25 * torch.arange(max_positions, dtype=torch.float64)  # <eos> more likely later
    return tables


def _trim(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Drop trailing columns that are padding in every row (stopping early or not is then the same)."""
    keep = tokens.shape[1]
    while keep > 1 and bool((tokens[:, keep - 1] == pad_id).all()):
        keep -= 1
    return tokens[:, :keep]


class GreedyDecodeCheck(Check):
    """greedy_decode(model, src, bos_id, eos_id, max_len) -> (B, 1 + n) tokens starting with bos_id."""

    name = "greedy_decode"
    success = "starts from <bos>, picks the argmax of the last position, pads after <eos>: equal to the reference"
    seed = 45  # chosen so rows end at different steps, one never ends, and every planted loop mistake
    # (no out_proj, budget off by one, first position, no padding, last token only) changes the tokens (tests assert it)
    max_len = 8
    eos_bias = -1.0
    lengths = (9, 6, 3, 8, 5, 7)

    def make_inputs(self):
        src = torch.randint(3, 13, (len(self.lengths), 9), generator=seeded(self.seed + 100))
        for b, n in enumerate(self.lengths):
            src[b, n:] = PAD
        return {"tables": _scripted_tables(self.seed, eos_bias=self.eos_bias), "src": src, "bos_id": BOS, "eos_id": EOS, "max_len": self.max_len}

    def vary_inputs(self, inputs, g):
        """Another scripted model and source, drawn until it is as telling as the fixed one: rows end at
        different steps, one never ends, and every usual wrong loop (``_GREEDY_VARIANTS``) changes the tokens."""
        for _ in range(200):
            s = int(torch.randint(0, 2**30, (1,), generator=g))
            src = torch.randint(3, 13, (len(self.lengths), 9), generator=seeded(s + 100))
            for b, n in enumerate(self.lengths):
                src[b, n:] = PAD
            candidate = {**inputs, "tables": _scripted_tables(s, eos_bias=self.eos_bias), "src": src}
            if _telling(candidate):
                return candidate
        return inputs  # not reached in practice (tests draw many seeds)

    def run(self, fn, inputs):
        model = _ScriptedModel(inputs["tables"]).eval()
        what = f"greedy_decode(model, src, bos_id={BOS}, eos_id={EOS}, max_len={inputs['max_len']})"
        with torch.no_grad():
            out = student_call(fn, model, inputs["src"], inputs["bos_id"], inputs["eos_id"], inputs["max_len"], what=what)
        return {"tokens": out}

    def verify(self, inputs, outputs):
        src, bos, eos, max_len = inputs["src"], inputs["bos_id"], inputs["eos_id"], inputs["max_len"]
        expected = greedy_decode(_ScriptedModel(inputs["tables"]).eval(), src, bos, eos, max_len)
        got = expect_tensor(outputs["tokens"], "the tokens")
        if got.dim() != 2 or got.shape[0] != src.shape[0]:
            raise CheckFailed(f"expected tokens of shape (B={src.shape[0]}, 1 + n), got {tuple(got.shape)}")
        if got.is_floating_point() or got.dtype == torch.bool:
            raise CheckFailed(f"tokens should be integer ids (torch.long), got {got.dtype}\nHint: argmax returns ids")
        got = got.long()
        if not bool((got[:, 0] == bos).all()):
            w = min(got.shape[1], expected.shape[1] - 1)
            if w > 0 and bool((got[:, :w] == expected[:, 1 : 1 + w]).all()):
                raise CheckFailed("the output should start with the start token bos_id, then the generated tokens\nHint: keep <bos> as column 0")
            raise CheckFailed(
                f"every row should start with the start token {bos} (<bos>), got {got[:, 0].tolist()}\n"
                "Hint: start decoding from the token the training inputs tgt_in begin with; a model trained on "
                "[<bos>, y1, ...] has never seen another first token"
            )
        if got.shape[1] > max_len + 1:
            raise CheckFailed(f"at most max_len={max_len} tokens may be generated after <bos>, got {got.shape[1] - 1}")
        got_t, exp_t = _trim(got, 0), _trim(expected, 0)
        if got_t.shape == exp_t.shape and bool((got_t == exp_t).all()):
            return
        # name the mistake: replay the usual wrong loops on the same model
        model = _ScriptedModel(inputs["tables"]).eval()
        for hint, kwargs in _GREEDY_VARIANTS.items():
            alt = _greedy_variant(model, src, bos, eos, max_len, **kwargs)
            alt_t = _trim(alt, 0)
            if alt_t.shape == got_t.shape and bool((alt_t == got_t).all()):
                break
        else:
            width = min(got.shape[1], expected.shape[1])
            diff = (got[:, :width] != expected[:, :width]).nonzero()
            if len(diff):
                b, t = (int(i) for i in diff[0])
                hint = (f"the first difference is in row {b} at column {t} (generated token {t}): expected {int(expected[b, t])}, "
                        f"got {int(got[b, t])}; at each step run the decoder on the tokens so far, project the last position "
                        "with model.out_proj, append its argmax")
            else:
                hint = (f"your tokens agree with the reference where both exist, but you have {got_t.shape[1] - 1} columns after "
                        f"<bos> and the reference {exp_t.shape[1] - 1}")
        raise CheckFailed(f"tokens differ from the reference:\nexpected {_trim(expected, 0).tolist()}\ngot      {got.tolist()}\nHint: {hint}")


@torch.no_grad()
def _greedy_variant(model, src, bos, eos, max_len, budget: int = 0, project: bool = True, position: int = -1,
                    pad_after_eos: bool = True, prefix: str = "all", argmax_dim: int = -1) -> torch.Tensor:
    """Greedy decoding with one of the usual mistakes switched on (to name it)."""
    memory = model.encode(src).out
    tokens = torch.full((src.shape[0], 1), bos, dtype=torch.long)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    for _ in range(max_len + budget):
        seen = tokens if prefix == "all" else tokens[:, -1:]
        hidden = model.decode(seen, memory, src).out[:, position]
        scores = model.out_proj(hidden) if project else hidden
        next_id = scores.argmax(dim=argmax_dim)
        if next_id.shape != done.shape:
            return tokens
        if pad_after_eos:
            next_id = next_id.masked_fill(done, model.config.pad_id)
        tokens = torch.cat([tokens, next_id[:, None]], dim=1)
        done |= next_id == eos
        if bool(done.all()):
            break
    return tokens


def _telling(inputs) -> bool:
    """Rows of the reference end at >= 2 different steps, one never ends, and each wrong loop differs."""
    model, src, max_len = _ScriptedModel(inputs["tables"]).eval(), inputs["src"], inputs["max_len"]
    with torch.no_grad():
        ref = greedy_decode(model, src, BOS, EOS, max_len)
        ends = [int((row[1:] == EOS).nonzero()[0]) if bool((row[1:] == EOS).any()) else None for row in ref]
        if src.shape[0] > 1 and not (None in ends and len({e for e in ends if e is not None}) >= 2):
            return False
        ref_t = _trim(ref, 0)
        for kwargs in [*_GREEDY_VARIANTS.values(), *([dict(budget=1)] if src.shape[0] > 1 else [])]:
            alt = _trim(_greedy_variant(model, src, BOS, EOS, max_len, **kwargs), 0)
            if alt.shape == ref_t.shape and bool((alt == ref_t).all()):
                return False
    return True


_GREEDY_VARIANTS = {
    "the output projection is missing: take the argmax of model.out_proj(hidden), the vocabulary scores, "
    "not of the decoder's hidden vector": dict(project=False),
    "the decoding budget is off by one: generate at most max_len tokens after <bos> (range(max_len)), "
    "you stopped one token early": dict(budget=-1),
    "the first token is right but later ones are not: take the logits of the *last* position, decode(...).out[:, -1], "
    "at every step": dict(position=0),
    "after a row produces <eos>, fill the rest of that row with pad_id (model.config.pad_id) and stop once every row is done":
        dict(pad_after_eos=False),
    "the decoder must re-read the whole prefix at every step (decode(tokens, ...)), not only the last token": dict(prefix="last"),
    "the first token is right but later ones are not: take the logits of the *last* position, decode(...).out[:, -1], at every step "
    "(and project it with model.out_proj)": dict(position=0, project=False),
}


class GreedyDecodeSingleCheck(GreedyDecodeCheck):
    """Greedy decoding of a single sentence with a shorter budget."""

    name = "greedy_decode_single"
    seed, max_len, lengths = 5, 6, (8,)  # the row ends with the last allowed token: a budget off by one shows


check_encoder_layer = EncoderLayerCheck().as_function()
check_encoder_layer_other_sizes = EncoderLayerOtherSizesCheck().as_function()
check_decoder_layer = DecoderLayerCheck().as_function()
check_decoder_layer_longer_source = DecoderLayerLongerSourceCheck().as_function()
check_lrate = LrateCheck().as_function()
check_lrate_peak = LratePeakCheck().as_function()
check_label_smoothed_loss = LabelSmoothedLossCheck().as_function()
check_label_smoothed_loss_other_pad = LabelSmoothedLossOtherPadCheck().as_function()
check_greedy_decode = GreedyDecodeCheck().as_function()
check_greedy_decode_single = GreedyDecodeSingleCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402

SMOOTHING_STEPS = Program(
    [step("logp", "log_softmax", "logits", dim=-1, what="the log-softmax", axes="B T V"),
     step("neglogp", "neg", "logp", fn=torch.neg, what="the minus sign of -log p", axes="B T V"),
     step("nll", "gather", "neglogp", "target", fn=lambda x, t: x.gather(-1, t[..., None])[..., 0], what="-log p of the target", axes="B T"),
     step("smooth", "mean", "neglogp", dim=-1, what="the mean of -log p over the classes", axes="B T"),
     step("per_token", "mix", "nll", "smooth", "eps", fn=lambda a, b, e: (1 - e) * a + e * b, what="(1 - eps) * nll + eps * smooth", axes="B T"),
     step("keep", "not_pad", "target", "pad_id", fn=lambda t, p: (t != p).to(torch.float64), what="the padding mask", axes="B T"),
     step("kept", "mul", "per_token", "keep", what="dropping the padded positions", axes="B T"),
     step("total", "sum", "kept", dim=None, what="the sum over the tokens"),
     step("count", "sum", "keep", dim=None, what="the number of real tokens"),
     step("loss", "div", "total", "count", what="the average over the real tokens")],
    ("loss",), legend={"B": "batch", "T": "position", "V": "class"}, axes={"logits": "B T V"},
    names={"per_token": "every position's loss (padding included)", "kept": "the real tokens' losses", "nll": "the plain -log p of the target",
           "smooth": "the smoothing term"})


def _cases_smoothing(self, inputs, outputs):
    env = {k: inputs[k] for k in ("logits", "target", "eps", "pad_id")}
    cases = [(SMOOTHING_STEPS, env, {"loss": outputs.get("loss").reshape(()) if isinstance(outputs.get("loss"), torch.Tensor) and outputs["loss"].numel() == 1 else outputs.get("loss")})]
    if "other_pad" in inputs and "other_pad" in outputs:
        cases += _cases_smoothing(self, inputs["other_pad"], outputs["other_pad"])
    return cases


LabelSmoothedLossCheck.mutation_cases = _cases_smoothing

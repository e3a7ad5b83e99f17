"""Checks for assignment ch04_multi_head (chapter 4).

Dimension legend: B batch, T query length, S key length, C d_model, H heads, D head dim.
Deliberately uneven sizes so that swapped axes fail: B=3, T=5, S=7, C=12, H=3 (D=4).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.attention import MultiHeadAttention as ReferenceMHA
from course_lib.checks._core import (
    Check,
    CheckFailed,
    diagnose_mask,
    expect_close,
    expect_shape,
    expect_tensor,
    fit_scale,
    is_close,
    randn,
    seeded,
    student_call,
)

B, T, S, C, H = 3, 5, 7, 12, 3
D = C // H
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


# --------------------------------------------------------------------------- references (pure)


def _split(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.view(b, t, n_heads, c // n_heads).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, H, T, D) -> (B, T, C)


def _weights(seed: int, d_model: int) -> dict[str, torch.Tensor]:
    bound = 1 / math.sqrt(d_model)
    params = {}
    for i, name in enumerate(PROJECTIONS):
        params[f"{name}.weight"] = (torch.rand(d_model, d_model, generator=seeded(seed + 2 * i), dtype=torch.float64) * 2 - 1) * bound
        params[f"{name}.bias"] = (torch.rand(d_model, generator=seeded(seed + 2 * i + 1), dtype=torch.float64) * 2 - 1) * bound
    return params


def _mha(
    params: dict[str, torch.Tensor],
    n_heads: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: str = "head",
    out_proj: bool = True,
    merge: str = "right",
    invert_mask: bool = False,
    split: str = "right",
    ignore_mask: bool = False,
    softmax_dim: int = -1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention written out, with switches for the usual mistakes (used to diagnose)."""

    def lin(x, name):
        return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]

    def split_(x):
        if split == "right":
            return _split(x, n_heads)
        b, t, c = x.shape
        return x.reshape(b, n_heads, t, c // n_heads)  # no transpose: cuts across time steps

    q, k, v = (split_(lin(x, n)) for x, n in ((query, "q_proj"), (key, "k_proj"), (value, "v_proj")))
    if ignore_mask:
        mask = None
    d_model = query.shape[-1]
    divisor = {"head": math.sqrt(d_model // n_heads), "model": math.sqrt(d_model), "none": 1.0}[scale]
    scores = q @ k.transpose(-2, -1) / divisor  # (B, H, T, S)
    if mask is not None:
        keep = ~mask if invert_mask else mask
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    weights = scores.softmax(softmax_dim)
    if mask is not None:
        weights = weights.masked_fill(~keep, 0.0)
    heads = weights @ v  # (B, H, T, D)
    if merge == "right":
        merged = _merge(heads)
    else:  # reshaped without moving the head axis next to D
        b, h, t, d = heads.shape
        merged = heads.reshape(b, t, h * d)
    out = lin(merged, "out_proj") if out_proj else merged
    return out, weights


def _mha_scores(params, n_heads, query, key) -> torch.Tensor:
    """The right per-head scores q k^T / sqrt(d_k), (B, H, T, S), before any mask."""
    q = _split(query @ params["q_proj.weight"].T + params["q_proj.bias"], n_heads)
    k = _split(key @ params["k_proj.weight"].T + params["k_proj.bias"], n_heads)
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def _make_reference(params: dict[str, torch.Tensor], d_model: int, n_heads: int) -> ReferenceMHA:
    ref = ReferenceMHA(d_model, n_heads).double().eval()
    ref.load_state_dict(params)
    return ref


def _pad_mask(lengths: list[int], s: int) -> torch.Tensor:
    return (torch.arange(s)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]  # (B, 1, 1, S)


# --------------------------------------------------------------------------- (a) split and merge heads


class SplitHeadsCheck(Check):
    """split_heads(x, n_heads): (B, T, C) -> (B, H, T, D)."""

    name = "ch4.split_heads"
    success = "(B, T, C) -> (B, H, T, D), head h holds features h*D .. (h+1)*D - 1"
    sizes = (B, T, C, H)

    def make_inputs(self):
        b, t, c, h = self.sizes
        return {"x": randn(b, t, c, seed=40), "n_heads": h}

    def run(self, fn, inputs):
        x = inputs["x"].clone().requires_grad_(True)
        out = student_call(fn, x, inputs["n_heads"], what=f"split_heads(x, n_heads={inputs['n_heads']})")
        grad = None
        if isinstance(out, torch.Tensor) and out.requires_grad:
            (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
            grad = x.grad
        return {"out": out, "grad": grad}

    def verify(self, inputs, outputs):
        x, h = inputs["x"], inputs["n_heads"]
        b, t, c = x.shape
        d = c // h
        got = outputs["out"]
        what = f"split_heads of a (B={b}, T={t}, C={c}) tensor into {h} heads"
        if isinstance(got, torch.Tensor) and d != h and tuple(got.shape) == (b, d, t, h):
            raise CheckFailed(f"{what}: expected shape {(b, h, t, d)}, got {tuple(got.shape)}: {d} pieces of {h} features\n"
                              f"Hint: x.split(size) takes the size of each piece (D = {d}), x.chunk(n) the number of pieces (H = {h}): "
                              f"x.split({h}) made {d} pieces of size {h}")
        if isinstance(got, torch.Tensor) and t != h and tuple(got.shape) == (b, t, h, d):
            raise CheckFailed(f"{what}: expected shape {(b, h, t, d)}, got {tuple(got.shape)} = (B, T, H, D)\n"
                              "Hint: the heads are cut out right; now move H in front of T: .transpose(1, 2)")
        got = expect_shape(
            outputs["out"], (b, h, t, d), f"split_heads of a (B={b}, T={t}, C={c}) tensor into {h} heads",
            hint="the result is (B, H, T, D): cut the feature axis into (H, D), then move H in front of T",
        )
        ref = _split(x, h)
        if not is_close(got, ref):
            if is_close(got, x.reshape(b, h, t, d)):
                hint = (
                    "you reshaped straight to (B, H, T, D): that cuts across time steps. "
                    "View as (B, T, H, D) first (heads come out of the feature axis), then transpose T and H"
                )
            elif is_close(got, x.view(b, t, d, h).permute(0, 3, 1, 2)):
                hint = "head h must take a contiguous slice of D features (h*D .. (h+1)*D - 1), not every H-th feature"
            else:
                hint = "head h of token t should be x[b, t, h*D:(h+1)*D]"
            expect_close(got, ref, "split heads", hint=hint, axes="B H T D")
        if outputs["grad"] is None:
            raise CheckFailed("split heads: no gradient flows back to x.\nHint: use view/reshape/transpose, no .detach() or .numpy()")
        expect_close(outputs["grad"], _merge(torch.arange(ref.numel(), dtype=ref.dtype).view_as(ref)), "gradient with respect to x")


class SplitHeadsSizesCheck(SplitHeadsCheck):
    """split_heads with other sizes: C=20 into 5 heads, batch 2, length 1."""

    name = "ch4.split_heads_other_sizes"
    sizes = (2, 1, 20, 5)


class MergeHeadsCheck(Check):
    """merge_heads(x): (B, H, T, D) -> (B, T, H*D), the inverse of split_heads."""

    name = "ch4.merge_heads"
    success = "(B, H, T, D) -> (B, T, H*D), and merge_heads(split_heads(x)) == x"
    sizes = (B, H, T, D)

    def make_inputs(self):
        return {"x": randn(*self.sizes, seed=41)}

    def run(self, fn, inputs):
        x = inputs["x"].clone().requires_grad_(True)
        out = student_call(fn, x, what="merge_heads(x)")
        grad = None
        if isinstance(out, torch.Tensor) and out.requires_grad:
            (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
            grad = x.grad
        return {"out": out, "grad": grad}

    def verify(self, inputs, outputs):
        x = inputs["x"]
        b, h, t, d = x.shape
        got = outputs["out"]
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, t, d) and d != h * d:
            raise CheckFailed(f"merge_heads: expected shape {(b, t, h * d)}, got {tuple(got.shape)}\n"
                              "Hint: you combined the heads by a sum or mean over H; the paper concatenates them: (B, T, H*D)")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, h * t, d) and t != 1:
            raise CheckFailed(f"merge_heads: expected shape {(b, t, h * d)}, got {tuple(got.shape)} = (B, H*T, D)\n"
                              "Hint: you concatenated the heads along time; concatenate them along the features: (B, T, H*D)")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (b, h * t, d) and t == 1 and h * t != h * d:
            raise CheckFailed(f"merge_heads: expected shape {(b, t, h * d)}, got {tuple(got.shape)}\n"
                              "Hint: you concatenated the heads along time; concatenate them along the features: (B, T, H*D)")
        got = expect_shape(outputs["out"], (b, t, h * d), "merge_heads", hint="the paper's Concat: (B, H, T, D) -> (B, T, H*D)")
        ref = _merge(x)
        if not is_close(got, ref):
            if is_close(got, x.reshape(b, t, h * d)):
                hint = "you reshaped without moving the head axis back: transpose(1, 2) to (B, T, H, D) before reshaping"
            elif is_close(got, x.permute(0, 2, 3, 1).reshape(b, t, h * d)):
                hint = "the features come out ordered (D, H); they must be ordered (H, D): head 0's D features first"
            else:
                hint = "token t's output should be the concatenation of heads 0..H-1 at t"
            expect_close(got, ref, "merged heads", hint=hint, axes="B T C")
        if outputs["grad"] is None:
            raise CheckFailed("merge heads: no gradient flows back.\nHint: use transpose/reshape, no .detach() or .numpy()")
        expect_close(outputs["grad"], _split(torch.arange(ref.numel(), dtype=ref.dtype).view_as(ref), h), "gradient with respect to x")


class MergeHeadsSizesCheck(MergeHeadsCheck):
    """merge_heads with other sizes."""

    name = "ch4.merge_heads_other_sizes"
    sizes = (2, 5, 1, 4)


# --------------------------------------------------------------------------- (b) the module


def _diagnose_mha(params, n_heads, query, key, value, mask, got_out, got_weights) -> str:
    variants = [
        (dict(scale="model"), "you divided the scores by sqrt(d_model); d_k is the per-head size: divide by sqrt(d_model // n_heads)"),
        (dict(scale="none"), "the scores are not scaled: divide q @ k^T by sqrt(d_k), d_k = d_model // n_heads"),
        (dict(out_proj=False), "the output projection is missing: out = out_proj(merge_heads(heads))"),
        (dict(merge="no_transpose"), "the heads are merged in the wrong order: transpose (B, H, T, D) to (B, T, H, D) before reshaping"),
        (dict(split="no_transpose"), "the heads are split in the wrong order: view (B, T, C) as (B, T, H, D), then transpose T and H; "
                                     "a reshape straight to (B, H, T, D) cuts across time steps"),
        (dict(softmax_dim=-2), "softmax over the wrong axis: normalise each query's scores over the keys (the last axis)"),
    ]
    if mask is not None:
        variants.append((dict(invert_mask=True), "the mask polarity is inverted: True means 'may attend', so fill the scores where the mask is False"))
        variants.append((dict(ignore_mask=True), "the mask is not applied: fill the scores of masked keys (mask False) before the softmax"))
    if key is not query:
        variants.append((dict(kv_from_query=True), "the keys and values must come from the key and value arguments (the memory), not from the query"))
    for kwargs, hint in variants:
        if kwargs.get("kv_from_query"):
            out, weights = _mha(params, n_heads, query, query, query, None)
            if got_weights is not None and tuple(got_weights.shape) == tuple(weights.shape) and is_close(got_weights, weights, atol=1e-4):
                return hint
            continue
        out, weights = _mha(params, n_heads, query, key, value, mask, **kwargs)
        if is_close(got_out, out, atol=1e-4) or (kwargs.get("scale") or kwargs.get("softmax_dim") or "split" in kwargs) \
                and got_weights is not None and is_close(got_weights, weights, atol=1e-4):
            return hint
    if got_weights is not None:
        ref_out, ref_w = _mha(params, n_heads, query, key, value, mask)
        if is_close(got_weights, ref_w, atol=1e-4):
            return "the weights are right but out is not: check the merge of the heads and out_proj"
        if mask is None:
            d = query.shape[-1] // n_heads
            c = fit_scale(got_weights, _mha_scores(params, n_heads, query, key) * math.sqrt(d))
            if c is not None:
                named = {1 / d: "you divided the scores by d_k; the paper divides by sqrt(d_k), d_k = d_model // n_heads"}
                hint = next((h for v, h in named.items() if abs(c - v) <= 1e-4 * v), None)
                return hint or (f"your weights are softmax(c * q k^T) per head with c = {c:.4g}: a wrong scale; it must be "
                                f"1 / sqrt(d_k) = {1 / math.sqrt(d):.4g} with d_k = d_model // n_heads = {d}")
    return "compare each step with the formula: project, split, attend per head, merge, out_proj"


class MultiHeadAttentionCheck(Check):
    """MultiHeadAttention(d_model, n_heads) with q_proj, k_proj, v_proj, out_proj; forward(query, key, value, mask=None) -> (out, weights)."""

    name = "ch4.multi_head_attention"
    success = "self- and cross-attention, masks, per-head weights, values and gradients match the reference"
    sizes = (B, T, S, C, H)
    query_dtype = torch.float64

    def make_inputs(self):
        b, t, s, c, h = self.sizes
        lengths = [s, max(1, s - 3), max(1, s - 5)][:b]
        return {
            "d_model": c,
            "n_heads": h,
            "params": _weights(100, c),
            "x": randn(b, t, c, seed=42),
            "memory": randn(b, s, c, seed=43),
            "pad_mask": _pad_mask(lengths, s),
            "causal": torch.ones(t, t, dtype=torch.bool).tril(),
            "grad_out": randn(b, t, c, seed=44),
        }

    def _build(self, cls, inputs):
        c, h = inputs["d_model"], inputs["n_heads"]
        module = student_call(cls, c, h, what=f"MultiHeadAttention(d_model={c}, n_heads={h})")
        if not isinstance(module, nn.Module):
            raise CheckFailed(f"MultiHeadAttention(...) should build an nn.Module, got {type(module).__name__}")
        for name in PROJECTIONS:
            layer = getattr(module, name, None)
            if not isinstance(layer, nn.Linear):
                raise CheckFailed(
                    f"your module needs an attribute {name} that is an nn.Linear(d_model, d_model); "
                    f"got {type(layer).__name__ if layer is not None else 'nothing'}.\n"
                    "Hint: store the four projections as self.q_proj, self.k_proj, self.v_proj, self.out_proj"
                )
            if tuple(layer.weight.shape) != (c, c) or layer.bias is None:
                raise CheckFailed(
                    f"{name} should be nn.Linear({c}, {c}) with a bias, got weight {tuple(layer.weight.shape)}"
                    f"{'' if layer.bias is not None else ' and no bias'}.\n"
                    "Hint: one big (d_model x d_model) projection per Q, K, V holds all heads side by side"
                )
        module = module.to(self.query_dtype).eval()
        with torch.no_grad():
            for name in PROJECTIONS:
                getattr(module, name).weight.copy_(inputs["params"][f"{name}.weight"])
                getattr(module, name).bias.copy_(inputs["params"][f"{name}.bias"])
        return module

    def run(self, cls, inputs):
        module = self._build(cls, inputs)
        dt = self.query_dtype
        x, memory = inputs["x"].to(dt), inputs["memory"].to(dt)

        def call(*args, what):
            result = student_call(module, *args, what=what)
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise CheckFailed(f"{what} should return a pair (out, weights), got {type(result).__name__}")
            return result

        self_out, self_w = call(x, x, x, what="your module(x, x, x)")
        _, plain_cross_w = call(x, memory, memory, what="your module(x, memory, memory)")
        b, t, s = x.shape[0], x.shape[1], memory.shape[1]
        if isinstance(plain_cross_w, torch.Tensor) and tuple(plain_cross_w.shape) == (b, inputs["n_heads"], t, t) and t != s:
            raise CheckFailed(f"weights of your module(x, memory, memory): expected {(b, inputs['n_heads'], t, s)} (one column per "
                              f"memory position), got {tuple(plain_cross_w.shape)}\n"
                              "Hint: the keys and values must come from the key and value arguments (the memory), not from the query")
        cross_out, cross_w = call(x, memory, memory, inputs["pad_mask"], what="your module(x, memory, memory, pad_mask)")
        causal_out, causal_w = call(x, x, x, inputs["causal"], what="your module(x, x, x, causal_mask)")
        xg = x.clone().requires_grad_(True)
        g_out, _ = call(xg, memory, memory, inputs["pad_mask"], what="your module")
        grads = None
        if isinstance(g_out, torch.Tensor) and g_out.shape == inputs["grad_out"].shape and g_out.requires_grad:
            module.zero_grad()
            (g_out * inputs["grad_out"].to(dt)).sum().backward()
            grads = {"x": xg.grad, "q_proj.weight": module.q_proj.weight.grad}
        return {
            "self_out": self_out, "self_weights": self_w,
            "cross_out": cross_out, "cross_weights": cross_w,
            "causal_out": causal_out, "causal_weights": causal_w,
            "plain_cross_weights": plain_cross_w,
            "grads": grads,
        }

    def verify(self, inputs, outputs):
        b, t, s, c, h = self.sizes
        plain = outputs.get("plain_cross_weights")
        if isinstance(plain, torch.Tensor) and tuple(plain.shape) == (b, h, t, t) and t != s:
            raise CheckFailed(f"weights of your module(x, memory, memory): expected {(b, h, t, s)} (one column per memory position), "
                              f"got {tuple(plain.shape)}\n"
                              "Hint: the keys and values must come from the key and value arguments (the memory), not from the query")
        params = inputs["params"]
        dt = self.query_dtype
        atol = 1e-5 if dt == torch.float64 else 1e-4
        x, memory = inputs["x"].to(torch.float64), inputs["memory"].to(torch.float64)
        cases = [
            ("self-attention", "self", x, None, t),
            ("cross-attention with a padding mask", "cross", memory, inputs["pad_mask"], s),
            ("self-attention with a causal mask", "causal", x, inputs["causal"], t),
        ]
        # 1. shapes
        for label, key, _, _, length in cases:
            o, w = outputs[f"{key}_out"], outputs[f"{key}_weights"]
            if isinstance(o, torch.Tensor) and isinstance(w, torch.Tensor) and tuple(o.shape) == (b, h, t, length) and tuple(w.shape) == (b, t, c):
                raise CheckFailed("the two results come in the wrong order: your first result has the weights' shape (B, H, T, S) "
                                  "and your second the output's (B, T, C)\nHint: return (out, weights), in that order")
            expect_shape(outputs[f"{key}_out"], (b, t, c), f"out ({label})", hint="out has the query's shape (B, T, d_model)")
            w = expect_tensor(outputs[f"{key}_weights"], f"weights ({label})")
            if key == "cross" and tuple(w.shape) == (b, h, t, t) and t != s:
                raise CheckFailed(f"weights ({label}): expected {(b, h, t, s)} (one column per memory position), got {tuple(w.shape)}\n"
                                  "Hint: the keys and values must come from the key and value arguments (the memory), not from the query")
            kv_case = {"self": x, "cross": memory, "causal": x}[key]
            mask_case = {"self": None, "cross": inputs["pad_mask"], "causal": inputs["causal"]}[key]
            if tuple(w.shape) == (b, t, length) and is_close(w, _mha(params, h, x, kv_case, kv_case, mask_case)[1].mean(1), atol=1e-4):
                raise CheckFailed(f"weights ({label}): expected per-head weights (B, H, T, S) = {(b, h, t, length)}, got {tuple(w.shape)}\n"
                                  "Hint: return the weights of every head, not their average")
            expect_shape(w, (b, h, t, length), f"weights ({label})", hint="one (T, S) matrix per head: (B, H, T, S)")
        # 2. behaviour: a specific diagnosis of the mask first, then the generic tests
        for label, key, kv, mask, length in cases:
            w = outputs[f"{key}_weights"].detach().double()
            if mask is not None:
                _, ref_w = _mha(params, h, x, kv, kv, None)
                specific = _diagnose_mha(params, h, x, kv, kv, mask, outputs[f"{key}_out"], w)
                if "mask" in specific:
                    raise CheckFailed(f"weights ({label}): masked keys (mask False) must get weight 0\nHint: {specific}")
                by_behaviour = diagnose_mask(w, mask, scores=_mha_scores(params, h, x, kv), ref_unmasked=ref_w)
                if by_behaviour:
                    raise CheckFailed(f"weights ({label}): masked keys (mask False) must get weight 0\nHint: {by_behaviour}")
            if not torch.isfinite(w).all():
                raise CheckFailed(f"weights ({label}): contain NaN, although every query here may attend to some key\n"
                                  "Hint: a query whose keys are all masked gets softmax(-inf, ..., -inf) = NaN")
            sums = w.sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                specific = _diagnose_mha(params, h, x, kv, kv, mask, outputs[f"{key}_out"], w)
                raise CheckFailed(f"weights ({label}): each query's weights should sum to 1 over the keys, got sums like {sums.flatten()[:3].tolist()}\n"
                                  f"Hint: {specific if not specific.startswith('compare') else 'softmax over the last axis (the keys)'}")
            if mask is not None:
                leaked = w.masked_fill(mask, 0.0).abs().max()
                if leaked > 1e-6:
                    hint = _diagnose_mha(params, h, x, kv, kv, mask, outputs[f"{key}_out"], w)
                    raise CheckFailed(f"weights ({label}): masked keys (mask False) must get weight 0, got up to {float(leaked):.3g}\nHint: {hint}")
        # 3. values
        for label, key, kv, mask, _ in cases:
            ref_out, ref_w = _mha(params, h, x, kv, kv, mask)
            got_out, got_w = outputs[f"{key}_out"], outputs[f"{key}_weights"]
            if not (is_close(got_out, ref_out, atol=atol) and is_close(got_w, ref_w, atol=atol)):
                hint = _diagnose_mha(params, h, x, kv, kv, mask, got_out, got_w)
                expect_close(got_w, ref_w, f"weights ({label})", hint=hint, atol=atol, axes="B H T S")
                expect_close(got_out, ref_out, f"out ({label})", hint=hint, atol=atol, axes="B T C")
        # 4. gradients
        if outputs["grads"] is None:
            raise CheckFailed("gradients do not flow through your module.\nHint: use torch operations only (no .detach(), .numpy() or torch.no_grad())")
        ref = _make_reference(params, c, h)
        xg = x.clone().requires_grad_(True)
        (ref(xg, memory, memory, inputs["pad_mask"]).out * inputs["grad_out"]).sum().backward()
        expect_close(outputs["grads"]["x"], xg.grad, "gradient with respect to the query", atol=atol)
        expect_close(outputs["grads"]["q_proj.weight"], ref.q_proj.weight.grad, "gradient with respect to q_proj.weight", atol=atol)


class MultiHeadAttentionSizesCheck(MultiHeadAttentionCheck):
    """MultiHeadAttention with d_model=20, 5 heads, float32 inputs."""

    name = "ch4.multi_head_attention_other_sizes"
    sizes = (2, 6, 3, 20, 5)
    query_dtype = torch.float32


# --------------------------------------------------------------------------- (c) parity with torch


class CopyIntoTorchCheck(Check):
    """to_torch_mha(mha) -> torch.nn.MultiheadAttention computing the same function as the course's MultiHeadAttention."""

    name = "ch4.copy_into_torch"
    success = "torch.nn.MultiheadAttention with your copied weights gives the same outputs and weights"

    def make_inputs(self):
        return {
            "params": _weights(200, C),
            "x": randn(B, T, C, seed=45),
            "memory": randn(B, S, C, seed=46),
        }

    def run(self, fn, inputs):
        ours = _make_reference(inputs["params"], C, H)
        module = student_call(fn, ours, what="to_torch_mha(mha)")
        if not isinstance(module, nn.MultiheadAttention):
            raise CheckFailed(f"to_torch_mha should return a torch.nn.MultiheadAttention, got {type(module).__name__}")
        module = module.double().eval()
        out = weights = None
        if module.batch_first and module.num_heads == H and module.embed_dim == C:
            with torch.no_grad():
                out, weights = student_call(
                    module, inputs["x"], inputs["memory"], inputs["memory"], need_weights=True, average_attn_weights=False,
                    what="the torch module you built",
                )
        return {
            "out": out,
            "weights": weights,
            "batch_first": bool(module.batch_first),
            "has_bias": module.in_proj_bias is not None,
            "num_heads": int(module.num_heads),
        }

    def verify(self, inputs, outputs):
        if outputs["num_heads"] != H:
            raise CheckFailed(f"torch's module has num_heads={outputs['num_heads']}, expected {H}\nHint: nn.MultiheadAttention(mha.d_model, mha.n_heads, ...)")
        if outputs["out"] is None and outputs["batch_first"] and outputs["num_heads"] == H:
            raise CheckFailed(f"torch's module should have embed_dim={C}, the course module's d_model")
        if not outputs["batch_first"]:
            raise CheckFailed("torch's module expects (T, B, C) inputs, but the course uses (B, T, C).\nHint: create it with batch_first=True")
        if not outputs["has_bias"]:
            raise CheckFailed("torch's module has no input-projection bias, but the course's projections have one.\nHint: bias=True, and copy the biases too")
        params, x, memory = inputs["params"], inputs["x"], inputs["memory"]
        expect_shape(outputs["out"], (B, T, C), "out of torch's module")
        expect_shape(outputs["weights"], (B, H, T, S), "weights of torch's module")
        ref_out, ref_w = _mha(params, H, x, memory, memory)
        if is_close(outputs["out"], ref_out) and is_close(outputs["weights"], ref_w):
            return
        hint = "in_proj_weight is the three (C, C) matrices stacked as [W_q; W_k; W_v] (dim 0), in_proj_bias likewise; out_proj is an nn.Linear"
        transposed = {k: (v.T if k.endswith("weight") else v) for k, v in params.items()}
        if is_close(outputs["out"], _mha(transposed, H, x, memory, memory)[0]):
            hint = "the weights are transposed: nn.Linear stores W as (out_features, in_features), and so does in_proj_weight; copy them as they are"
        else:
            no_bias = {k: (torch.zeros_like(v) if k.endswith("bias") else v) for k, v in params.items()}
            if is_close(outputs["out"], _mha(no_bias, H, x, memory, memory)[0]):
                hint = "the biases were not copied (in_proj_bias and out_proj.bias)"
            else:
                for order in (("k", "q", "v"), ("q", "v", "k"), ("v", "k", "q"), ("k", "v", "q"), ("v", "q", "k")):
                    swapped = dict(params)
                    for src, dst in zip(("q", "k", "v"), order):
                        swapped[f"{src}_proj.weight"] = params[f"{dst}_proj.weight"]
                        swapped[f"{src}_proj.bias"] = params[f"{dst}_proj.bias"]
                    if is_close(outputs["out"], _mha(swapped, H, x, memory, memory)[0]):
                        hint = "the projections are stacked in the wrong order: in_proj_weight is [W_q; W_k; W_v]"
                        break
        expect_close(outputs["weights"], ref_w, "weights of torch's module", hint=hint)
        expect_close(outputs["out"], ref_out, "out of torch's module", hint=hint)


class TorchMasksCheck(Check):
    """to_torch_masks(pad_mask, attn_mask) -> (key_padding_mask, attn_mask) in torch's polarity (True = ignore)."""

    name = "ch4.torch_masks"
    success = "course masks (True = may attend) converted to torch's (True = ignore), same outputs as the course's module"

    def make_inputs(self):
        return {
            "params": _weights(300, C),
            "x": randn(B, T, C, seed=47),
            "memory": randn(B, S, C, seed=48),
            "pad_mask": _pad_mask([7, 4, 2], S),  # (B, 1, 1, S)
            "attn_mask": torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T),  # (T, S): query t sees keys <= t + 2
        }

    def run(self, fn, inputs):
        result = student_call(fn, inputs["pad_mask"].clone(), inputs["attn_mask"].clone(), what="to_torch_masks(pad_mask, attn_mask)")
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"to_torch_masks should return a pair (key_padding_mask, attn_mask), got {type(result).__name__}")
        kpm, am = result
        out = None
        if (isinstance(kpm, torch.Tensor) and isinstance(am, torch.Tensor) and kpm.dtype == am.dtype == torch.bool
                and tuple(kpm.shape) == (B, S) and tuple(am.shape) == (T, S)):
            ours = _make_reference(inputs["params"], C, H)
            torch_mha = nn.MultiheadAttention(C, H, batch_first=True).double().eval()
            with torch.no_grad():
                torch_mha.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
                torch_mha.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
                torch_mha.out_proj.load_state_dict(ours.out_proj.state_dict())
                out, _ = torch_mha(inputs["x"], inputs["memory"], inputs["memory"], key_padding_mask=kpm, attn_mask=am)
        return {"key_padding_mask": kpm, "attn_mask": am, "torch_out": out}

    def verify(self, inputs, outputs):
        pad, attn = inputs["pad_mask"], inputs["attn_mask"]
        kpm, am = outputs["key_padding_mask"], outputs["attn_mask"]
        if isinstance(kpm, torch.Tensor) and isinstance(am, torch.Tensor) and tuple(kpm.shape) == (T, S) and tuple(am.shape) == (B, S):
            raise CheckFailed("the two masks come in the wrong order: your first result has attn_mask's shape (T, S), your second "
                              "key_padding_mask's (B, S)\nHint: return (key_padding_mask, attn_mask), in that order")
        for what, got, shape, ours in (
            ("key_padding_mask", outputs["key_padding_mask"], (B, S), pad[:, 0, 0, :]),
            ("attn_mask", outputs["attn_mask"], (T, S), attn),
        ):
            got = expect_tensor(got, what)
            if got.dtype != torch.bool:
                raise CheckFailed(f"{what}: expected dtype torch.bool, got {got.dtype}\n"
                                  "Hint: a float mask is *added* to the scores by torch; keep it boolean")
            if tuple(got.shape) == tuple(pad.shape) or (got.dim() == 4 and got.numel() == B * S):
                raise CheckFailed(f"{what}: expected shape {shape}, got {tuple(got.shape)}\nHint: torch wants the padding mask as (B, S): drop the two broadcast axes")
            expect_shape(got, shape, what)
            if bool((got == ours).all()):
                raise CheckFailed(f"{what}: this is the course's mask unchanged.\nHint: torch's boolean masks mean True = IGNORE this key, the opposite of the course's True = may attend")
            if not bool((got == ~ours).all()):
                raise CheckFailed(f"{what}: {int((got != ~ours).sum())} entries have the wrong value\nHint: every entry should be flipped, nothing else changed")
        ref_out, _ = _mha(inputs["params"], H, inputs["x"], inputs["memory"], inputs["memory"], pad & attn)
        expect_close(outputs["torch_out"], ref_out, "torch's output with your masks")


check_split_heads = SplitHeadsCheck().as_function()
check_split_heads_other_sizes = SplitHeadsSizesCheck().as_function()
check_merge_heads = MergeHeadsCheck().as_function()
check_merge_heads_other_sizes = MergeHeadsSizesCheck().as_function()
check_multi_head_attention = MultiHeadAttentionCheck().as_function()
check_multi_head_attention_other_sizes = MultiHeadAttentionSizesCheck().as_function()
check_copy_into_torch = CopyIntoTorchCheck().as_function()
check_torch_masks = TorchMasksCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402

_LEGEND = {"B": "batch", "H": "head", "T": "query", "S": "key", "D": "head feature", "C": "model feature"}


def _split_fn(x, n_heads):
    return _split(x, int(n_heads))


def _mha_program(masked: bool) -> Program:
    mask = [step("masked", "mask", "scaled", "mask", what="the mask", axes="B H T S")] if masked else []
    return Program(
        [step("q", "linear", "query", "Wq", "bq", what="the query projection q_proj", axes="B T C"),
         step("k", "linear", "key", "Wk", "bk", what="the key projection k_proj", axes="B S C"),
         step("v", "linear", "value", "Wv", "bv", what="the value projection v_proj", axes="B S C"),
         step("qh", "split", "q", "n_heads", fn=_split_fn, what="splitting q into heads", axes="B H T D"),
         step("kh", "split", "k", "n_heads", fn=_split_fn, what="splitting k into heads", axes="B H S D"),
         step("vh", "split", "v", "n_heads", fn=_split_fn, what="splitting v into heads", axes="B H S D"),
         step("scores", "matmul_t", "qh", "kh", what="the scores q k^T", axes="B H T S"),
         step("scaled", "scale", "scores", scale=("d_head", -0.5), what="the scale", axes="B H T S"),
         *mask,
         step("weights", "softmax", "masked" if masked else "scaled", dim=-1, axes="B H T S"),
         step("heads", "matmul", "weights", "vh", what="weights @ v", axes="B H T D"),
         step("merged", "merge", "heads", fn=_merge, what="merging the heads", axes="B T C"),
         step("out", "linear", "merged", "Wo", "bo", what="the output projection out_proj", axes="B T C")],
        ("out", "weights"), legend=_LEGEND,
        sizes=lambda env: {"d_head": env["Wq"].shape[0] // int(env["n_heads"]), "d_model": env["Wq"].shape[0], "n_heads": int(env["n_heads"])},
        names={"query": "the query input", "key": "the key input", "value": "the value input", "Wq": "q_proj's weight", "Wk": "k_proj's weight",
               "Wv": "v_proj's weight", "Wo": "out_proj's weight", "bq": "q_proj's bias", "bk": "k_proj's bias", "bv": "v_proj's bias",
               "bo": "out_proj's bias", "mask": "the mask"})


MHA_STEPS, MHA_MASKED_STEPS = _mha_program(False), _mha_program(True)
SPLIT_STEPS = Program(
    [step("x4", "view", "x", "n_heads", fn=lambda x, h: x.view(x.shape[0], x.shape[1], int(h), x.shape[2] // int(h)), what="the view to (B, T, H, D)", axes="B T H D"),
     step("out", "transpose", "x4", fn=lambda x: x.transpose(1, 2), what="the transpose to (B, H, T, D)", axes="B H T D")],
    ("out",), legend=_LEGEND)
MERGE_STEPS = Program(
    [step("xt", "transpose", "x", fn=lambda x: x.transpose(1, 2), what="the transpose to (B, T, H, D)", axes="B T H D"),
     step("out", "reshape", "xt", fn=lambda x: x.reshape(x.shape[0], x.shape[1], -1), what="the reshape to (B, T, C)", axes="B T C")],
    ("out",), legend=_LEGEND)


def _mha_env(inputs, query, key, mask=None) -> dict:
    p = inputs["params"]
    env = {"query": inputs[query], "key": inputs[key], "value": inputs[key], "n_heads": inputs["n_heads"]}
    for letter, name in zip("qkvo", PROJECTIONS):
        env[f"W{letter}"], env[f"b{letter}"] = p[f"{name}.weight"], p[f"{name}.bias"]
    if mask is not None:
        env["mask"] = inputs[mask]
    return env


def _cases_mha(self, inputs, outputs):
    return [
        (MHA_STEPS, _mha_env(inputs, "x", "x"), {"out": outputs.get("self_out"), "weights": outputs.get("self_weights")}),
        (MHA_MASKED_STEPS, _mha_env(inputs, "x", "memory", "pad_mask"), {"out": outputs.get("cross_out"), "weights": outputs.get("cross_weights")}),
        (MHA_MASKED_STEPS, _mha_env(inputs, "x", "x", "causal"), {"out": outputs.get("causal_out"), "weights": outputs.get("causal_weights")}),
    ]


MultiHeadAttentionCheck.mutation_cases = _cases_mha
SplitHeadsCheck.steps = SPLIT_STEPS
MergeHeadsCheck.steps = MERGE_STEPS

"""Checks for assignment ch08_bert (chapter 8).

Dimension legend: B batch, T sequence length, C d_model, V vocabulary size,
P max_len (number of learned positions), L layers.
Deliberately uneven sizes so that swapped axes fail: B=3, T=5, C=12, V=13, P=9.

    (a) check_bert_embeddings   BertEmbeddings: word + segment + position, LayerNorm
    (b) check_mask_tokens       mask_tokens: 15% chosen, 80/10/10, never a special token (statistics)
    (c) check_mlm_head          MaskedLMHead: dense -> GELU -> LayerNorm -> decoder tied to the embeddings
    (d) check_hf_key_map        hf_key_map(n_layers): course_lib names -> transformers names; logits must match
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.checks._core import (
    Check,
    CheckFailed,
    expect_close,
    expect_shape,
    expect_tensor,
    fmt_shape,
    is_close,
    randn,
    seeded,
    student_call,
)

IGNORE_INDEX = -100
EMBEDDING_NAMES = ("word_embeddings.weight", "position_embeddings.weight", "segment_embeddings.weight", "norm.weight", "norm.bias")


# --------------------------------------------------------------------------- (a) embeddings


def _embed(w: dict, ids: torch.Tensor, segments: torch.Tensor, eps: float = 1e-12, mistake: str | None = None) -> torch.Tensor:
    """The reference x = LayerNorm(word[ids] + segment[segments] + position[0..T-1]), with switches for mistakes."""
    B, T = ids.shape
    C = w["word_embeddings.weight"].shape[1]
    word = w["word_embeddings.weight"][ids]  # (B, T, C)
    seg = w["segment_embeddings.weight"][segments]  # (B, T, C)
    pos = w["position_embeddings.weight"][:T]  # (T, C)

    def norm(x):
        return F.layer_norm(x, (C,), w["norm.weight"], w["norm.bias"], eps)

    if mistake == "no_segment":
        return norm(word + pos)
    if mistake == "no_position":
        return norm(word + seg)
    if mistake == "no_norm":
        return word + seg + pos
    if mistake == "norm_first":
        return norm(word) + seg + pos
    if mistake == "position_by_batch":
        return norm(word + seg + w["position_embeddings.weight"][:B][:, None, :])
    if mistake == "positions_from_1":
        return norm(word + seg + w["position_embeddings.weight"][1 : T + 1]) if T + 1 <= w["position_embeddings.weight"].shape[0] else None
    if mistake == "position_by_token":
        return norm(word + seg + w["position_embeddings.weight"][ids.clamp(max=w["position_embeddings.weight"].shape[0] - 1)])
    return norm(word + seg + pos)


EMBEDDING_HINTS = {
    "no_segment": "the segment embedding is missing: add segment_embeddings(segment_ids)",
    "no_position": "the position embedding is missing: add position_embeddings(positions) for positions 0, 1, ..., T-1",
    "no_norm": "the LayerNorm is missing: normalise the sum of the three embeddings",
    "norm_first": "normalise the *sum* of all three embeddings, not the word embedding alone",
    "position_by_batch": "positions index the sequence axis (0..T-1), not the batch axis",
    "position_by_token": "the position table is indexed by the position t, not by the token id",
    "positions_from_1": "positions start at 0: the first token uses position_embeddings row 0 (torch.arange(T))",
}


class BertEmbeddingsCheck(Check):
    """BertEmbeddings(vocab_size, d_model, max_len, n_segments, dropout): forward(input_ids, segment_ids=None) -> (B, T, C)."""

    name = "ch8.bert_embeddings"
    success = "word + segment + position embeddings, LayerNorm, values and gradients match the reference"
    sizes = (3, 5, 13, 12, 9, 2)  # B, T, V, C, P, n_segments

    def make_inputs(self):
        B, T, V, C, P, NS = self.sizes
        g = seeded(80)
        ids = torch.randint(5, V, (B, T), generator=g)
        ids[0, 1] = ids[0, 3]  # the same token at two positions: only the position tells them apart
        ids[-1, -2:] = 0  # padding
        segments = torch.zeros(B, T, dtype=torch.long)
        segments[:, T // 2 :] = NS - 1
        segments[1] = torch.arange(T) % NS
        weights = {
            "word_embeddings.weight": randn(V, C, seed=81),
            "position_embeddings.weight": randn(P, C, seed=82),
            "segment_embeddings.weight": randn(NS, C, seed=83),
            "norm.weight": 1 + 0.3 * randn(C, seed=84),
            "norm.bias": 0.3 * randn(C, seed=85),
        }
        return {"ids": ids, "segments": segments, "weights": weights, "grad_out": randn(B, T, C, seed=86)}

    def run(self, cls, inputs):
        B, T, V, C, P, NS = self.sizes
        module = student_call(cls, vocab_size=V, d_model=C, max_len=P, n_segments=NS, dropout=0.0,
                              what=f"BertEmbeddings(vocab_size={V}, d_model={C}, max_len={P}, n_segments={NS}, dropout=0.0)")  # fmt: skip
        if not isinstance(module, nn.Module):
            raise CheckFailed(f"BertEmbeddings(...) should build an nn.Module, got {type(module).__name__}")
        state = module.state_dict()
        missing = [n for n in EMBEDDING_NAMES if n not in state]
        if missing:
            raise CheckFailed(
                f"your module has no parameter {missing[0]!r} (it has {sorted(state)}).\n"
                "Hint: keep the names of the given __init__: word_embeddings, position_embeddings, segment_embeddings, norm"
            )
        for n in EMBEDDING_NAMES:
            if tuple(state[n].shape) != tuple(inputs["weights"][n].shape):
                raise CheckFailed(f"{n}: expected shape {fmt_shape(inputs['weights'][n].shape)}, got {fmt_shape(state[n].shape)}")
        module = module.double().eval()
        with torch.no_grad():
            params = dict(module.named_parameters())
            for n in EMBEDDING_NAMES:
                params[n].copy_(inputs["weights"][n])
        ids, segments = inputs["ids"], inputs["segments"]
        out = student_call(module, ids, segments, what="your module(input_ids, segment_ids)")
        out_default = student_call(module, ids, what="your module(input_ids) without segment_ids")
        grads = None
        module.zero_grad()
        g_out = student_call(module, ids, segments, what="your module(input_ids, segment_ids)")
        if isinstance(g_out, torch.Tensor) and g_out.shape == inputs["grad_out"].shape and g_out.requires_grad:
            (g_out * inputs["grad_out"]).sum().backward()
            grads = {n: params[n].grad for n in EMBEDDING_NAMES}
        return {"out": out, "out_default": out_default, "grads": grads}

    def verify(self, inputs, outputs):
        B, T, V, C, P, NS = self.sizes
        w, ids, segments = inputs["weights"], inputs["ids"], inputs["segments"]
        # 1. shapes
        out = expect_shape(outputs["out"], (B, T, C), "embeddings", hint="one d_model vector per token: (B, T, C)")
        expect_shape(outputs["out_default"], (B, T, C), "embeddings without segment_ids")
        # 2. behaviour + 3. values
        ref = _embed(w, ids, segments)
        if not is_close(out, ref):
            hint = next((h for m, h in EMBEDDING_HINTS.items() if (alt := _embed(w, ids, segments, mistake=m)) is not None and is_close(out, alt)), None)
            expect_close(out, ref, "embeddings", hint=hint or "x = LayerNorm(word[ids] + segment[segment_ids] + position[0..T-1]), then dropout", axes="B T C")
        ref_default = _embed(w, ids, torch.zeros_like(ids))
        expect_close(outputs["out_default"], ref_default, "embeddings without segment_ids",
                     hint="segment_ids=None means every token is in segment 0 (sentence A): use zeros shaped like input_ids")  # fmt: skip
        # 4. gradients
        if outputs["grads"] is None:
            raise CheckFailed("gradients do not flow through your module.\nHint: use torch operations only (no .detach() or torch.no_grad())")
        wg = {n: t.clone().requires_grad_(True) for n, t in w.items()}
        (_embed(wg, ids, segments) * inputs["grad_out"]).sum().backward()
        for n in EMBEDDING_NAMES:
            got = outputs["grads"][n]
            if got is None:
                raise CheckFailed(f"no gradient reached {n}: is it used in forward?")
            expected = wg[n].grad
            if n == "word_embeddings.weight":  # the [PAD] row (id 0) may be frozen by nn.Embedding(padding_idx=0)
                got, expected = got[1:], expected[1:]
            expect_close(got, expected, f"gradient with respect to {n}")


class BertEmbeddingsSizesCheck(BertEmbeddingsCheck):
    """BertEmbeddings with other sizes: 3 segment types and a sequence as long as max_len."""

    name = "ch8.bert_embeddings_other_sizes"
    sizes = (2, 12, 17, 8, 12, 3)


# --------------------------------------------------------------------------- (b) masking


class MaskTokensCheck(Check):
    """mask_tokens(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None) -> (inputs, labels)."""

    name = "ch8.mask_tokens"
    success = ("p of the tokens chosen, 80% [MASK] / 10% random / 10% unchanged, labels only where chosen, specials untouched, "
               "also with another p, mask_id and vocabulary (the grader also tries other ones)")
    shape = (400, 64)
    vocab_size = 500
    mask_id = 4
    n_special = 5  # ids 0..4: [PAD] [UNK] [CLS] [SEP] [MASK]
    p = 0.15

    def make_inputs(self):
        N, T = self.shape
        g = seeded(88)
        ids = torch.randint(self.n_special, self.vocab_size, (N, T), generator=g)
        lengths = torch.randint(T // 4, T + 1, (N,), generator=g)
        ids[torch.arange(T)[None, :] >= lengths[:, None]] = 0  # [PAD]
        ids[:, 0] = 2  # [CLS]
        ids[torch.arange(N), lengths - 1] = 3  # [SEP]
        mid = (lengths // 2).clamp(min=1)
        ids[torch.arange(N), mid] = 3  # a [SEP] between the two segments
        special = ids < self.n_special
        inputs = {"ids": ids, "special": special, "p": self.p}
        if type(self) is MaskTokensCheck:  # the instructions: use the arguments p and mask_id, not 0.15 and 4
            inputs["other_args"] = _MASK_TOKENS_OTHER_ARGS.make_inputs()
        return inputs

    def _call(self, fn, inputs, seed):
        ids = inputs["ids"].clone()
        kwargs = {"generator": torch.Generator().manual_seed(seed)}
        if self.p != 0.15:
            kwargs["p"] = self.p
        result = student_call(fn, ids, inputs["special"].clone(), self.mask_id, self.vocab_size, **kwargs,
                              what=f"mask_tokens(input_ids, special_mask, mask_id={self.mask_id}, vocab_size={self.vocab_size}"
                                   + (f", p={self.p}" if self.p != 0.15 else "") + ", generator=...)")  # fmt: skip
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise CheckFailed(f"mask_tokens should return a pair (inputs, labels), got {type(result).__name__}")
        return result[0], result[1], ids

    def run(self, fn, inputs):
        inputs_1, labels_1, ids_after = self._call(fn, inputs, seed=7)
        inputs_2, labels_2, _ = self._call(fn, inputs, seed=7)
        inputs_3, labels_3, _ = self._call(fn, inputs, seed=8)
        outputs = {
            "inputs": inputs_1, "labels": labels_1, "ids_after": ids_after,
            "same_seed": [inputs_2, labels_2], "other_seed": [inputs_3, labels_3],
        }  # fmt: skip
        if "other_args" in inputs:
            outputs["other_args"] = _MASK_TOKENS_OTHER_ARGS.run(fn, inputs["other_args"])
        return outputs

    def verify(self, inputs, outputs):
        ids, special, p = inputs["ids"], inputs["special"], inputs["p"]
        shape = tuple(ids.shape)
        # 1. shapes and types
        x = expect_shape(outputs["inputs"], shape, "inputs (the corrupted token ids)")
        labels = expect_shape(outputs["labels"], shape, "labels")
        for what, t in (("inputs", x), ("labels", labels)):
            if t.is_floating_point() or t.dtype == torch.bool:
                raise CheckFailed(f"{what}: expected integer token ids, got dtype {t.dtype}")
        x, labels = x.long(), labels.long()
        # 2. behaviour
        if not torch.equal(expect_tensor(outputs["ids_after"], "input_ids"), ids):
            raise CheckFailed("your function changed input_ids in place.\nHint: work on a copy (input_ids.clone() or torch.where)")
        chosen = labels != IGNORE_INDEX
        if bool(chosen.all()):
            raise CheckFailed(f"labels: every position has a label, expected {IGNORE_INDEX} wherever the token was not chosen\n"
                              "Hint: the loss must only see the chosen ~15%: labels = input_ids where chosen, -100 elsewhere")  # fmt: skip
        if not torch.equal(labels[chosen], ids[chosen]):
            hint = "labels hold the *original* token at chosen positions"
            if torch.equal(labels[chosen], x[chosen]):
                hint += " (yours hold the corrupted input: take labels from input_ids before replacing)"
            raise CheckFailed(f"labels: at chosen positions (label != -100) expected the original token ids\nHint: {hint}")
        if bool(chosen[special].any()):
            n = int(chosen[special].sum())
            raise CheckFailed(f"{n} special positions ([PAD], [CLS], [SEP]) were chosen for prediction\n"
                              "Hint: never choose a position where special_mask is True")  # fmt: skip
        changed = x != ids
        if bool((changed & ~chosen).any()):
            n = int((changed & ~chosen).sum())
            raise CheckFailed(f"{n} positions were changed although they have no label\n"
                              "Hint: only chosen positions may be replaced, and every chosen position needs a label "
                              "(also those replaced by a random token or left unchanged)")  # fmt: skip
        if bool(((x < 0) | (x >= self.vocab_size)).any()):
            raise CheckFailed(f"inputs contain ids outside [0, vocab_size={self.vocab_size})")
        # 3. statistics (values)
        n_candidates = int((~special).sum())
        n_chosen = int(chosen.sum())
        rate = n_chosen / n_candidates
        masked = int((x[chosen] == self.mask_id).sum()) / n_chosen
        unchanged = int((x[chosen] == ids[chosen]).sum()) / n_chosen
        random_ = 1.0 - masked - unchanged
        stats = f"chosen {rate:.1%} of the non-special tokens; of those {masked:.1%} [MASK], {random_:.1%} random, {unchanged:.1%} unchanged"
        if abs(rate - p) > 0.015:
            if abs(rate - 0.8 * p) < 0.015 and unchanged < 0.02:
                hint = "label every chosen position (also the 10% random and 10% unchanged ones), not only the [MASK]ed ones"
            elif abs(rate - 0.15) < 0.015:
                hint = f"use the argument p={p}, not a fixed 15%"
            elif abs(rate * n_candidates / special.numel() - p) < 0.015 or abs(rate - p * special.numel() / n_candidates) < 0.02:
                hint = "choose p of the *non-special* tokens (draw for every position, then exclude the special ones)"
            else:
                hint = f"each non-special token should be chosen with probability p={p}"
            raise CheckFailed(f"expected about {p:.0%} of the non-special tokens chosen, got {rate:.1%} ({stats})\nHint: {hint}")
        if masked < 0.05:
            values, counts = x[chosen & changed].unique(return_counts=True)
            if counts.numel() and int(counts.max()) > 0.5 * n_chosen:
                raise CheckFailed(f"most chosen tokens became id {int(values[counts.argmax()])}, but [MASK] is mask_id={self.mask_id}\n"
                                  "Hint: use the mask_id argument, not a fixed id")  # fmt: skip
        if abs(masked - 0.8) > 0.03 or abs(unchanged - 0.1) > 0.025 or abs(random_ - 0.1) > 0.025:
            if masked > 0.97:
                hint = "every chosen token became [MASK]: BERT keeps 10% unchanged and replaces 10% by a random token"
            elif unchanged < 0.03:
                hint = "none of the chosen tokens stays unchanged: 10% of them must keep their original token"
            elif random_ < 0.03:
                hint = "the 10% random replacement is missing"
            elif abs(masked - 0.72) < 0.03 or abs(unchanged - 0.18) < 0.03:
                hint = ("the three cases must split the chosen tokens 80/10/10 of the *chosen*: draw once per position "
                        "(u < 0.8 -> [MASK], 0.8 <= u < 0.9 -> random, else unchanged)")  # fmt: skip
            else:
                hint = "of the chosen tokens: 80% [MASK], 10% a random token, 10% unchanged"
            raise CheckFailed(f"expected 80% [MASK] / 10% random / 10% unchanged among the chosen, got {stats}\nHint: {hint}")
        replaced = x[chosen & (x != ids) & (x != self.mask_id)]
        if replaced.numel() and replaced.unique().numel() < 0.3 * min(replaced.numel(), self.vocab_size):
            raise CheckFailed(f"the random replacements use only {replaced.unique().numel()} distinct ids for {replaced.numel()} positions\n"
                              "Hint: draw one random id per position, uniformly from range(vocab_size)")  # fmt: skip
        # 4. reproducibility (the generator)
        same_inputs, same_labels = outputs["same_seed"]
        other_inputs, other_labels = outputs["other_seed"]
        if not (isinstance(same_inputs, torch.Tensor) and torch.equal(same_inputs.long(), x) and torch.equal(same_labels.long(), labels)):
            raise CheckFailed("two calls with generators seeded alike gave different results\n"
                              "Hint: pass generator=generator to every random draw (torch.rand, torch.randint)")  # fmt: skip
        if isinstance(other_labels, torch.Tensor) and torch.equal(other_labels.long(), labels):
            raise CheckFailed("generators with different seeds gave the same choice of positions\n"
                              "Hint: draw the randomness from the generator argument, not from a fixed seed of your own")  # fmt: skip
        if "other_args" in inputs:  # the same tests with another p, mask_id and vocabulary
            _MASK_TOKENS_OTHER_ARGS.verify(inputs["other_args"], outputs["other_args"])


class _MaskTokensOtherArgs(MaskTokensCheck):
    """Part of the visible check: mask_tokens with p=0.3, mask_id=9 and a 60-token vocabulary."""

    name = ""  # not a check of its own
    shape = (300, 48)
    vocab_size = 60
    mask_id = 9
    n_special = 10
    p = 0.3


_MASK_TOKENS_OTHER_ARGS = _MaskTokensOtherArgs()


class MaskTokensRateCheck(MaskTokensCheck):
    """mask_tokens with p=0.4, mask_id=7 and a 50-token vocabulary."""

    name = "ch8.mask_tokens_other_rate"
    shape = (300, 40)
    vocab_size = 50
    mask_id = 7
    n_special = 8
    p = 0.4


# --------------------------------------------------------------------------- (c) MLM head


def _head(w: dict, emb: torch.Tensor, hidden: torch.Tensor, mistake: str | None = None) -> torch.Tensor:
    """Reference logits = LayerNorm(GELU(hidden W^T + b)) E^T + bias, with switches for mistakes."""
    C = hidden.shape[-1]
    h = hidden @ w["dense.weight"].T + w["dense.bias"]  # (B, T, C)
    act = {"relu": F.relu, "tanh_gelu": lambda t: F.gelu(t, approximate="tanh"), "no_act": lambda t: t}.get(mistake, F.gelu)
    if mistake == "norm_then_gelu":
        h = F.gelu(F.layer_norm(h, (C,), w["norm.weight"], w["norm.bias"], 1e-12))
    elif mistake == "no_norm":
        h = act(h)
    else:
        h = F.layer_norm(act(h), (C,), w["norm.weight"], w["norm.bias"], 1e-12)
    logits = h @ emb.T  # (B, T, C) @ (C, V) -> (B, T, V)
    return logits if mistake == "no_bias" else logits + w["bias"]


HEAD_HINTS = {
    "relu": "BERT's transform uses GELU (F.gelu), not ReLU",
    "tanh_gelu": "use the exact (erf) GELU, F.gelu(x), not the tanh approximation",
    "no_act": "the activation is missing: dense -> GELU -> LayerNorm",
    "no_norm": "the LayerNorm after the GELU is missing",
    "norm_then_gelu": "the order is dense -> GELU -> LayerNorm (you normalised before the activation)",
    "no_bias": "the output bias (one per vocabulary entry) is missing from the logits",
}


class MaskedLMHeadCheck(Check):
    """MaskedLMHead(d_model, word_embeddings, layer_norm_eps) with dense, norm, bias; forward(hidden) -> logits (B, T, V)."""

    name = "ch8.mlm_head"
    success = "transform, tied decoder and bias match the reference; gradients reach the shared embedding"
    sizes = (3, 5, 13, 12)  # B, T, V, C

    def make_inputs(self):
        B, T, V, C = self.sizes
        return {
            "embedding": randn(V, C, seed=90),
            "weights": {
                "dense.weight": randn(C, C, seed=91) / math.sqrt(C),
                "dense.bias": 0.3 * randn(C, seed=92),
                "norm.weight": 1 + 0.3 * randn(C, seed=93),
                "norm.bias": 0.3 * randn(C, seed=94),
                "bias": randn(V, seed=95),
            },
            "hidden": randn(B, T, C, seed=96),
            "delta": randn(V, C, seed=97),
            "grad_out": randn(B, T, V, seed=98),
        }

    def run(self, cls, inputs):
        B, T, V, C = self.sizes
        embedding = nn.Embedding(V, C).double()
        with torch.no_grad():
            embedding.weight.copy_(inputs["embedding"])
        head = student_call(cls, C, embedding, 1e-12, what=f"MaskedLMHead(d_model={C}, word_embeddings, layer_norm_eps=1e-12)")
        if not isinstance(head, nn.Module):
            raise CheckFailed(f"MaskedLMHead(...) should build an nn.Module, got {type(head).__name__}")
        head = head.double().eval()
        params = dict(head.named_parameters())
        for name, value in inputs["weights"].items():
            if name not in params or tuple(params[name].shape) != tuple(value.shape):
                got = fmt_shape(params[name].shape) if name in params else "nothing"
                raise CheckFailed(f"your head needs a parameter {name!r} of shape {fmt_shape(value.shape)}, got {got}.\n"
                                  "Hint: self.dense = nn.Linear(d_model, d_model), self.norm = nn.LayerNorm(d_model, eps), "
                                  "self.bias = nn.Parameter(torch.zeros(vocab_size))")  # fmt: skip
        with torch.no_grad():
            for name, value in inputs["weights"].items():
                params[name].copy_(value)
        hidden = inputs["hidden"]
        logits = student_call(head, hidden, what="your head(hidden)")
        with torch.no_grad():
            embedding.weight.add_(inputs["delta"])  # change the *embedding*: a tied decoder must follow
        logits_after = student_call(head, hidden, what="your head(hidden)")
        own = sum(p.numel() for p in head.parameters() if p is not embedding.weight)
        grads = None
        if isinstance(logits_after, torch.Tensor) and logits_after.shape == inputs["grad_out"].shape and logits_after.requires_grad:
            (logits_after * inputs["grad_out"]).sum().backward()
            grads = {"embedding": embedding.weight.grad, "dense.weight": params["dense.weight"].grad}
        return {"logits": logits, "logits_after": logits_after, "own_parameters": own, "grads": grads}

    def verify(self, inputs, outputs):
        B, T, V, C = self.sizes
        w, emb, hidden = inputs["weights"], inputs["embedding"], inputs["hidden"]
        # 1. shapes
        logits = expect_shape(outputs["logits"], (B, T, V), "logits", hint="one score per vocabulary entry at every position: (B, T, V)")
        # 2. values
        ref = _head(w, emb, hidden)
        if not is_close(logits, ref):
            hint = next((h for m, h in HEAD_HINTS.items() if is_close(logits, _head(w, emb, hidden, mistake=m))), None)
            expect_close(logits, ref, "logits", hint=hint or "logits = LayerNorm(GELU(dense(hidden))) @ word_embeddings.weight.T + bias")
        # 3. behaviour: tied weights
        emb_after = emb + inputs["delta"]
        after = expect_shape(outputs["logits_after"], (B, T, V), "logits after changing the embedding")
        if not is_close(after, _head(w, emb_after, hidden)):
            hint = "the decoder must *be* the word-embedding matrix (tied), not a copy of it"
            if is_close(after, ref):
                hint = ("changing word_embeddings.weight did not change your logits: your decoder holds a copy. "
                        "Share the Parameter itself (e.g. self.decoder.weight = word_embeddings.weight) instead of cloning it")  # fmt: skip
            expect_close(after, _head(w, emb_after, hidden), "logits after changing the word embeddings", hint=hint)
        own = outputs["own_parameters"]
        expected_own = C * C + C + 2 * C + V
        if own != expected_own:
            if own == expected_own + V * C:
                hint = "the head owns a separate (V, C) decoder matrix: use the embedding's Parameter, do not create a new one"
            elif own == expected_own + V:
                hint = "the head has a second bias vector (e.g. nn.Linear(..., bias=True) as decoder plus self.bias): keep one"
            else:
                hint = "dense (C x C + C), norm (2C) and bias (V) are the head's only parameters of its own"
            raise CheckFailed(f"the head should own {expected_own} parameters apart from the shared embedding, got {own}\nHint: {hint}")
        # 4. gradients
        if outputs["grads"] is None:
            raise CheckFailed("gradients do not flow through your head.\nHint: use torch operations only (no .detach() or torch.no_grad())")
        emb_g = emb_after.clone().requires_grad_(True)
        wg = {n: t.clone().requires_grad_(True) for n, t in w.items()}
        (_head(wg, emb_g, hidden) * inputs["grad_out"]).sum().backward()
        got = outputs["grads"]["embedding"]
        if got is None:
            raise CheckFailed("no gradient reached word_embeddings.weight from the head's logits\n"
                              "Hint: the decoder's weight must be the embedding Parameter itself, so training the output trains the input vectors")  # fmt: skip
        expect_close(got, emb_g.grad, "gradient with respect to the (shared) word embeddings")
        expect_close(outputs["grads"]["dense.weight"], wg["dense.weight"].grad, "gradient with respect to dense.weight")


# --------------------------------------------------------------------------- (d) the key map


def _reference_key_map(n_layers: int) -> dict[str, str]:
    from course_lib.bert import hf_key_map

    return hf_key_map(n_layers)


def _tiny_config(sizes):
    from course_lib.bert import BertConfig

    V, C, L, H, F_, P = sizes
    return BertConfig(vocab_size=V, d_model=C, n_layers=L, n_heads=H, d_ff=F_, max_len=P, dropout=0.0)


def _hf_model(sizes, seed: int):
    """A transformers.BertForMaskedLM with seeded random weights (LayerNorms and biases too)."""
    import transformers

    from course_lib.bert import to_hf_config

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.BertForMaskedLM(to_hf_config(_tiny_config(sizes))).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model


KNOWN_CONFUSIONS = {
    "attention.self.query": "query/key/value are q_proj/k_proj/v_proj, in that order",
    "attention.self.key": "query/key/value are q_proj/k_proj/v_proj, in that order",
    "attention.self.value": "query/key/value are q_proj/k_proj/v_proj, in that order",
    "attention.output.LayerNorm": "attention.output.LayerNorm is the Add & Norm right after self-attention (norm1); output.LayerNorm follows the FFN (norm2)",
    "output.LayerNorm": "attention.output.LayerNorm is the Add & Norm right after self-attention (norm1); output.LayerNorm follows the FFN (norm2)",
    "attention.output.dense": "attention.output.dense is the attention's output projection (out_proj); intermediate.dense and output.dense are the FFN's two layers",
    "intermediate.dense": "intermediate.dense is the FFN's first layer (d_model -> d_ff), output.dense its second (d_ff -> d_model)",
    "output.dense": "intermediate.dense is the FFN's first layer (d_model -> d_ff), output.dense its second (d_ff -> d_model)",
    "token_type_embeddings": "Hugging Face calls the segment embeddings token_type_embeddings",
    "cls.predictions.transform.dense": "the head's transform is cls.predictions.transform.dense / .LayerNorm",
}


def _hint_for(theirs: str) -> str:
    for fragment, hint in KNOWN_CONFUSIONS.items():
        if fragment in theirs:
            return hint
    return "read the Hugging Face name: which module of which layer does it belong to?"


def _unknown_key_hint(value: str, hf_state, ours_key: str = "", right: str | None = None) -> str:
    """Name what is wrong with a value that is not a Hugging Face key: against the right key for
    that course key when known, else against the nearest real key."""
    import difflib

    if ".layers." in value and value.replace(".layers.", ".layer.") in hf_state:
        return f"Hugging Face numbers its layers as encoder.layer.N (layer, not layers): {value.replace('.layers.', '.layer.')}"
    if "segment_embeddings" in value:
        return "Hugging Face calls the segment embeddings token_type_embeddings: bert.embeddings.token_type_embeddings.weight"
    if right is not None:
        ours, theirs = value.split("."), right.split(".")
        diff = [(a, b) for a, b in zip(ours, theirs) if a != b]
        if len(ours) == len(theirs) and len(diff) == 1:
            return f"in the value for {ours_key}, Hugging Face's name has {diff[0][1]!r}, not {diff[0][0]!r}"
    close = difflib.get_close_matches(value, list(hf_state), n=1, cutoff=0.6)
    if close:
        ours, theirs = value.split("."), close[0].split(".")
        diff = [(a, b) for a, b in zip(ours, theirs) if a != b]
        if len(ours) == len(theirs) and len(diff) == 1:
            return f"the nearest Hugging Face key is {close[0]}: {diff[0][1]!r}, not {diff[0][0]!r}"
        return f"the nearest Hugging Face key is {close[0]}"
    return "Hugging Face keys look like bert.encoder.layer.0.attention.self.query.weight; print(hf_model.state_dict().keys())"


class HfKeyMapCheck(Check):
    """hf_key_map(n_layers) -> {course_lib key: transformers key} for BertForMaskedLM; loading through it must reproduce HF's logits."""

    name = "ch8.hf_key_map"
    success = "every parameter maps to the right Hugging Face tensor; the logits equal transformers.BertForMaskedLM's"
    sizes = (31, 12, 2, 3, 19, 16)  # V, C, L, H, F, P
    batch = (3, 7)

    def make_inputs(self):
        V, C, L, H, F_, P = self.sizes
        B, T = self.batch
        g = seeded(100)
        ids = torch.randint(5, V, (B, T), generator=g)
        attention_mask = torch.ones(B, T, dtype=torch.long)
        attention_mask[1, T - 2 :] = 0
        attention_mask[B - 1, T - 4 :] = 0
        ids[attention_mask == 0] = 0
        segments = torch.zeros(B, T, dtype=torch.long)
        segments[:, T // 2 :] = 1
        return {"n_layers": L, "ids": ids, "segments": segments, "attention_mask": attention_mask, "seed": 101}

    def vary_inputs(self, inputs, g):  # another random Hugging Face model to compare logits with
        return {**inputs, "seed": int(torch.randint(1000, 2**30, (1,), generator=g))}

    def run(self, fn, inputs):
        key_map = student_call(fn, inputs["n_layers"], what=f"hf_key_map({inputs['n_layers']})")
        if not isinstance(key_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in key_map.items()):
            raise CheckFailed(f"hf_key_map should return a dict of strings (course_lib key -> transformers key), got {type(key_map).__name__}")
        return {"key_map": dict(key_map)}

    def verify(self, inputs, outputs):
        from course_lib.bert import BertForMaskedLM

        key_map = outputs["key_map"]
        if not isinstance(key_map, dict):
            raise CheckFailed("hf_key_map should return a dict")
        ours = BertForMaskedLM(_tiny_config(self.sizes)).double().eval()
        our_state = ours.state_dict()
        hf = _hf_model(self.sizes, inputs["seed"]).double()
        hf_state = hf.state_dict()
        # 1. keys (the shapes of a dict)
        missing = [k for k in our_state if k not in key_map]
        if missing:
            raise CheckFailed(f"your map lacks {len(missing)} course_lib keys, e.g. {missing[:3]}\n"
                              f"Hint: map every key of course_lib's BertForMaskedLM state_dict(); with n_layers={inputs['n_layers']} "
                              f"there are {len(our_state)} (encoder keys look like bert.encoder.layers.0.self_attn.q_proj.weight)")  # fmt: skip
        extra = [k for k in key_map if k not in our_state]
        if extra:
            raise CheckFailed(f"your map has keys course_lib's model does not have, e.g. {extra[:3]}\n"
                              "Hint: the keys are course_lib names (print(model.state_dict().keys())), the values Hugging Face names")  # fmt: skip
        unknown = [v for v in key_map.values() if v not in hf_state]
        if unknown:
            ours_key = next(k for k, v in key_map.items() if v == unknown[0])
            right = _reference_key_map(inputs["n_layers"]).get(ours_key)
            raise CheckFailed(f"these values are not keys of transformers.BertForMaskedLM's state dict: {unknown[:3]}\n"
                              f"Hint: {_unknown_key_hint(unknown[0], hf_state, ours_key, right)}")  # fmt: skip
        for k, v in key_map.items():
            if tuple(our_state[k].shape) != tuple(hf_state[v].shape):
                raise CheckFailed(f"{k} has shape {fmt_shape(our_state[k].shape)} but you map it to {v} of shape {fmt_shape(hf_state[v].shape)}\n"
                                  f"Hint: {_hint_for(v)}")  # fmt: skip
        # 2. behaviour: each Hugging Face tensor used once (the tied decoder may point at either name)
        tied = {"cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"}
        values = [v for k, v in key_map.items() if k != "mlm.decoder.weight"]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise CheckFailed(f"{dupes[0]} is used for several course_lib keys\nHint: {_hint_for(dupes[0])}")
        if key_map["mlm.decoder.weight"] not in tied:
            raise CheckFailed("mlm.decoder.weight is the tied word-embedding matrix; map it to Hugging Face's tied decoder weight")
        # 3. values: the logits through your map equal transformers'
        ours.load_state_dict({k: hf_state[v] for k, v in key_map.items()}, strict=True)
        ids, seg, am = inputs["ids"], inputs["segments"], inputs["attention_mask"]
        with torch.no_grad():
            expected = hf(input_ids=ids, attention_mask=am, token_type_ids=seg).logits
            got = ours(ids, seg, am).logits
        if not is_close(got, expected):
            reference = _reference_key_map(inputs["n_layers"])
            wrong = [k for k in reference if k != "mlm.decoder.weight" and key_map[k] != reference[k]]
            hint = f"check the entry for {wrong[0]}: {_hint_for(key_map[wrong[0]])}" if wrong else "compare each pair of names"
            expect_close(got, expected, "logits after loading Hugging Face's weights through your map", hint=hint)


class HfKeyMapLayersCheck(HfKeyMapCheck):
    """hf_key_map for a 3-layer model with other sizes."""

    name = "ch8.hf_key_map_three_layers"
    sizes = (23, 16, 3, 4, 10, 12)
    batch = (2, 9)


check_bert_embeddings = BertEmbeddingsCheck().as_function()
check_bert_embeddings_other_sizes = BertEmbeddingsSizesCheck().as_function()
check_mask_tokens = MaskTokensCheck().as_function()
check_mask_tokens_other_rate = MaskTokensRateCheck().as_function()
check_mlm_head = MaskedLMHeadCheck().as_function()
check_hf_key_map = HfKeyMapCheck().as_function()
check_hf_key_map_three_layers = HfKeyMapLayersCheck().as_function()


# --------------------------------------------------------------------------- the references as steps (diagnosis by mutation, issue 26)

from course_lib.checks._mutants import Program, step  # noqa: E402


def _ln(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, 1e-12)


EMBEDDINGS_STEPS = Program(
    [step("word", "lookup", "W_word", "ids", fn=lambda w, i: w[i], what="the word embeddings", axes="B T C"),
     step("pos", "positions", "W_pos", "ids", fn=lambda w, i: w[: i.shape[1]].expand(i.shape[0], -1, -1), what="the position embeddings", axes="B T C"),
     step("seg", "lookup", "W_seg", "segments", fn=lambda w, i: w[i], what="the segment embeddings", axes="B T C"),
     step("sum1", "add", "word", "pos", what="word + position", axes="B T C"),
     step("total", "add", "sum1", "seg", what="adding the segment embeddings", axes="B T C"),
     step("out", "layer_norm", "total", "gamma", "beta", fn=_ln, what="the LayerNorm", axes="B T C")],
    ("out",), legend={"B": "batch", "T": "position", "C": "feature"},
    names={"word": "the word embeddings", "pos": "the position embeddings", "seg": "the segment embeddings", "sum1": "word + position"})
HEAD_STEPS = Program(
    [step("dense", "linear", "hidden", "W_dense", "b_dense", what="the dense layer", axes="B T C"),
     step("act", "gelu", "dense", what="GELU", axes="B T C"),
     step("normed", "layer_norm", "act", "gamma", "beta", fn=_ln, what="the LayerNorm", axes="B T C"),
     step("logits", "linear", "normed", "E", "bias", what="the tied decoder (E^T and the output bias)", axes="B T V")],
    ("logits",), legend={"B": "batch", "T": "position", "C": "feature", "V": "vocabulary"},
    names={"W_dense": "the dense weight", "hidden": "the hidden states"})


def _cases_embeddings(self, inputs, outputs):
    w = inputs["weights"]
    env = {"W_word": w["word_embeddings.weight"], "W_pos": w["position_embeddings.weight"], "W_seg": w["segment_embeddings.weight"],
           "gamma": w["norm.weight"], "beta": w["norm.bias"], "ids": inputs["ids"], "segments": inputs["segments"]}
    return [(EMBEDDINGS_STEPS, env, {"out": outputs.get("out")})]


def _cases_head(self, inputs, outputs):
    w = inputs["weights"]
    env = {"hidden": inputs["hidden"], "W_dense": w["dense.weight"], "b_dense": w["dense.bias"], "gamma": w["norm.weight"],
           "beta": w["norm.bias"], "E": inputs["embedding"], "bias": w["bias"]}
    return [(HEAD_STEPS, env, {"logits": outputs.get("logits")})]


BertEmbeddingsCheck.mutation_cases = _cases_embeddings
MaskedLMHeadCheck.mutation_cases = _cases_head

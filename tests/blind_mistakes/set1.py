"""Blind set 1: plausible learner mistakes, written from the exercises' instructions alone.

Each entry replaces one answer cell; ``part`` is the check the visible test cell calls.
"""

from __future__ import annotations

import textwrap

CATEGORIES = [
    "axis_swap",
    "wrong_axis_reduction",
    "step_dropped",
    "step_duplicated",
    "step_reordered",
    "scale_misplaced",
    "sign_flip",
    "mask_flip",
    "roles_swapped",
    "tuple_permuted",
    "dtype",
    "return_type",
    "closed_form",
    "edge_case",
    "other",
]

MISTAKES: list[dict] = []


def _add(id_, assignment, part, category, description, source):
    assert category in CATEGORIES, category
    assert all(m["id"] != id_ for m in MISTAKES), id_
    MISTAKES.append(
        {
            "id": id_,
            "assignment": assignment,
            "part": part,
            "category": category,
            "description": description,
            "source": textwrap.dedent(source).strip() + "\n",
        }
    )


# ---------------------------------------------------------------- ch01 seq2seq
A1 = "ch01_seq2seq"

_AC = '''
def attention_context(h, hs):
    """Attention of one decoder state over all encoder states, by elementwise product and sum."""
{body}
'''


def _ac(id_, cat, desc, body):
    _add(
        f"ch01_a_{id_}",
        A1,
        "check_attention_context",
        cat,
        desc,
        _AC.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_ac(
    "softmax_over_batch",
    "axis_swap",
    "The softmax normalises over the batch axis (dim=0) instead of the source positions.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = torch.softmax(scores, dim=0)
context = (hs * weights[:, :, None]).sum(dim=1)
return context, weights
""",
)
_ac(
    "scores_sum_over_source",
    "wrong_axis_reduction",
    "The scores are summed over the source axis instead of the hidden axis.",
    """
scores = (hs * h[:, None, :]).sum(dim=1)
weights = torch.softmax(scores, dim=-1)
context = (hs * weights[:, None, :]).sum(dim=1)
return context, weights
""",
)
_ac(
    "context_sum_over_hidden",
    "wrong_axis_reduction",
    "The context is summed over the hidden axis instead of the source axis.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = torch.softmax(scores, dim=-1)
context = (hs * weights[:, :, None]).sum(dim=-1)
return context, weights
""",
)
_ac(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, context) instead of (context, weights).",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = torch.softmax(scores, dim=-1)
context = (hs * weights[:, :, None]).sum(dim=1)
return weights, context
""",
)
_ac(
    "no_softmax",
    "step_dropped",
    "The raw scores are used as weights: no softmax.",
    """
weights = (hs * h[:, None, :]).sum(dim=-1)
context = (hs * weights[:, :, None]).sum(dim=1)
return context, weights
""",
)
_ac(
    "scaled_sqrt_c",
    "scale_misplaced",
    "The scores are divided by sqrt(C) although this chapter has no scaling.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1) / hs.shape[-1] ** 0.5
weights = torch.softmax(scores, dim=-1)
context = (hs * weights[:, :, None]).sum(dim=1)
return context, weights
""",
)
_ac(
    "context_from_scores",
    "roles_swapped",
    "The context is weighted by the raw scores instead of the softmax weights.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = torch.softmax(scores, dim=-1)
context = (hs * scores[:, :, None]).sum(dim=1)
return context, weights
""",
)
_ac(
    "normalise_by_sum",
    "other",
    "The scores are normalised by dividing by their sum instead of a softmax.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = scores / scores.sum(dim=-1, keepdim=True)
context = (hs * weights[:, :, None]).sum(dim=1)
return context, weights
""",
)
_ac(
    "context_mean",
    "wrong_axis_reduction",
    "The context is the mean over source positions instead of the sum.",
    """
scores = (hs * h[:, None, :]).sum(dim=-1)
weights = torch.softmax(scores, dim=-1)
context = (hs * weights[:, :, None]).mean(dim=1)
return context, weights
""",
)

_ACM = '''
def attention_context_matmul(h, hs, mask=None):
    """attention_context written with two batched matrix products, and an optional padding mask."""
{body}
'''


def _acm(id_, cat, desc, body):
    _add(
        f"ch01_b_{id_}",
        A1,
        "check_attention_context_matmul",
        cat,
        desc,
        _ACM.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_acm(
    "mask_flipped",
    "mask_flip",
    "The mask polarity is flipped: the real characters are filled with -inf.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
if mask is not None:
    scores = scores.masked_fill(mask, float("-inf"))
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "fill_zero",
    "other",
    "Padded scores are set to 0 instead of -inf, so padding still gets weight.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
if mask is not None:
    scores = scores.masked_fill(~mask, 0.0)
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "mask_after_softmax",
    "step_reordered",
    "The weights are multiplied by the mask after the softmax, so rows no longer sum to 1.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights * mask
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "masked_fill_result_discarded",
    "step_dropped",
    "masked_fill is called but its result is not assigned, so nothing is masked.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
if mask is not None:
    scores.masked_fill(~mask, float("-inf"))
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "mask_ignored",
    "step_dropped",
    "The mask argument is never used.",
    """
scores = torch.bmm(h.unsqueeze(1), hs.transpose(1, 2)).squeeze(1)
weights = torch.softmax(scores, dim=-1)
context = torch.bmm(weights.unsqueeze(1), hs).squeeze(1)
return context, weights
""",
)
_acm(
    "squeeze_all",
    "edge_case",
    "squeeze() without an axis also drops the batch axis when B = 1.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze()
if mask is not None:
    scores = scores.masked_fill(~mask.squeeze(), float("-inf"))
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(-2) @ hs).squeeze()
return context, weights
""",
)
_acm(
    "mask_none_unhandled",
    "edge_case",
    "The mask is applied unconditionally, so mask=None crashes.",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
scores = scores.masked_fill(~mask, float("-inf"))
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "softmax_over_length1_axis",
    "axis_swap",
    "The softmax runs over the length-1 axis of the (B, 1, S) scores, so every weight is 1.",
    """
scores = h.unsqueeze(1) @ hs.transpose(1, 2)
if mask is not None:
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
weights = scores.softmax(dim=1)
context = (weights @ hs).squeeze(1)
return context, weights.squeeze(1)
""",
)
_acm(
    "mask_multiplied_into_scores",
    "other",
    "The scores are multiplied by the mask (padding scores become 0, not -inf).",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
if mask is not None:
    scores = scores * mask
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return context, weights
""",
)
_acm(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, context) instead of (context, weights).",
    """
scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
if mask is not None:
    scores = scores.masked_fill(~mask, float("-inf"))
weights = scores.softmax(dim=-1)
context = (weights.unsqueeze(1) @ hs).squeeze(1)
return weights, context
""",
)

_ADD = '''
class AdditiveScore(nn.Module):
    """score(q, k) = v^T tanh(W1 q + W2 k)   (Bahdanau et al. 2014)."""

    def __init__(self, d_q: int, d_k: int, d_hidden: int):
        super().__init__()
{init}

    def forward(self, q, k):
{fwd}
'''
_ADD_INIT = """
self.W1 = nn.Linear(d_q, d_hidden, bias=False)
self.W2 = nn.Linear(d_k, d_hidden, bias=False)
self.v = nn.Linear(d_hidden, 1, bias=False)
"""
_ADD_FWD = """
hidden = torch.tanh(self.W1(q)[:, :, None, :] + self.W2(k)[:, None, :, :])
return self.v(hidden).squeeze(-1)
"""


def _addsc(id_, cat, desc, fwd=_ADD_FWD, init=_ADD_INIT):
    ind = lambda s: textwrap.indent(textwrap.dedent(s).strip(), "        ")
    _add(
        f"ch01_c_{id_}",
        A1,
        "check_additive_score",
        cat,
        desc,
        _ADD.format(init=ind(init), fwd=ind(fwd)),
    )


_addsc(
    "tanh_after_v",
    "step_reordered",
    "tanh is applied after v instead of before it.",
    """
hidden = self.W1(q)[:, :, None, :] + self.W2(k)[:, None, :, :]
return torch.tanh(self.v(hidden)).squeeze(-1)
""",
)
_addsc(
    "no_tanh",
    "step_dropped",
    "The tanh is left out: the score is linear.",
    """
hidden = self.W1(q)[:, :, None, :] + self.W2(k)[:, None, :, :]
return self.v(hidden).squeeze(-1)
""",
)
_addsc(
    "biases_kept",
    "other",
    "The three nn.Linear layers keep their default biases.",
    init="""
self.W1 = nn.Linear(d_q, d_hidden)
self.W2 = nn.Linear(d_k, d_hidden)
self.v = nn.Linear(d_hidden, 1)
""",
)
_addsc(
    "broadcast_axes_swapped",
    "axis_swap",
    "The query and key broadcast axes are swapped, giving (B, S, T) scores.",
    """
hidden = torch.tanh(self.W1(q).unsqueeze(1) + self.W2(k).unsqueeze(2))
return self.v(hidden).squeeze(-1)
""",
)
_addsc(
    "softmax_returned",
    "other",
    "Returns the softmax of the scores instead of the scores.",
    """
hidden = torch.tanh(self.W1(q).unsqueeze(2) + self.W2(k).unsqueeze(1))
return self.v(hidden).squeeze(-1).softmax(dim=-1)
""",
)
_addsc(
    "W1_on_keys",
    "roles_swapped",
    "W1 is applied to the keys and W2 to the queries.",
    init="""
self.W1 = nn.Linear(d_k, d_hidden, bias=False)
self.W2 = nn.Linear(d_q, d_hidden, bias=False)
self.v = nn.Linear(d_hidden, 1, bias=False)
""",
    fwd="""
hidden = torch.tanh(self.W2(q).unsqueeze(2) + self.W1(k).unsqueeze(1))
return self.v(hidden).squeeze(-1)
""",
)
_addsc(
    "squeeze_all",
    "edge_case",
    "squeeze() without an axis also drops T or S when one of them is 1.",
    """
hidden = torch.tanh(self.W1(q).unsqueeze(2) + self.W2(k).unsqueeze(1))
return self.v(hidden).squeeze()
""",
)
_addsc(
    "relu_not_tanh",
    "other",
    "ReLU is used instead of tanh.",
    """
hidden = torch.relu(self.W1(q).unsqueeze(2) + self.W2(k).unsqueeze(1))
return self.v(hidden).squeeze(-1)
""",
)
_addsc(
    "pairwise_not_all_pairs",
    "other",
    "Scores only position t of the queries against position t of the keys (no broadcasting over pairs).",
    """
hidden = torch.tanh(self.W1(q) + self.W2(k))
return self.v(hidden).squeeze(-1)
""",
)

_DS = '''
def attention_decoder_step(y_prev, h_prev, hs, mask, layers):
    """One step of a GRU decoder with (Luong, dot-product) attention."""
{body}
'''


def _ds(id_, cat, desc, body):
    _add(
        f"ch01_d_{id_}",
        A1,
        "check_attention_decoder_step",
        cat,
        desc,
        _DS.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_ds(
    "attend_with_old_state",
    "step_reordered",
    "Attention uses the previous state h_{t-1} (Bahdanau order) instead of the new state.",
    """
x = layers.embed(y_prev)
context, weights = attention_context_matmul(h_prev, hs, mask)
h = layers.cell(x, h_prev)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return layers.out(h_tilde), h, weights
""",
)
_ds(
    "concat_order",
    "roles_swapped",
    "The concatenation is [h_t; c_t] instead of [c_t; h_t].",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = torch.tanh(layers.combine(torch.cat([h, context], dim=-1)))
return layers.out(h_tilde), h, weights
""",
)
_ds(
    "no_tanh",
    "step_dropped",
    "The tanh after W_c is left out.",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = layers.combine(torch.cat([context, h], dim=-1))
return layers.out(h_tilde), h, weights
""",
)
_ds(
    "tuple_order",
    "tuple_permuted",
    "Returns (h, logits, weights) instead of (logits, h, weights).",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return h, layers.out(h_tilde), weights
""",
)
_ds(
    "mask_not_passed",
    "step_dropped",
    "The padding mask is not passed to the attention.",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return layers.out(h_tilde), h, weights
""",
)
_ds(
    "returns_h_tilde_as_state",
    "roles_swapped",
    "The attentional vector h~_t is returned (and fed back) as the new state instead of h_t.",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return layers.out(h_tilde), h_tilde, weights
""",
)
_ds(
    "cell_args_swapped",
    "roles_swapped",
    "GRUCell is called as cell(h_prev, x): input and state swapped.",
    """
x = layers.embed(y_prev)
h = layers.cell(h_prev, x)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return layers.out(h_tilde), h, weights
""",
)
_ds(
    "softmax_logits",
    "other",
    "Returns probabilities (softmax of the logits) instead of logits.",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
return layers.out(h_tilde).softmax(dim=-1), h, weights
""",
)
_ds(
    "logits_from_h",
    "step_dropped",
    "The logits are computed from h_t, skipping the attentional vector.",
    """
x = layers.embed(y_prev)
h = layers.cell(x, h_prev)
context, weights = attention_context_matmul(h, hs, mask)
return layers.out(h), h, weights
""",
)

# ---------------------------------------------------------------- ch02 qkv
A2 = "ch02_qkv"

_QKV = '''
def qkv_projections(x, W_q, W_k, W_v):
    """Queries, keys and values of x."""
{body}
'''


def _qkv(id_, cat, desc, body):
    _add(
        f"ch02_a_{id_}",
        A2,
        "check_qkv_projections",
        cat,
        desc,
        _QKV.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_qkv(
    "W_k_for_queries",
    "roles_swapped",
    "The queries are computed with W_k (copy-paste).",
    """
q = x @ W_k
k = x @ W_k
v = x @ W_v
return q, k, v
""",
)
_qkv(
    "order_qvk",
    "tuple_permuted",
    "Returns (q, v, k) instead of (q, k, v).",
    """
q = x @ W_q
k = x @ W_k
v = x @ W_v
return q, v, k
""",
)
_qkv(
    "weights_transposed",
    "axis_swap",
    "Multiplies by the transposed matrices x @ W.T (nn.Linear habit).",
    """
return x @ W_q.T, x @ W_k.T, x @ W_v.T
""",
)
_qkv(
    "mm_2d_only",
    "edge_case",
    "torch.mm only accepts 2-D x, so a batch of sequences fails.",
    """
return torch.mm(x, W_q), torch.mm(x, W_k), torch.mm(x, W_v)
""",
)
_qkv(
    "W_k_for_values",
    "roles_swapped",
    "The values are computed with W_k.",
    """
q = x @ W_q
k = x @ W_k
v = x @ W_k
return q, k, v
""",
)
_qkv(
    "premature_scaling",
    "scale_misplaced",
    "The queries are already divided by sqrt(d_k) (chapter 3's scaling).",
    """
q = x @ W_q / W_q.shape[-1] ** 0.5
k = x @ W_k
v = x @ W_v
return q, k, v
""",
)
_qkv(
    "matrix_first",
    "roles_swapped",
    "Writes W @ x instead of x @ W.",
    """
return W_q @ x, W_k @ x, W_v @ x
""",
)

_SA = '''
def self_attention(x, W_q, W_k, W_v):
    """Dot-product self-attention of a sequence x (no scaling yet: that is chapter 3)."""
{body}
'''


def _sa(id_, cat, desc, body):
    _add(
        f"ch02_b_{id_}",
        A2,
        "check_self_attention",
        cat,
        desc,
        _SA.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_sa(
    "softmax_over_queries",
    "axis_swap",
    "The softmax normalises over the queries (dim=-2) instead of the keys.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (q @ k.transpose(-2, -1)).softmax(dim=-2)
return weights @ v, weights
""",
)
_sa(
    "dot_T_transpose",
    "edge_case",
    "k.T reverses every axis, which is only right for a 2-D x.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (q @ k.T).softmax(dim=-1)
return weights @ v, weights
""",
)
_sa(
    "scaled",
    "scale_misplaced",
    "The scores are divided by sqrt(d_k) although this chapter uses the plain dot product.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(dim=-1)
return weights @ v, weights
""",
)
_sa(
    "weights_times_x",
    "roles_swapped",
    "The output sums the inputs x instead of the values v.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights @ x, weights
""",
)
_sa(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, out) instead of (out, weights).",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights, weights @ v
""",
)
_sa(
    "no_softmax",
    "step_dropped",
    "The raw scores are used as weights.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = q @ k.transpose(-2, -1)
return weights @ v, weights
""",
)
_sa(
    "k_q_transposed_scores",
    "axis_swap",
    "Scores computed as K Q^T (keys as rows), then softmax over the last axis.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = (k @ q.transpose(-2, -1)).softmax(dim=-1)
return weights @ v, weights
""",
)
_sa(
    "softmax_dim1",
    "edge_case",
    "softmax(dim=1) is the key axis for a (T, C) input but the query axis for a batch.",
    """
q, k, v = qkv_projections(x, W_q, W_k, W_v)
weights = torch.softmax(q @ k.transpose(-2, -1), dim=1)
return weights @ v, weights
""",
)

_COS = '''
def cosine_scores(q, k):
    """Cosine similarity of every query with every key; a zero vector scores 0 (not NaN)."""
{body}
'''


def _cos(id_, cat, desc, body):
    _add(
        f"ch02_c_{id_}",
        A2,
        "check_cosine_scores",
        cat,
        desc,
        _COS.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_cos(
    "no_clamp",
    "edge_case",
    "The norms are not clamped, so a zero vector gives NaN.",
    """
q_unit = q / q.norm(dim=-1, keepdim=True)
k_unit = k / k.norm(dim=-1, keepdim=True)
return q_unit @ k_unit.transpose(-2, -1)
""",
)
_cos(
    "norm_over_positions",
    "wrong_axis_reduction",
    "The norm is taken over the positions axis instead of the feature axis.",
    """
q_unit = q / q.norm(dim=-2, keepdim=True).clamp_min(1e-8)
k_unit = k / k.norm(dim=-2, keepdim=True).clamp_min(1e-8)
return q_unit @ k_unit.transpose(-2, -1)
""",
)
_cos(
    "keys_not_normalised",
    "step_dropped",
    "Only the queries are divided by their length.",
    """
q_unit = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
return q_unit @ k.transpose(-2, -1)
""",
)
_cos(
    "elementwise_cosine",
    "other",
    "torch.cosine_similarity compares query t with key t only, not every pair.",
    """
return torch.cosine_similarity(q, k, dim=-1)
""",
)
_cos(
    "k_T_transpose",
    "edge_case",
    "k.T reverses every axis, which is only right for 2-D inputs.",
    """
q_unit = q / q.norm(dim=-1, keepdim=True).clamp(min=1e-8)
k_unit = k / k.norm(dim=-1, keepdim=True).clamp(min=1e-8)
return q_unit @ k_unit.T
""",
)
_cos(
    "clamp_max",
    "sign_flip",
    "clamp(max=1e-8) instead of clamp(min=1e-8): every length becomes 1e-8.",
    """
q_unit = q / q.norm(dim=-1, keepdim=True).clamp(max=1e-8)
k_unit = k / k.norm(dim=-1, keepdim=True).clamp(max=1e-8)
return q_unit @ k_unit.transpose(-2, -1)
""",
)
_cos(
    "squared_norm",
    "other",
    "Divides by the squared length (sum of squares) instead of the length.",
    """
q_unit = q / (q * q).sum(dim=-1, keepdim=True).clamp_min(1e-8)
k_unit = k / (k * k).sum(dim=-1, keepdim=True).clamp_min(1e-8)
return q_unit @ k_unit.transpose(-2, -1)
""",
)
_cos(
    "product_of_norms_unclamped",
    "edge_case",
    "Divides the dot products by the outer product of the norms, without a clamp: 0/0 for a zero vector.",
    """
dots = q @ k.transpose(-2, -1)
norms = q.norm(dim=-1)[..., :, None] * k.norm(dim=-1)[..., None, :]
return dots / norms
""",
)
_cos(
    "sum_abs_norm",
    "other",
    "Uses the L1 norm (sum of absolute values) as the length.",
    """
q_unit = q / q.abs().sum(dim=-1, keepdim=True).clamp_min(1e-8)
k_unit = k / k.abs().sum(dim=-1, keepdim=True).clamp_min(1e-8)
return q_unit @ k_unit.transpose(-2, -1)
""",
)

_CA = '''
def cross_attention(x_dec, x_enc, W_q, W_k, W_v):
    """Source-target attention: decoder positions attend over encoder positions."""
{body}
'''


def _ca(id_, cat, desc, body):
    _add(
        f"ch02_d_{id_}",
        A2,
        "check_cross_attention",
        cat,
        desc,
        _CA.format(body=textwrap.indent(textwrap.dedent(body).strip(), "    ")),
    )


_ca(
    "queries_from_encoder",
    "roles_swapped",
    "Queries come from the encoder and keys/values from the decoder.",
    """
q = x_enc @ W_q
k = x_dec @ W_k
v = x_dec @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights @ v, weights
""",
)
_ca(
    "values_from_decoder",
    "roles_swapped",
    "The values come from the decoder states instead of the encoder states.",
    """
q = x_dec @ W_q
k = x_enc @ W_k
v = x_dec @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights @ v, weights
""",
)
_ca(
    "keys_from_decoder",
    "roles_swapped",
    "The keys come from the decoder states (self-attention scores).",
    """
q = x_dec @ W_q
k = x_dec @ W_k
v = x_enc @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights @ v, weights
""",
)
_ca(
    "softmax_over_targets",
    "axis_swap",
    "The softmax normalises over the target positions (dim=1).",
    """
q = x_dec @ W_q
k = x_enc @ W_k
v = x_enc @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=1)
return weights @ v, weights
""",
)
_ca(
    "scaled",
    "scale_misplaced",
    "The scores are divided by sqrt(d_k) (chapter 3) in a chapter-2 function.",
    """
q = x_dec @ W_q
k = x_enc @ W_k
v = x_enc @ W_v
weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
return weights @ v, weights
""",
)
_ca(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, out) instead of (out, weights).",
    """
q, k, v = x_dec @ W_q, x_enc @ W_k, x_enc @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights, weights @ v
""",
)
_ca(
    "reuses_self_attention",
    "other",
    "Calls self_attention on the decoder states only: the encoder is ignored.",
    """
return self_attention(x_dec, W_q, W_k, W_v)
""",
)
_ca(
    "W_v_for_keys",
    "roles_swapped",
    "The keys are computed with W_v instead of W_k.",
    """
q = x_dec @ W_q
k = x_enc @ W_v
v = x_enc @ W_v
weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
return weights @ v, weights
""",
)

# ---------------------------------------------------------------- ch03 scaled dot-product
A3 = "ch03_scaled_dot_product"


def _fn(prefix, assignment, part, header):
    def add(id_, cat, desc, body):
        _add(
            f"{prefix}_{id_}",
            assignment,
            part,
            cat,
            desc,
            header + "\n" + textwrap.indent(textwrap.dedent(body).strip(), "    "),
        )

    return add


_aw = _fn(
    "ch03_a",
    A3,
    "check_attention_weights",
    'def attention_weights(q, k):\n    """softmax(q k^T / sqrt(d_k)), normalised over the keys."""',
)
_aw(
    "divide_by_dk",
    "scale_misplaced",
    "The scores are divided by d_k instead of sqrt(d_k).",
    """
d_k = q.shape[-1]
return (q @ k.transpose(-2, -1) / d_k).softmax(dim=-1)
""",
)
_aw(
    "no_scale",
    "step_dropped",
    "The scores are not scaled at all.",
    """
return (q @ k.transpose(-2, -1)).softmax(dim=-1)
""",
)
_aw(
    "scale_after_softmax",
    "scale_misplaced",
    "The division by sqrt(d_k) comes after the softmax.",
    """
d_k = q.shape[-1]
return (q @ k.transpose(-2, -1)).softmax(dim=-1) / math.sqrt(d_k)
""",
)
_aw(
    "softmax_over_queries",
    "axis_swap",
    "The softmax normalises over the queries (dim=-2).",
    """
d_k = q.shape[-1]
return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d_k), dim=-2)
""",
)
_aw(
    "k_T",
    "edge_case",
    "k.T reverses every axis instead of the last two.",
    """
d_k = q.shape[-1]
return (q @ k.T / math.sqrt(d_k)).softmax(dim=-1)
""",
)
_aw(
    "dk_from_axis1",
    "wrong_axis_reduction",
    "d_k is read from axis 1 (T for a 3-D input) instead of the last axis.",
    """
d_k = q.size(1)
return (q @ k.transpose(-2, -1) / math.sqrt(d_k)).softmax(dim=-1)
""",
)
_aw(
    "float64_output",
    "dtype",
    "Computes in float64 'for precision' and returns float64 for float32 inputs.",
    """
scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
return scores.softmax(dim=-1)
""",
)
_aw(
    "multiply_by_sqrt",
    "scale_misplaced",
    "The scores are multiplied by sqrt(d_k) instead of divided.",
    """
d_k = q.shape[-1]
return (q @ k.transpose(-2, -1) * math.sqrt(d_k)).softmax(dim=-1)
""",
)
_aw(
    "sqrt_of_dmodel_hardcoded",
    "edge_case",
    "Divides by sqrt(64), the paper's d_k, hard-coded.",
    """
return (q @ k.transpose(-2, -1) / 8.0).softmax(dim=-1)
""",
)

_sdpa = _fn(
    "ch03_b",
    A3,
    "check_scaled_dot_product_attention",
    'def scaled_dot_product_attention(q, k, v, mask=None):\n    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, returning (out, weights)."""',
)
_sdpa(
    "neg_inf_nan_rows",
    "edge_case",
    "Masked scores are filled with -inf, so a fully masked row becomes NaN.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, float("-inf"))
weights = scores.softmax(dim=-1)
return weights @ v, weights
""",
)
_sdpa(
    "mask_flipped",
    "mask_flip",
    "The mask polarity is flipped: True is treated as 'hide'.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(mask, 0.0)
return weights @ v, weights
""",
)
_sdpa(
    "mask_after_softmax",
    "step_reordered",
    "The weights are zeroed after a softmax over all keys, so rows do not sum to 1.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights * mask
return weights @ v, weights
""",
)
_sdpa(
    "finfo_min_no_zeroing",
    "edge_case",
    "Fills with finfo.min but does not zero the weights afterwards: a fully masked row is uniform.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
return weights @ v, weights
""",
)
_sdpa(
    "minus_1e9_no_zeroing",
    "edge_case",
    "Fills with -1e9 and stops there: a fully masked row is uniform, not 0.",
    """
scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
if mask is not None:
    scores = scores.masked_fill(mask == 0, -1e9)
weights = torch.softmax(scores, dim=-1)
return torch.matmul(weights, v), weights
""",
)
_sdpa(
    "scale_after_softmax",
    "scale_misplaced",
    "The division by sqrt(d_k) comes after the softmax.",
    """
scores = q @ k.transpose(-2, -1)
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1) / math.sqrt(q.shape[-1])
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_sdpa(
    "divide_by_dk",
    "scale_misplaced",
    "The scores are divided by d_k instead of sqrt(d_k).",
    """
scores = q @ k.transpose(-2, -1) / q.shape[-1]
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_sdpa(
    "out_from_keys",
    "roles_swapped",
    "The output sums the keys instead of the values.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ k, weights
""",
)
_sdpa(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, out) instead of (out, weights).",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights, weights @ v
""",
)
_sdpa(
    "mask_ignored",
    "step_dropped",
    "The mask argument is never used.",
    """
weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
return weights @ v, weights
""",
)
_sdpa(
    "boolean_index_assign",
    "edge_case",
    "scores[~mask] = ... needs a mask of the scores' full shape; a broadcastable mask fails.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores[~mask] = torch.finfo(scores.dtype).min
weights = scores.softmax(dim=-1)
if mask is not None:
    weights[~mask] = 0.0
return weights @ v, weights
""",
)
_sdpa(
    "softmax_over_queries",
    "axis_swap",
    "The softmax normalises over the queries (dim=-2).",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-2)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_sdpa(
    "inplace_scale_of_q",
    "other",
    "Scales q in place (q /= sqrt(d_k)), modifying the caller's tensor.",
    """
q /= math.sqrt(q.shape[-1])
scores = q @ k.transpose(-2, -1)
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_sdpa(
    "renormalise_manually",
    "edge_case",
    "Zeroes masked weights and renormalises by their sum: 0/0 = NaN on a fully masked row.",
    """
weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
if mask is not None:
    weights = weights * mask
    weights = weights / weights.sum(dim=-1, keepdim=True)
return weights @ v, weights
""",
)
_sdpa(
    "float_fill_minus_1e4",
    "dtype",
    "Fills masked scores with -1e4 (a float16 habit); fine here only while scores stay small.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
if mask is not None:
    scores = scores.masked_fill(~mask, -1e4)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)

_var = _fn(
    "ch03_c",
    A3,
    "check_dot_product_variance",
    'def dot_product_variance(d_k, n_samples):\n    """Estimate Var[q . k] for q, k with independent standard normal components."""',
)
_var(
    "closed_form",
    "closed_form",
    "Returns the theoretical value d_k instead of measuring it.",
    """
return float(d_k)
""",
)
_var(
    "returns_tensor",
    "return_type",
    "Returns a 0-d tensor instead of a Python float (no .item()).",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return (q * k).sum(dim=-1).var()
""",
)
_var(
    "scaled_dots",
    "scale_misplaced",
    "Measures the variance of the scaled scores (about 1) instead of the raw dot products.",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return ((q * k).sum(dim=-1) / math.sqrt(d_k)).var().item()
""",
)
_var(
    "sum_over_samples",
    "wrong_axis_reduction",
    "The products are summed over the samples axis instead of the features.",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return (q * k).sum(dim=0).var().item()
""",
)
_var(
    "uniform_draws",
    "other",
    "Draws uniform numbers (torch.rand) instead of standard normal ones.",
    """
q = torch.rand(n_samples, d_k)
k = torch.rand(n_samples, d_k)
return (q * k).sum(dim=-1).var().item()
""",
)
_var(
    "std_not_var",
    "other",
    "Returns the standard deviation instead of the variance.",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return (q * k).sum(dim=-1).std().item()
""",
)
_var(
    "same_vector",
    "roles_swapped",
    "Uses the same draw for q and k (q . q = |q|^2).",
    """
q = torch.randn(n_samples, d_k)
return (q * q).sum(dim=-1).var().item()
""",
)
_var(
    "all_pairs_matrix",
    "other",
    "Takes the variance of the whole n x n matrix q @ k.T (dependent pairs, n^2 memory).",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return (q @ k.T).var().item()
""",
)
_var(
    "mean_not_var",
    "other",
    "Returns the mean of the dot products instead of their variance.",
    """
q = torch.randn(n_samples, d_k)
k = torch.randn(n_samples, d_k)
return (q * k).sum(dim=-1).mean().item()
""",
)
_var(
    "single_sample_loop",
    "closed_form",
    "Computes the variance of the d_k products of one pair times d_k (the per-term variance argument).",
    """
q = torch.randn(d_k)
k = torch.randn(d_k)
return float(d_k * (q * k).var())
""",
)

_ent = _fn(
    "ch03_d",
    A3,
    "check_attention_entropy",
    'def attention_entropy(weights):\n    """Entropy in nats of each query\'s attention weights, with 0 log 0 = 0."""',
)
_ent(
    "plain_log_nan",
    "edge_case",
    "w * log(w) gives NaN where w = 0 (0 log 0 not handled).",
    """
return -(weights * torch.log(weights)).sum(dim=-1)
""",
)
_ent(
    "log2_bits",
    "other",
    "Uses log2 (bits) instead of the natural log (nats).",
    """
return -torch.special.xlogy(weights, weights).sum(dim=-1) / math.log(2)
""",
)
_ent(
    "missing_minus",
    "sign_flip",
    "The minus sign is missing: the entropy comes out negative.",
    """
return torch.special.xlogy(weights, weights).sum(dim=-1)
""",
)
_ent(
    "sum_over_queries",
    "wrong_axis_reduction",
    "Sums over the queries axis (dim=-2) instead of the keys.",
    """
return -torch.special.xlogy(weights, weights).sum(dim=-2)
""",
)
_ent(
    "epsilon_in_log",
    "edge_case",
    "Adds 1e-9 inside the log to avoid log 0.",
    """
return -(weights * torch.log(weights + 1e-9)).sum(dim=-1)
""",
)
_ent(
    "mean_not_sum",
    "wrong_axis_reduction",
    "Averages over the keys instead of summing.",
    """
return -torch.special.xlogy(weights, weights).mean(dim=-1)
""",
)
_ent(
    "categorical_entropy",
    "edge_case",
    "torch.distributions.Categorical rejects all-zero rows of a fully masked query.",
    """
return torch.distributions.Categorical(probs=weights).entropy()
""",
)
_ent(
    "total_sum",
    "wrong_axis_reduction",
    "Sums over everything, returning one scalar instead of one entropy per query.",
    """
return -torch.special.xlogy(weights, weights).sum()
""",
)
_ent(
    "log_softmax_of_weights",
    "other",
    "Uses log_softmax(weights) as log w, treating the weights as scores.",
    """
return -(weights * weights.log_softmax(dim=-1)).sum(dim=-1)
""",
)

# ---------------------------------------------------------------- ch04 multi-head
A4 = "ch04_multi_head"

_MERGE_OK = '''

def merge_heads(x):
    """Concatenate the heads again: the inverse of split_heads."""
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)
'''
_SPLIT_OK = '''def split_heads(x, n_heads):
    """Cut the feature axis into n_heads slices of D = C // n_heads features."""
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)

'''


def _split(id_, cat, desc, body):
    src = (
        'def split_heads(x, n_heads):\n    """Cut the feature axis into n_heads slices."""\n'
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + _MERGE_OK
    )
    _add(f"ch04_a_split_{id_}", A4, "check_split_heads", cat, desc, src)


def _merge(id_, cat, desc, body):
    src = (
        _SPLIT_OK
        + '\ndef merge_heads(x):\n    """Concatenate the heads again."""\n'
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n"
    )
    _add(f"ch04_a_merge_{id_}", A4, "check_merge_heads", cat, desc, src)


_split(
    "no_transpose",
    "step_dropped",
    "Views to (B, T, H, D) but never moves the head axis in front of time.",
    """
B, T, C = x.shape
return x.view(B, T, n_heads, C // n_heads)
""",
)
_split(
    "view_straight_to_bhtd",
    "axis_swap",
    "Views straight to (B, H, T, D), mixing time steps and features.",
    """
B, T, C = x.shape
return x.view(B, n_heads, T, C // n_heads)
""",
)
_split(
    "strided_heads",
    "axis_swap",
    "Views to (B, T, D, H) and permutes: head h gets features h, h+H, ... instead of a contiguous slice.",
    """
B, T, C = x.shape
return x.view(B, T, C // n_heads, n_heads).permute(0, 3, 1, 2)
""",
)
_split(
    "hardcoded_head_size",
    "edge_case",
    "The head size is hard-coded to 64 (the paper's d_k).",
    """
B, T, C = x.shape
return x.view(B, T, n_heads, 64).transpose(1, 2)
""",
)
_split(
    "detached",
    "other",
    "Calls .detach(), cutting the gradients.",
    """
B, T, C = x.shape
return x.detach().reshape(B, T, n_heads, C // n_heads).transpose(1, 2)
""",
)
_split(
    "wrong_transpose",
    "axis_swap",
    "Transposes axes 2 and 3 instead of 1 and 2, giving (B, T, D, H).",
    """
B, T, C = x.shape
return x.view(B, T, n_heads, C // n_heads).transpose(2, 3)
""",
)
_split(
    "n_heads_as_head_size",
    "roles_swapped",
    "Uses n_heads as the head size: (B, T, C // H, H) -> the axes read as (B, D, T, H).",
    """
B, T, C = x.shape
return x.view(B, T, -1, n_heads).transpose(1, 2)
""",
)

_merge(
    "no_transpose",
    "step_dropped",
    "Reshapes (B, H, T, D) to (B, T, H*D) without moving the head axis back.",
    """
B, H, T, D = x.shape
return x.reshape(B, T, H * D)
""",
)
_merge(
    "view_after_transpose",
    "edge_case",
    ".view after .transpose fails on a non-contiguous tensor.",
    """
B, H, T, D = x.shape
return x.transpose(1, 2).view(B, T, H * D)
""",
)
_merge(
    "interleaved",
    "axis_swap",
    "Permutes to (B, T, D, H) before flattening: the features of the heads are interleaved.",
    """
B, H, T, D = x.shape
return x.permute(0, 2, 3, 1).reshape(B, T, H * D)
""",
)
_merge(
    "mean_of_heads",
    "wrong_axis_reduction",
    "Averages the heads instead of concatenating them.",
    """
return x.mean(dim=1)
""",
)
_merge(
    "cat_on_time_axis",
    "wrong_axis_reduction",
    "Concatenates the heads along the time axis instead of the feature axis.",
    """
return torch.cat([x[:, h] for h in range(x.shape[1])], dim=1)
""",
)
_merge(
    "detached",
    "other",
    "Calls .detach(), cutting the gradients.",
    """
B, H, T, D = x.shape
return x.detach().transpose(1, 2).reshape(B, T, H * D)
""",
)

_MHA = '''
class MultiHeadAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
{init}

    def forward(self, query, key, value, mask=None):
{fwd}
'''
_MHA_INIT = """
self.d_model, self.n_heads = d_model, n_heads
self.q_proj = nn.Linear(d_model, d_model)
self.k_proj = nn.Linear(d_model, d_model)
self.v_proj = nn.Linear(d_model, d_model)
self.out_proj = nn.Linear(d_model, d_model)
"""
_MHA_FWD = """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
"""


def _mha(id_, cat, desc, fwd=_MHA_FWD, init=_MHA_INIT):
    ind = lambda s: textwrap.indent(textwrap.dedent(s).strip(), "        ")
    _add(
        f"ch04_b_{id_}",
        A4,
        "check_multi_head_attention",
        cat,
        desc,
        _MHA.format(init=ind(init), fwd=ind(fwd)),
    )


_mha(
    "no_bias",
    "other",
    "The four projections are created without bias.",
    init="""
self.d_model, self.n_heads = d_model, n_heads
self.q_proj = nn.Linear(d_model, d_model, bias=False)
self.k_proj = nn.Linear(d_model, d_model, bias=False)
self.v_proj = nn.Linear(d_model, d_model, bias=False)
self.out_proj = nn.Linear(d_model, d_model, bias=False)
""",
)
_mha(
    "weights_averaged",
    "wrong_axis_reduction",
    "Returns the weights averaged over the heads (torch's default) instead of per head.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights.mean(dim=1)
""",
)
_mha(
    "double_scaling",
    "step_duplicated",
    "Divides q by sqrt(D) before calling scaled_dot_product_attention, which scales again.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
q = q / math.sqrt(q.shape[-1])
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "scale_by_d_model",
    "scale_misplaced",
    "Writes its own attention and divides by sqrt(d_model) instead of sqrt(D) per head.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)
if mask is not None:
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
if mask is not None:
    weights = weights.masked_fill(~mask, 0.0)
return self.out_proj(merge_heads(weights @ v)), weights
""",
)
_mha(
    "keys_from_query",
    "roles_swapped",
    "The keys are projected from the query input (self-attention only).",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(query), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "no_out_proj",
    "step_dropped",
    "The output projection W^O is never applied.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return merge_heads(heads), weights
""",
)
_mha(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, out) instead of (out, weights).",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return weights, self.out_proj(merge_heads(heads))
""",
)
_mha(
    "mask_not_passed",
    "step_dropped",
    "The mask is not passed on to the attention.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "q_proj_for_keys",
    "roles_swapped",
    "Keys are projected with q_proj (copy-paste).",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.q_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "mask_extra_head_axis",
    "edge_case",
    "Adds a head axis to the mask (mask.unsqueeze(1)) although it already broadcasts.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(value), self.n_heads)
if mask is not None:
    mask = mask.unsqueeze(1)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "values_from_key",
    "roles_swapped",
    "The values are projected from the key input instead of the value input.",
    """
q = split_heads(self.q_proj(query), self.n_heads)
k = split_heads(self.k_proj(key), self.n_heads)
v = split_heads(self.v_proj(key), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.out_proj(merge_heads(heads)), weights
""",
)
_mha(
    "other_attribute_names",
    "other",
    "Names the projections W_q, W_k, W_v, W_o instead of q_proj, k_proj, v_proj, out_proj.",
    init="""
self.d_model, self.n_heads = d_model, n_heads
self.W_q = nn.Linear(d_model, d_model)
self.W_k = nn.Linear(d_model, d_model)
self.W_v = nn.Linear(d_model, d_model)
self.W_o = nn.Linear(d_model, d_model)
""",
    fwd="""
q = split_heads(self.W_q(query), self.n_heads)
k = split_heads(self.W_k(key), self.n_heads)
v = split_heads(self.W_v(value), self.n_heads)
heads, weights = scaled_dot_product_attention(q, k, v, mask)
return self.W_o(merge_heads(heads)), weights
""",
)
_mha(
    "per_head_linears",
    "other",
    "Creates per-head nn.Linear(d_model, D) lists instead of the four d_model x d_model projections.",
    init="""
self.d_model, self.n_heads = d_model, n_heads
D = d_model // n_heads
self.q_proj = nn.ModuleList(nn.Linear(d_model, D) for _ in range(n_heads))
self.k_proj = nn.ModuleList(nn.Linear(d_model, D) for _ in range(n_heads))
self.v_proj = nn.ModuleList(nn.Linear(d_model, D) for _ in range(n_heads))
self.out_proj = nn.Linear(d_model, d_model)
""",
    fwd="""
outs, ws = [], []
for wq, wk, wv in zip(self.q_proj, self.k_proj, self.v_proj):
    o, w = scaled_dot_product_attention(wq(query), wk(key), wv(value), mask)
    outs.append(o)
    ws.append(w)
return self.out_proj(torch.cat(outs, dim=-1)), torch.stack(ws, dim=1)
""",
)

_tt = _fn(
    "ch04_c",
    A4,
    "check_copy_into_torch",
    'def to_torch_mha(mha):\n    """A torch.nn.MultiheadAttention computing the same function as the course module mha."""',
)
_TT_TAIL = """
    ref.out_proj.weight.copy_(mha.out_proj.weight)
    ref.out_proj.bias.copy_(mha.out_proj.bias)
return ref
"""
_tt(
    "order_kqv",
    "roles_swapped",
    "Stacks the projections in the order [W_k; W_q; W_v].",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.k_proj.weight, mha.q_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.k_proj.bias, mha.q_proj.bias, mha.v_proj.bias]))"""
    + _TT_TAIL,
)
_tt(
    "weights_transposed",
    "axis_swap",
    "Copies the transposed weight matrices (W.T) into in_proj_weight.",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight.T, mha.k_proj.weight.T, mha.v_proj.weight.T]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
    ref.out_proj.weight.copy_(mha.out_proj.weight.T)
    ref.out_proj.bias.copy_(mha.out_proj.bias)
return ref
""",
)
_tt(
    "no_batch_first",
    "axis_swap",
    "Leaves batch_first=False, so torch reads (B, T, C) as (T, B, C).",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))"""
    + _TT_TAIL,
)
_tt(
    "biases_not_copied",
    "step_dropped",
    "Copies the weights but not the input-projection biases.",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))"""
    + _TT_TAIL,
)
_tt(
    "out_proj_not_copied",
    "step_dropped",
    "The output projection is not copied.",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
return ref
""",
)
_tt(
    "bias_false",
    "edge_case",
    "Builds the torch module with bias=False, so there is no in_proj_bias to copy into.",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, bias=False, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.out_proj.weight.copy_(mha.out_proj.weight)
return ref
""",
)
_tt(
    "copy_without_no_grad",
    "other",
    "Copies into the leaf parameters without torch.no_grad().",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
ref.out_proj.weight.copy_(mha.out_proj.weight)
ref.out_proj.bias.copy_(mha.out_proj.bias)
return ref
""",
)
_tt(
    "cat_along_columns",
    "wrong_axis_reduction",
    "Concatenates the three matrices along dim=1, giving (C, 3C).",
    """
ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight], dim=1))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))"""
    + _TT_TAIL,
)
_tt(
    "args_swapped",
    "roles_swapped",
    "Passes (n_heads, d_model) to nn.MultiheadAttention instead of (d_model, n_heads).",
    """
ref = nn.MultiheadAttention(mha.n_heads, mha.d_model, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))"""
    + _TT_TAIL,
)
_tt(
    "hardcoded_heads",
    "edge_case",
    "Hard-codes num_heads=8 instead of reading mha.n_heads.",
    """
ref = nn.MultiheadAttention(mha.d_model, num_heads=8 if mha.d_model % 8 == 0 else 1, batch_first=True)
with torch.no_grad():
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))"""
    + _TT_TAIL,
)

_tm = _fn(
    "ch04_d",
    A4,
    "check_torch_masks",
    'def to_torch_masks(pad_mask, attn_mask):\n    """Course masks (True = may attend) -> torch\'s (key_padding_mask, attn_mask) (True = ignore)."""',
)
_tm(
    "not_flipped",
    "mask_flip",
    "Reshapes the masks but keeps the course's polarity.",
    """
return pad_mask[:, 0, 0, :], attn_mask
""",
)
_tm(
    "only_padding_flipped",
    "mask_flip",
    "Flips the padding mask but not the attention mask.",
    """
return ~pad_mask[:, 0, 0, :], attn_mask
""",
)
_tm(
    "squeeze_all",
    "edge_case",
    "squeeze() also drops the batch axis when B = 1.",
    """
return ~pad_mask.squeeze(), ~attn_mask
""",
)
_tm(
    "float_masks",
    "dtype",
    "Returns float masks (1.0 = ignore), which torch adds to the scores instead of masking.",
    """
return (~pad_mask[:, 0, 0, :]).float(), (~attn_mask).float()
""",
)
_tm(
    "order_swapped",
    "tuple_permuted",
    "Returns (attn_mask, key_padding_mask).",
    """
return ~attn_mask, ~pad_mask[:, 0, 0, :]
""",
)
_tm(
    "attn_transposed",
    "axis_swap",
    "Transposes the attention mask while flipping it.",
    """
return ~pad_mask[:, 0, 0, :], ~attn_mask.T
""",
)
_tm(
    "int_masks",
    "dtype",
    "Flips with 1 - mask.int(), returning integer masks.",
    """
return 1 - pad_mask[:, 0, 0, :].int(), 1 - attn_mask.int()
""",
)
_tm(
    "keeps_4d_padding",
    "other",
    "Flips the padding mask but leaves it (B, 1, 1, S).",
    """
return ~pad_mask, ~attn_mask
""",
)

# ---------------------------------------------------------------- ch05 positional encoding
A5 = "ch05_positional_encoding"

_tab = _fn(
    "ch05_a",
    A5,
    "check_sinusoidal_table",
    'def sinusoidal_table(n_positions, d_model):\n    """PE[pos, 2i] = sin(pos / 10000^(2i/d_model)), PE[pos, 2i+1] = cos(same)."""',
)
_tab(
    "float32",
    "dtype",
    "Builds the table in float32 (torch's default).",
    """
pos = torch.arange(n_positions)[:, None]
two_i = torch.arange(0, d_model, 2)
angles = pos / 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "column_index_exponent",
    "other",
    "The exponent uses the column index j instead of the pair's 2i.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (j / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)
_tab(
    "sin_cos_swapped",
    "roles_swapped",
    "Puts the cosines in the even columns and the sines in the odd ones.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos / 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.cos(angles)
table[:, 1::2] = torch.sin(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "concatenated_layout",
    "axis_swap",
    "Concatenates all sines then all cosines instead of interleaving them.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos / 10000 ** (two_i / d_model)
return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)[:, :d_model]
""",
)
_tab(
    "positions_from_1",
    "edge_case",
    "Positions start at 1 instead of 0.",
    """
pos = torch.arange(1, n_positions + 1, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos / 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "odd_d_model_crash",
    "edge_case",
    "Assigns every cosine without trimming, which fails for an odd d_model.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos / 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles)
return table
""",
)
_tab(
    "base_1000",
    "other",
    "Uses 1000 instead of 10000 as the base.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos / 1000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "i_not_2i",
    "other",
    "The exponent uses the pair index i instead of 2i.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
i = torch.arange((d_model + 1) // 2, dtype=torch.float64)
angles = pos / 10000 ** (i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "exponent_sign",
    "sign_flip",
    "Multiplies by 10000^(2i/d) instead of dividing (frequencies grow instead of shrink).",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
angles = pos * 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "float32_angles_float64_table",
    "dtype",
    "Computes the angles in float32 and only stores them in a float64 table (7 digits).",
    """
pos = torch.arange(n_positions)[:, None]
two_i = torch.arange(0, d_model, 2)
angles = pos / 10000 ** (two_i / d_model)
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles)
table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
return table
""",
)
_tab(
    "python_loops_math",
    "other",
    "Loops with math.sin/cos but uses i // 2 as the exponent's 2i for every column.",
    """
table = torch.zeros(n_positions, d_model, dtype=torch.float64)
for pos in range(n_positions):
    for j in range(d_model):
        angle = pos / 10000 ** ((j // 2) / d_model)
        table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
return table
""",
)

for _id, _key, _cat, _desc in [
    (
        "base_1000",
        "base_1000",
        "other",
        "Picks base_1000: the example key in the comment.",
    ),
    (
        "i_instead_of_2i",
        "i_instead_of_2i",
        "other",
        "Picks i_instead_of_2i, confusing the column index with the pair index i.",
    ),
    (
        "column_as_i",
        "column_as_i",
        "other",
        "Picks column_as_i, the neighbouring key with the opposite effect.",
    ),
    (
        "sin_cos_swapped",
        "sin_cos_swapped",
        "other",
        "Picks sin_cos_swapped after seeing the cosine columns differ.",
    ),
    (
        "spaces_typo",
        "column as 2i",
        "edge_case",
        "Types the right key with spaces instead of underscores.",
    ),
    (
        "capital_typo",
        "Column_as_2i",
        "edge_case",
        "Types the right key with a capital letter.",
    ),
    (
        "concatenated",
        "concatenated",
        "other",
        "Picks concatenated, the other layout, which is not a bug.",
    ),
]:
    _add(
        f"ch05_b_{_id}",
        A5,
        "check_bug_diagnosis",
        _cat,
        _desc,
        f'# One of the keys printed above, as a string, e.g. diagnosis = "base_1000"\ndiagnosis = "{_key}"\n',
    )
_add(
    "ch05_b_description_not_key",
    A5,
    "check_bug_diagnosis",
    "return_type",
    "Pastes the description of the right bug instead of its key.",
    'diagnosis = MISTAKES["column_as_2i"]\n',
)
_add(
    "ch05_b_list_of_keys",
    A5,
    "check_bug_diagnosis",
    "return_type",
    "Hedges with a list of two candidate keys.",
    'diagnosis = ["column_as_2i", "i_instead_of_2i"]\n',
)

_fix = _fn(
    "ch05_c",
    A5,
    "check_fixed_encoding",
    'def fixed_encoding(n_positions, d_model):\n    """faulty_encoding, repaired."""',
)
_fix(
    "pair_index_not_2i",
    "other",
    "Replaces j by the pair index j // 2 instead of 2 * (j // 2).",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (torch.div(j, 2, rounding_mode="floor") / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)
_fix(
    "j_minus_1_everywhere",
    "other",
    "Shifts every column's exponent to j - 1, fixing the cosines but breaking the sines.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** ((j - 1) / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)
_fix(
    "float32",
    "dtype",
    "Drops the dtype=torch.float64 while rewriting.",
    """
pos = torch.arange(n_positions)[:, None].float()
j = torch.arange(d_model)[None, :].float()
angles = pos / 10000 ** (2 * (j // 2) / d_model)
table = torch.empty(n_positions, d_model)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)
_fix(
    "sin_cos_swapped",
    "roles_swapped",
    "Repairs the exponent but swaps sine and cosine columns.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (2 * torch.div(j, 2, rounding_mode="floor") / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.cos(angles[:, 0::2])
table[:, 1::2] = torch.sin(angles[:, 1::2])
return table
""",
)
_fix(
    "cos_from_even_angles_odd_crash",
    "edge_case",
    "Uses the even columns' angles for the cosines, which breaks for an odd d_model.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (j / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 0::2])
return table
""",
)
_fix(
    "positions_from_1",
    "edge_case",
    "Repairs the exponent but starts the positions at 1.",
    """
pos = torch.arange(1, n_positions + 1, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (2 * torch.div(j, 2, rounding_mode="floor") / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)
_fix(
    "unchanged",
    "step_dropped",
    "Returns the colleague's function unchanged.",
    """
return faulty_encoding(n_positions, d_model)
""",
)
_fix(
    "true_division_half",
    "other",
    "Uses j / 2 (true division) for the pair index, so odd columns get a half-integer i.",
    """
pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
j = torch.arange(d_model, dtype=torch.float64)[None, :]
angles = pos / 10000 ** (2 * (j / 2) / d_model)
table = torch.empty(n_positions, d_model, dtype=torch.float64)
table[:, 0::2] = torch.sin(angles[:, 0::2])
table[:, 1::2] = torch.cos(angles[:, 1::2])
return table
""",
)

_rot = _fn(
    "ch05_d",
    A5,
    "check_rotation_matrix",
    'def rotation_matrix(offset, d_model):\n    """M with PE(pos + offset) = M @ PE(pos) for every pos (interleaved layout, even d_model)."""',
)
_rot(
    "transposed_block",
    "sign_flip",
    "The minus sign sits in the upper block entry: rotates by -offset.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = offset / 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), -math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "i_not_2i",
    "other",
    "The frequency uses i / d_model instead of 2i / d_model.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = offset / 10000 ** (i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "float32",
    "dtype",
    "Builds M in float32.",
    """
M = torch.zeros(d_model, d_model)
for i in range(d_model // 2):
    b = offset / 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "sin_cos_swapped_in_block",
    "roles_swapped",
    "Puts sin(b) on the diagonal and cos(b) off it.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = offset / 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.sin(b), math.cos(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.cos(b), math.sin(b)
return M
""",
)
_rot(
    "abs_offset",
    "edge_case",
    "Uses abs(offset), so negative offsets rotate the wrong way.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = abs(offset) / 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "identity_shortcut_float32",
    "dtype",
    "Special-cases offset 0 with torch.eye, which is float32.",
    """
if offset == 0:
    return torch.eye(d_model)
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = offset / 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "concatenated_layout",
    "axis_swap",
    "Builds the blocks on columns (i, i + d/2), the concatenated layout.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
h = d_model // 2
for i in range(h):
    b = offset / 10000 ** (2 * i / d_model)
    M[i, i], M[i, i + h] = math.cos(b), math.sin(b)
    M[i + h, i], M[i + h, i + h] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "exponent_sign",
    "sign_flip",
    "Multiplies the offset by 10000^(2i/d) instead of dividing.",
    """
M = torch.zeros(d_model, d_model, dtype=torch.float64)
for i in range(d_model // 2):
    b = offset * 10000 ** (2 * i / d_model)
    M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = math.cos(b), math.sin(b)
    M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -math.sin(b), math.cos(b)
return M
""",
)
_rot(
    "pe_of_offset_diag",
    "other",
    "Puts PE(offset) itself on the diagonal (a scaling, not a rotation).",
    """
pe = sinusoidal_table(abs(offset) + 1, d_model)[abs(offset)]
return torch.diag(pe)
""",
)

# ---------------------------------------------------------------- ch06 masking
A6 = "ch06_masking"

_pad = _fn(
    "ch06_a",
    A6,
    "check_padding_mask",
    'def padding_mask(tokens, pad_id):\n    """True where the key is a real token, False where it is padding."""',
)
_pad(
    "polarity",
    "mask_flip",
    "True marks the padding instead of the real tokens.",
    """
return (tokens == pad_id)[:, None, None, :]
""",
)
_pad(
    "hardcoded_zero",
    "edge_case",
    "Compares with 0 instead of pad_id.",
    """
return (tokens != 0)[:, None, None, :]
""",
)
_pad(
    "missing_axis",
    "other",
    "Returns (B, 1, S): one broadcast axis short.",
    """
return (tokens != pad_id).unsqueeze(1)
""",
)
_pad(
    "axes_at_end",
    "axis_swap",
    "Adds the two broadcast axes after S: (B, S, 1, 1).",
    """
return (tokens != pad_id)[:, :, None, None]
""",
)
_pad(
    "long_dtype",
    "dtype",
    "Returns 0/1 integers instead of booleans.",
    """
return (tokens != pad_id).long()[:, None, None, :]
""",
)
_pad(
    "greater_than_pad",
    "edge_case",
    "Uses tokens > pad_id, which assumes the pad id is the smallest id.",
    """
return (tokens > pad_id)[:, None, None, :]
""",
)
_pad(
    "query_axis",
    "axis_swap",
    "Puts the mask on the query axis: (B, 1, S, 1).",
    """
return (tokens != pad_id)[:, None, :, None]
""",
)

_cm = _fn(
    "ch06_b",
    A6,
    "check_causal_mask",
    'def causal_mask(T):\n    """Lower-triangular mask: query t may attend to keys 0..t."""',
)
_cm(
    "triu",
    "mask_flip",
    "Upper triangle: query t sees keys t..T-1 (the future).",
    """
return torch.ones(T, T, dtype=torch.bool).triu()
""",
)
_cm(
    "strict_lower",
    "edge_case",
    "tril(diagonal=-1): a query may not attend to itself.",
    """
return torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
""",
)
_cm(
    "float",
    "dtype",
    "Returns a float matrix of 0/1 instead of booleans.",
    """
return torch.tril(torch.ones(T, T))
""",
)
_cm(
    "true_means_hidden",
    "mask_flip",
    "triu(diagonal=1): True marks the future (the 'hide' convention).",
    """
return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
""",
)
_cm(
    "int",
    "dtype",
    "Returns an int matrix.",
    """
return torch.tril(torch.ones(T, T, dtype=torch.int))
""",
)
_cm(
    "arange_comparison_transposed",
    "axis_swap",
    "Compares aranges with rows and columns swapped: mask[t, s] = t <= s.",
    """
idx = torch.arange(T)
return idx[:, None] <= idx[None, :]
""",
)

_dm = _fn(
    "ch06_c",
    A6,
    "check_combined_mask",
    'def decoder_mask(tokens, pad_id):\n    """Padding mask AND causal mask for a decoder\'s self-attention."""',
)
_dm(
    "or_not_and",
    "other",
    "Combines the masks with OR instead of AND.",
    """
return padding_mask(tokens, pad_id) | causal_mask(tokens.shape[1])
""",
)
_dm(
    "padding_on_queries",
    "roles_swapped",
    "Applies the padding mask to the query rows instead of the key columns.",
    """
pad = (tokens != pad_id)[:, None, :, None]
return pad & causal_mask(tokens.shape[1])
""",
)
_dm(
    "hardcoded_zero",
    "edge_case",
    "Uses pad id 0 instead of pad_id.",
    """
return padding_mask(tokens, 0) & causal_mask(tokens.shape[1])
""",
)
_dm(
    "no_head_axis",
    "other",
    "Builds the padding mask as (B, 1, T), giving (B, T, T) without the head axis.",
    """
pad = (tokens != pad_id)[:, None, :]
return pad & causal_mask(tokens.shape[1])
""",
)
_dm(
    "causal_of_batch_size",
    "wrong_axis_reduction",
    "Builds the causal mask with tokens.shape[0] (the batch size).",
    """
return padding_mask(tokens, pad_id) & causal_mask(tokens.shape[0])
""",
)
_dm(
    "padding_polarity",
    "mask_flip",
    "Marks padding as True (tokens == pad_id) before combining.",
    """
return (tokens == pad_id)[:, None, None, :] & causal_mask(tokens.shape[1])
""",
)
_dm(
    "float_product",
    "dtype",
    "Multiplies float masks, returning a float tensor.",
    """
return padding_mask(tokens, pad_id).float() * causal_mask(tokens.shape[1]).float()
""",
)
_dm(
    "only_causal_expanded",
    "step_dropped",
    "Expands the causal mask to (B, 1, T, T) and forgets the padding.",
    """
B, T = tokens.shape
return causal_mask(T).expand(B, 1, T, T)
""",
)

_ma = _fn(
    "ch06_d",
    A6,
    "check_masked_attention",
    'def masked_attention(q, k, v, mask):\n    """softmax(q k^T / sqrt(d_k) with masked scores) v, returning (out, weights)."""',
)
_ma(
    "neg_inf",
    "edge_case",
    "Fills with -inf: NaN on a fully masked row.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(~mask, float("-inf"))
weights = scores.softmax(dim=-1)
return weights @ v, weights
""",
)
_ma(
    "zero_after_softmax",
    "step_reordered",
    "Zeroes masked weights after a softmax over all keys (rows no longer sum to 1).",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_ma(
    "finfo_min_only",
    "edge_case",
    "Fills with finfo.min but does not zero afterwards: a fully masked row is uniform.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
return weights @ v, weights
""",
)
_ma(
    "polarity",
    "mask_flip",
    "Hides the keys where mask is True.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1).masked_fill(mask, 0.0)
return weights @ v, weights
""",
)
_ma(
    "no_scale",
    "step_dropped",
    "Forgets the division by sqrt(d_k).",
    """
scores = q @ k.transpose(-2, -1)
scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_ma(
    "nan_to_num_after_neg_inf",
    "edge_case",
    "Uses -inf then nan_to_num: forward is fine but the gradients are NaN.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(~mask, float("-inf"))
weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
return weights @ v, weights
""",
)
_ma(
    "bool_index_assign",
    "edge_case",
    "scores[~mask] = ... fails for a mask that only broadcasts.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores[~mask] = torch.finfo(scores.dtype).min
weights = scores.softmax(dim=-1)
weights[~mask] = 0.0
return weights @ v, weights
""",
)
_ma(
    "renormalise",
    "edge_case",
    "Multiplies by the mask and renormalises: 0/0 on a fully masked row.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
weights = scores.softmax(dim=-1) * mask
weights = weights / weights.sum(dim=-1, keepdim=True)
return weights @ v, weights
""",
)
_ma(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (weights, out).",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
return weights, weights @ v
""",
)
_ma(
    "dk_from_values",
    "roles_swapped",
    "Reads d_k from v's last axis (Dv) instead of q's.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1])
scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
return weights @ v, weights
""",
)
_ma(
    "out_before_zeroing",
    "step_reordered",
    "Computes out from the weights before zeroing the masked ones, so a fully masked row's output is not 0.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
weights = scores.softmax(dim=-1)
out = weights @ v
weights = weights.masked_fill(~mask, 0.0)
return out, weights
""",
)
_ma(
    "where_minus_1e9_no_zero",
    "edge_case",
    "torch.where(mask, scores, -1e9) and no zeroing: fully masked rows become uniform.",
    """
scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
weights = torch.where(mask, scores, torch.tensor(-1e9, dtype=scores.dtype)).softmax(dim=-1)
return weights @ v, weights
""",
)

# ---------------------------------------------------------------- ch07 transformer
A7 = "ch07_transformer"

_ENC = '''
class EncoderLayer(nn.Module):
    """Post-LN encoder layer: x = norm1(x + dropout1(self_attn(x))); x = norm2(x + dropout2(ffn(x)))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x, mask=None):
{fwd}
'''


def _enc(id_, cat, desc, fwd):
    _add(
        f"ch07_a_{id_}",
        A7,
        "check_encoder_layer",
        cat,
        desc,
        _ENC.format(fwd=textwrap.indent(textwrap.dedent(fwd).strip(), "        ")),
    )


_enc(
    "pre_ln",
    "step_reordered",
    "Normalises before the sublayer (pre-LN) instead of after the residual sum.",
    """
h = self.norm1(x)
x = x + self.dropout1(self.self_attn(h, h, h, mask=mask).out)
x = x + self.dropout2(self.ffn(self.norm2(x)))
return x
""",
)
_enc(
    "no_residual",
    "step_dropped",
    "Drops the residual connections: norm(dropout(sublayer(x))).",
    """
x = self.norm1(self.dropout1(self.self_attn(x, x, x, mask=mask).out))
x = self.norm2(self.dropout2(self.ffn(x)))
return x
""",
)
_enc(
    "mask_not_passed",
    "step_dropped",
    "The padding mask is not passed to the self-attention.",
    """
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x).out))
x = self.norm2(x + self.dropout2(self.ffn(x)))
return x
""",
)
_enc(
    "tuple_not_unpacked",
    "return_type",
    "Uses the (out, weights) pair as if it were the output tensor.",
    """
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask)))
x = self.norm2(x + self.dropout2(self.ffn(x)))
return x
""",
)
_enc(
    "dropout_after_norm",
    "step_reordered",
    "Applies dropout after the LayerNorm instead of on the sublayer output.",
    """
x = self.dropout1(self.norm1(x + self.self_attn(x, x, x, mask=mask).out))
x = self.dropout2(self.norm2(x + self.ffn(x)))
return x
""",
)
_enc(
    "norm1_twice",
    "other",
    "Reuses norm1 for both sublayers (norm2 never used).",
    """
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
x = self.norm1(x + self.dropout2(self.ffn(x)))
return x
""",
)
_enc(
    "ffn_on_input",
    "roles_swapped",
    "The FFN reads the layer's input x instead of the attention sublayer's output.",
    """
y = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
return self.norm2(y + self.dropout2(self.ffn(x)))
""",
)
_enc(
    "no_dropout",
    "step_dropped",
    "Never applies dropout.",
    """
x = self.norm1(x + self.self_attn(x, x, x, mask=mask).out)
x = self.norm2(x + self.ffn(x))
return x
""",
)
_enc(
    "mask_flipped",
    "mask_flip",
    "Inverts the mask (~mask) 'because torch uses True = ignore'.",
    """
m = ~mask if mask is not None else None
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=m).out))
x = self.norm2(x + self.dropout2(self.ffn(x)))
return x
""",
)
_enc(
    "residual_after_norm",
    "step_reordered",
    "Adds the residual after normalising the sublayer output: x + norm(sublayer(x)).",
    """
x = x + self.norm1(self.dropout1(self.self_attn(x, x, x, mask=mask).out))
x = x + self.norm2(self.dropout2(self.ffn(x)))
return x
""",
)

_DEC = '''
class DecoderLayer(nn.Module):
    """Post-LN decoder layer: causal self-attention, cross-attention to memory, FFN, each with Add & Norm."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x, memory, memory_mask=None):
{fwd}
'''


def _dec(id_, cat, desc, fwd):
    _add(
        f"ch07_b_{id_}",
        A7,
        "check_decoder_layer",
        cat,
        desc,
        _DEC.format(fwd=textwrap.indent(textwrap.dedent(fwd).strip(), "        ")),
    )


_DEC_TAIL = """
x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
"""
_dec(
    "no_causal_mask",
    "step_dropped",
    "The self-attention has no causal mask: positions see the future.",
    """
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x).out))"""
    + _DEC_TAIL,
)
_dec(
    "queries_from_memory",
    "roles_swapped",
    "Cross-attention takes its queries from memory and keys/values from the decoder.",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
x = self.norm2(x + self.dropout2(self.cross_attn(memory, x, x).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "masks_swapped",
    "roles_swapped",
    "Passes memory_mask to the self-attention and the causal mask to the cross-attention.",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=memory_mask).out))
x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, mask=causal_mask(T)).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "values_from_decoder",
    "roles_swapped",
    "Cross-attention uses memory for the keys but the decoder state for the values.",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, x, mask=memory_mask).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "triu_mask",
    "mask_flip",
    "Builds the causal mask with triu: positions see the future, not the past.",
    """
T = x.shape[1]
future = torch.ones(T, T, dtype=torch.bool).triu()
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=future).out))"""
    + _DEC_TAIL,
)
_dec(
    "cross_before_self",
    "step_reordered",
    "Runs cross-attention before the masked self-attention.",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, mask=memory_mask).out))
x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, mask=causal_mask(T)).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "causal_of_source_length",
    "wrong_axis_reduction",
    "Builds the causal mask from the source length memory.shape[1].",
    """
S = memory.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(S)).out))"""
    + _DEC_TAIL,
)
_dec(
    "self_attn_for_cross",
    "other",
    "Reuses self_attn for the cross-attention (cross_attn never used).",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
x = self.norm2(x + self.dropout2(self.self_attn(x, memory, memory, mask=memory_mask).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "memory_mask_not_passed",
    "step_dropped",
    "The memory padding mask is not passed to the cross-attention.",
    """
T = x.shape[1]
x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory).out))
x = self.norm3(x + self.dropout3(self.ffn(x)))
return x
""",
)
_dec(
    "pre_ln",
    "step_reordered",
    "Pre-LN order in all three sublayers.",
    """
T = x.shape[1]
h = self.norm1(x)
x = x + self.dropout1(self.self_attn(h, h, h, mask=causal_mask(T)).out)
h = self.norm2(x)
x = x + self.dropout2(self.cross_attn(h, memory, memory, mask=memory_mask).out)
return x + self.dropout3(self.ffn(self.norm3(x)))
""",
)
_dec(
    "cross_on_layer_input",
    "roles_swapped",
    "Cross-attention queries come from the layer input x instead of the self-attention sublayer's output.",
    """
T = x.shape[1]
y = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
y = self.norm2(y + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
return self.norm3(y + self.dropout3(self.ffn(y)))
""",
)

_lr = _fn(
    "ch07_c",
    A7,
    "check_lrate",
    'def lrate(step, d_model, warmup_steps):\n    """The paper\'s learning rate for optimizer step ``step`` (1, 2, ...)."""',
)
_lr(
    "dmodel_positive_power",
    "sign_flip",
    "Uses d_model ** 0.5 instead of d_model ** -0.5.",
    """
return d_model ** 0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)
""",
)
_lr(
    "max_not_min",
    "other",
    "Takes the max of the two branches instead of the min.",
    """
return d_model ** -0.5 * max(step ** -0.5, step * warmup_steps ** -1.5)
""",
)
_lr(
    "zero_based_step",
    "edge_case",
    "Adds 1 to step (treats steps as 0-based), shifting the peak by one.",
    """
step = step + 1
return d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)
""",
)
_lr(
    "warmup_power_half",
    "other",
    "Uses warmup_steps ** -0.5 in the warm-up branch instead of ** -1.5.",
    """
return d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -0.5)
""",
)
_lr(
    "returns_tensor",
    "return_type",
    "Computes with torch and returns a tensor instead of a float.",
    """
step = torch.tensor(step, dtype=torch.float32)
return d_model ** -0.5 * torch.minimum(step.rsqrt(), step * warmup_steps ** -1.5)
""",
)
_lr(
    "divide_by_dmodel",
    "scale_misplaced",
    "Divides by d_model instead of sqrt(d_model).",
    """
return min(step ** -0.5, step * warmup_steps ** -1.5) / d_model
""",
)
_lr(
    "hardcoded_warmup",
    "edge_case",
    "Hard-codes the paper's warmup of 4000 steps.",
    """
return d_model ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
""",
)
_lr(
    "normalised_peak",
    "scale_misplaced",
    "Normalises the warm-up so the peak is d_model ** -0.5 (drops the warmup_steps ** -0.5 factor).",
    """
return d_model ** -0.5 * min(step / warmup_steps, (warmup_steps / step) ** 0.5)
""",
)

_ls = _fn(
    "ch07_d",
    A7,
    "check_label_smoothed_loss",
    'def label_smoothed_loss(logits, target, eps, pad_id):\n    """Cross-entropy against (1 - eps) one_hot(target) + eps / V, averaged over non-pad targets."""',
)
_LS_HEAD = """
log_probs = logits.log_softmax(dim=-1)
nll = -log_probs.gather(-1, target[..., None])[..., 0]
"""
_ls(
    "pad_included",
    "step_dropped",
    "Averages over every position, padding included.",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
return per_token.mean()
""",
)
_ls(
    "eps_over_v_minus_1",
    "other",
    "Spreads eps over the V - 1 wrong classes only.",
    _LS_HEAD
    + """
V = logits.shape[-1]
others = (-log_probs.sum(dim=-1) - nll) / (V - 1)
per_token = (1 - eps) * nll + eps * others
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "pad_class_excluded",
    "other",
    "Leaves the padding class out of the eps / V smoothing (fairseq/T2T style).",
    _LS_HEAD
    + """
V = logits.shape[-1]
keep = torch.ones(V, dtype=torch.bool)
keep[pad_id] = False
uniform = -log_probs[..., keep].sum(dim=-1) / (V - 1)
per_token = (1 - eps) * nll + eps * uniform
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "missing_minus",
    "sign_flip",
    "Forgets the minus sign of the log-likelihood: the loss is negative.",
    """
log_probs = logits.log_softmax(dim=-1)
ll = log_probs.gather(-1, target[..., None])[..., 0]
per_token = (1 - eps) * ll + eps * log_probs.mean(dim=-1)
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "builtin_without_ignore_index",
    "step_dropped",
    "Uses F.cross_entropy(label_smoothing=eps) but forgets ignore_index=pad_id.",
    """
V = logits.shape[-1]
return torch.nn.functional.cross_entropy(logits.reshape(-1, V), target.reshape(-1), label_smoothing=eps)
""",
)
_ls(
    "denominator_all_tokens",
    "wrong_axis_reduction",
    "Zeroes the padding but divides by all B*T positions.",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
real = target != pad_id
return (per_token * real).sum() / target.numel()
""",
)
_ls(
    "uniform_sum_not_mean",
    "scale_misplaced",
    "The eps term sums -log p over classes instead of averaging (eps instead of eps / V per class).",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll + eps * (-log_probs.sum(dim=-1))
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "hardcoded_pad_zero",
    "edge_case",
    "Masks target != 0 instead of target != pad_id.",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
real = target != 0
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "log_softmax_over_time",
    "axis_swap",
    "log_softmax over dim=1 (time) instead of the vocabulary.",
    """
log_probs = logits.log_softmax(dim=1)
nll = -log_probs.gather(-1, target[..., None])[..., 0]
per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "returns_per_token",
    "return_type",
    "Returns the per-token losses of the real tokens instead of their mean.",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
return per_token[target != pad_id]
""",
)
_ls(
    "eps_not_divided",
    "scale_misplaced",
    "Builds q = (1 - eps) one_hot + eps (no / V): the smoothed target sums to 1 + (V-1) eps.",
    """
V = logits.shape[-1]
q = (1 - eps) * torch.nn.functional.one_hot(target, V).float() + eps
per_token = -(q * logits.log_softmax(dim=-1)).sum(dim=-1)
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)
_ls(
    "no_uniform_term",
    "step_dropped",
    "Scales the NLL by (1 - eps) but forgets the eps / V term.",
    _LS_HEAD
    + """
per_token = (1 - eps) * nll
real = target != pad_id
return (per_token * real).sum() / real.sum()
""",
)

_gd = _fn(
    "ch07_e",
    A7,
    "check_greedy_decode",
    '@torch.no_grad()\ndef greedy_decode(model, src, bos_id, eos_id, max_len):\n    """Most-probable-next-token decoding."""',
)


def _gd_loop(
    start="torch.full((B, 1), bos_id, dtype=torch.long)",
    pick="model.decode(tokens, memory, src).out[:, -1]",
    argmax="model.out_proj(hidden).argmax(dim=-1)",
    fill="next_id = next_id.masked_fill(done, model.config.pad_id)",
    stop="if done.all():\n        break",
    steps="range(max_len)",
    ret="tokens",
    update="done |= next_id == eos_id",
):
    return f"""
memory = model.encode(src).out
B = src.shape[0]
tokens = {start}
done = torch.zeros(B, dtype=torch.bool)
for _ in {steps}:
    hidden = {pick}
    next_id = {argmax}
    {fill}
    tokens = torch.cat([tokens, next_id[:, None]], dim=1)
    {update}
    {stop}
return {ret}
"""


_gd(
    "start_from_src",
    "roles_swapped",
    "Starts the output from the first source token instead of bos_id.",
    _gd_loop(start="src[:, :1].clone()"),
)
_gd(
    "first_position",
    "axis_swap",
    "Takes the scores of the first position [:, 0] instead of the last.",
    _gd_loop(pick="model.decode(tokens, memory, src).out[:, 0]"),
)
_gd(
    "no_pad_after_eos",
    "step_dropped",
    "Keeps generating after eos instead of filling with pad_id.",
    _gd_loop(fill="pass"),
)
_gd(
    "stop_on_any",
    "other",
    "Stops as soon as any row has produced eos.",
    _gd_loop(stop="if done.any():\n        break"),
)
_gd(
    "bos_dropped",
    "edge_case",
    "Returns the generated tokens without the bos column.",
    _gd_loop(ret="tokens[:, 1:]"),
)
_gd(
    "eos_replaced_by_pad",
    "step_reordered",
    "Updates `done` before filling, so the eos token itself becomes pad.",
    """
memory = model.encode(src).out
B = src.shape[0]
tokens = torch.full((B, 1), bos_id, dtype=torch.long)
done = torch.zeros(B, dtype=torch.bool)
for _ in range(max_len):
    next_id = model.out_proj(model.decode(tokens, memory, src).out[:, -1]).argmax(dim=-1)
    done |= next_id == eos_id
    next_id = next_id.masked_fill(done, model.config.pad_id)
    tokens = torch.cat([tokens, next_id[:, None]], dim=1)
    if done.all():
        break
return tokens
""",
)
_gd(
    "argmax_over_batch",
    "axis_swap",
    "argmax over dim=0 (the batch) instead of the vocabulary.",
    _gd_loop(argmax="model.out_proj(hidden).argmax(dim=0)[:B]"),
)
_gd(
    "one_step_short",
    "edge_case",
    "Loops range(max_len - 1): one token short.",
    _gd_loop(steps="range(max_len - 1)"),
)
_gd(
    "pad_hardcoded_zero",
    "edge_case",
    "Fills finished rows with 0 instead of model.config.pad_id.",
    _gd_loop(fill="next_id = next_id.masked_fill(done, 0)"),
)
_gd(
    "no_early_stop",
    "step_dropped",
    "Never stops early: always returns max_len generated tokens.",
    _gd_loop(stop="pass"),
)
_gd(
    "eos_as_start",
    "roles_swapped",
    "Starts from eos_id instead of bos_id.",
    _gd_loop(start="torch.full((B, 1), eos_id, dtype=torch.long)"),
)
_gd(
    "int32_tokens",
    "dtype",
    "Builds the token tensor as int32 (torch.int) instead of long.",
    _gd_loop(
        start="torch.full((B, 1), bos_id, dtype=torch.int)",
        argmax="model.out_proj(hidden).argmax(dim=-1).int()",
    ),
)

# ---------------------------------------------------------------- ch08 BERT
A8 = "ch08_bert"

_EMB = '''
class BertEmbeddings(nn.Module):
    """x = dropout(LayerNorm(word[input_ids] + segment[segment_ids] + position[0..T-1]))."""

    def __init__(self, vocab_size: int, d_model: int, max_len: int = 512, n_segments: int = 2, dropout: float = 0.1):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.segment_embeddings = nn.Embedding(n_segments, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, segment_ids=None):
{fwd}
'''


def _emb(id_, cat, desc, fwd):
    _add(
        f"ch08_a_{id_}",
        A8,
        "check_bert_embeddings",
        cat,
        desc,
        _EMB.format(fwd=textwrap.indent(textwrap.dedent(fwd).strip(), "        ")),
    )


_EMB_SEG = """
B, T = input_ids.shape
if segment_ids is None:
    segment_ids = torch.zeros_like(input_ids)
positions = torch.arange(T, device=input_ids.device)
"""
_emb(
    "no_layernorm",
    "step_dropped",
    "Forgets the LayerNorm.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.dropout(x)
""",
)
_emb(
    "segment_none_crash",
    "edge_case",
    "Does not handle segment_ids=None.",
    """
positions = torch.arange(input_ids.shape[1], device=input_ids.device)
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.dropout(self.norm(x))
""",
)
_emb(
    "positions_from_1",
    "edge_case",
    "Positions start at 1 instead of 0.",
    _EMB_SEG.replace("torch.arange(T,", "torch.arange(1, T + 1,")
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.dropout(self.norm(x))
""",
)
_emb(
    "dropout_before_norm",
    "step_reordered",
    "Applies dropout before the LayerNorm.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.norm(self.dropout(x))
""",
)
_emb(
    "positions_from_ids",
    "roles_swapped",
    "Looks the position table up with the token ids instead of 0..T-1.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(input_ids)
return self.dropout(self.norm(x))
""",
)
_emb(
    "norm_each_then_sum",
    "step_reordered",
    "Normalises each embedding separately and then sums them.",
    _EMB_SEG
    + """
x = self.norm(self.word_embeddings(input_ids)) + self.norm(self.segment_embeddings(segment_ids)) + self.norm(self.position_embeddings(positions))
return self.dropout(x)
""",
)
_emb(
    "arange_of_batch",
    "wrong_axis_reduction",
    "Builds positions from the batch size B instead of the length T.",
    _EMB_SEG.replace("torch.arange(T,", "torch.arange(B,")
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)[:, None, :]
return self.dropout(self.norm(x))
""",
)
_emb(
    "no_dropout",
    "step_dropped",
    "Never applies dropout.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.norm(x)
""",
)
_emb(
    "segment_default_ones",
    "edge_case",
    "Defaults the segment ids to ones instead of zeros.",
    """
if segment_ids is None:
    segment_ids = torch.ones_like(input_ids)
positions = torch.arange(input_ids.shape[1], device=input_ids.device)
x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.dropout(self.norm(x))
""",
)
_emb(
    "segment_ignored",
    "step_dropped",
    "Forgets the segment embeddings.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
return self.dropout(self.norm(x))
""",
)
_emb(
    "word_scaled_sqrt_d",
    "scale_misplaced",
    "Multiplies the word embeddings by sqrt(d_model), the Transformer's habit, which BERT does not do.",
    _EMB_SEG
    + """
x = self.word_embeddings(input_ids) * self.word_embeddings.embedding_dim ** 0.5 + self.segment_embeddings(segment_ids) + self.position_embeddings(positions)
return self.dropout(self.norm(x))
""",
)

_mt = _fn(
    "ch08_b",
    A8,
    "check_mask_tokens",
    'def mask_tokens(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None):\n    """BERT\'s 15% / 80-10-10 masking."""',
)
_MT_TAIL = """
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return inputs, labels
"""
_mt(
    "specials_not_excluded",
    "step_dropped",
    "Chooses special tokens too (special_mask ignored).",
    """
chosen = torch.rand(input_ids.shape, generator=generator) < p
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))"""
    + _MT_TAIL,
)
_mt(
    "labels_flipped",
    "mask_flip",
    "Keeps the original tokens in labels where NOT chosen and -100 where chosen.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, torch.full_like(input_ids, -100), input_ids)"""
    + _MT_TAIL,
)
_mt(
    "labels_zero",
    "other",
    "Uses 0 instead of -100 for the positions that are not chosen.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.zeros_like(input_ids))"""
    + _MT_TAIL,
)
_mt(
    "random_overrides_mask",
    "step_reordered",
    "Applies the random replacement for u < 0.9 after the [MASK] step, so random wins on 90%.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u < 0.9), random_ids, inputs)
return inputs, labels
""",
)
_mt(
    "in_place",
    "other",
    "Modifies input_ids in place (inputs = input_ids, then item assignment).",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = input_ids
inputs[chosen & (u < 0.8)] = mask_id
sel = chosen & (u >= 0.8) & (u < 0.9)
inputs[sel] = random_ids[sel]
return inputs, labels
""",
)
_mt(
    "generator_ignored",
    "other",
    "Draws from the global RNG, ignoring generator.",
    """
chosen = (torch.rand(input_ids.shape) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape)
random_ids = torch.randint(vocab_size, input_ids.shape)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return inputs, labels
""",
)
_mt(
    "random_skips_specials",
    "edge_case",
    "Draws random ids from range(5, vocab_size), skipping the special ids, instead of range(vocab_size).",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(5, vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return inputs, labels
""",
)
_mt(
    "greater_than_p",
    "sign_flip",
    "Chooses tokens with rand > p: 85% instead of 15%.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) > p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))"""
    + _MT_TAIL,
)
_mt(
    "labels_only_masked",
    "other",
    "Sets labels only at the [MASK] positions (80%), not at every chosen one.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
masked = chosen & (u < 0.8)
inputs = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
return inputs, labels
""",
)
_mt(
    "exact_count_per_row",
    "other",
    "Chooses exactly round(p * T) tokens per row (like a fixed budget) instead of each with probability p.",
    """
B, T = input_ids.shape
scores = torch.rand(input_ids.shape, generator=generator).masked_fill(special_mask, 2.0)
n = max(1, round(p * T))
chosen = torch.zeros_like(special_mask)
chosen.scatter_(1, scores.argsort(dim=1)[:, :n], True)
chosen &= ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))"""
    + _MT_TAIL,
)
_mt(
    "p_hardcoded",
    "edge_case",
    "Hard-codes 0.15 instead of using p.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))"""
    + _MT_TAIL,
)
_mt(
    "mask_id_hardcoded",
    "edge_case",
    "Hard-codes [MASK] = 4 instead of using mask_id.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, 4), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return inputs, labels
""",
)
_mt(
    "thresholds_10_10_80",
    "other",
    "Reads the split as 10% [MASK], 10% random, 80% unchanged.",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.1), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.1) & (u < 0.2), random_ids, inputs)
return inputs, labels
""",
)
_mt(
    "tuple_swapped",
    "tuple_permuted",
    "Returns (labels, inputs).",
    """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return labels, inputs
""",
)

_MLM = '''
class MaskedLMHead(nn.Module):
    """logits = LayerNorm(GELU(dense(hidden))) @ word_embeddings.weight.T + bias."""

    def __init__(self, d_model: int, word_embeddings: nn.Embedding, layer_norm_eps: float = 1e-12):
        super().__init__()
{init}

    def forward(self, hidden):
{fwd}
'''
_MLM_INIT = """
vocab_size = word_embeddings.weight.shape[0]
self.dense = nn.Linear(d_model, d_model)
self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
self.decoder = nn.Linear(d_model, vocab_size, bias=False)
self.decoder.weight = word_embeddings.weight
self.bias = nn.Parameter(torch.zeros(vocab_size))
"""
_MLM_FWD = """
h = self.norm(F.gelu(self.dense(hidden)))
return self.decoder(h) + self.bias
"""


def _mlm(id_, cat, desc, fwd=_MLM_FWD, init=_MLM_INIT):
    ind = lambda s: textwrap.indent(textwrap.dedent(s).strip(), "        ")
    _add(
        f"ch08_c_{id_}",
        A8,
        "check_mlm_head",
        cat,
        desc,
        _MLM.format(init=ind(init), fwd=ind(fwd)),
    )


_mlm(
    "copied_not_tied",
    "other",
    "Copies the embedding matrix into a new Parameter instead of sharing it.",
    init=_MLM_INIT.replace(
        "self.decoder.weight = word_embeddings.weight",
        "self.decoder.weight = nn.Parameter(word_embeddings.weight.detach().clone())",
    ),
)
_mlm(
    "gelu_tanh",
    "other",
    "Uses the tanh approximation of GELU.",
    fwd="""
h = self.norm(F.gelu(self.dense(hidden), approximate="tanh"))
return self.decoder(h) + self.bias
""",
)
_mlm(
    "relu",
    "other",
    "Uses ReLU instead of GELU.",
    fwd="""
h = self.norm(F.relu(self.dense(hidden)))
return self.decoder(h) + self.bias
""",
)
_mlm(
    "norm_before_gelu",
    "step_reordered",
    "Applies the LayerNorm before the GELU.",
    fwd="""
h = F.gelu(self.norm(self.dense(hidden)))
return self.decoder(h) + self.bias
""",
)
_mlm(
    "bias_inside_linear",
    "other",
    "Gives the decoder nn.Linear its own bias instead of a separate `bias` parameter.",
    init="""
vocab_size = word_embeddings.weight.shape[0]
self.dense = nn.Linear(d_model, d_model)
self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
self.decoder = nn.Linear(d_model, vocab_size)
self.decoder.weight = word_embeddings.weight
""",
    fwd="""
return self.decoder(self.norm(F.gelu(self.dense(hidden))))
""",
)
_mlm(
    "default_eps",
    "other",
    "Ignores layer_norm_eps (LayerNorm's default 1e-5).",
    init=_MLM_INIT.replace(
        "nn.LayerNorm(d_model, eps=layer_norm_eps)", "nn.LayerNorm(d_model)"
    ),
)
_mlm(
    "matmul_without_transpose",
    "axis_swap",
    "Multiplies by the embedding matrix without transposing it.",
    init="""
self.word_embeddings = word_embeddings
self.dense = nn.Linear(d_model, d_model)
self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
self.bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))
""",
    fwd="""
h = self.norm(F.gelu(self.dense(hidden)))
return h @ self.word_embeddings.weight + self.bias
""",
)
_mlm(
    "bias_random_init",
    "other",
    "Initialises the output bias randomly instead of at zero.",
    init=_MLM_INIT.replace("torch.zeros(vocab_size)", "torch.randn(vocab_size)"),
)
_mlm(
    "tied_by_data",
    "other",
    "Ties through .data (shares storage, but not the same Parameter object).",
    init=_MLM_INIT.replace(
        "self.decoder.weight = word_embeddings.weight",
        "self.decoder.weight.data = word_embeddings.weight.data",
    ),
)
_mlm(
    "no_dense",
    "step_dropped",
    "Skips the dense transform.",
    fwd="""
h = self.norm(F.gelu(hidden))
return self.decoder(h) + self.bias
""",
)
_mlm(
    "bias_plain_tensor",
    "other",
    "Stores the bias as a plain tensor, not an nn.Parameter (it is not trained).",
    init=_MLM_INIT.replace(
        "self.bias = nn.Parameter(torch.zeros(vocab_size))",
        "self.bias = torch.zeros(vocab_size)",
    ),
)

_km = _fn(
    "ch08_d",
    A8,
    "check_hf_key_map",
    'def hf_key_map(n_layers):\n    """{course_lib BertForMaskedLM key: transformers BertForMaskedLM key}, for every parameter."""',
)

_KM_TOP = {
    "bert.embeddings.word_embeddings.weight": "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.position_embeddings.weight": "bert.embeddings.position_embeddings.weight",
    "bert.embeddings.segment_embeddings.weight": "bert.embeddings.token_type_embeddings.weight",
    "bert.embeddings.norm.weight": "bert.embeddings.LayerNorm.weight",
    "bert.embeddings.norm.bias": "bert.embeddings.LayerNorm.bias",
    "mlm.dense.weight": "cls.predictions.transform.dense.weight",
    "mlm.dense.bias": "cls.predictions.transform.dense.bias",
    "mlm.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "mlm.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "mlm.decoder.weight": "cls.predictions.decoder.weight",
    "mlm.bias": "cls.predictions.bias",
}
_KM_LAYER = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm",
    "ffn.linear1": "intermediate.dense",
    "ffn.linear2": "output.dense",
    "norm2": "output.LayerNorm",
}


def _km_src(
    top=None,
    layer=None,
    loop="range(n_layers)",
    kinds='("weight", "bias")',
    entry='keys[f"bert.encoder.layers.{i}.{ours}.{kind}"] = f"bert.encoder.layer.{i}.{hf}.{kind}"',
    ret="keys",
):
    top = _KM_TOP if top is None else top
    layer = _KM_LAYER if layer is None else layer
    top_s = "".join(f"    {k!r}: {v!r},\n" for k, v in top.items())
    layer_s = "".join(f"    {k!r}: {v!r},\n" for k, v in layer.items())
    return (
        f"keys = {{\n{top_s}}}\nlayer = {{\n{layer_s}}}\n"
        f"for i in {loop}:\n    for ours, hf in layer.items():\n        for kind in {kinds}:\n            {entry}\nreturn {ret}\n"
    )


def _without(d, *drop):
    return {k: v for k, v in d.items() if k not in drop}


_km(
    "segment_name_kept",
    "other",
    "Maps the segment embeddings to 'segment_embeddings' on the HF side too (not token_type_embeddings).",
    _km_src(
        top={
            **_KM_TOP,
            "bert.embeddings.segment_embeddings.weight": "bert.embeddings.segment_embeddings.weight",
        }
    ),
)
_km(
    "one_layer_hardcoded",
    "edge_case",
    "Writes the entries of layer 0 only (fits the printed 1-layer model).",
    _km_src(loop="range(1)"),
)
_km(
    "norms_swapped",
    "roles_swapped",
    "Maps norm1 to output.LayerNorm and norm2 to attention.output.LayerNorm.",
    _km_src(
        layer={
            **_KM_LAYER,
            "norm1": "output.LayerNorm",
            "norm2": "attention.output.LayerNorm",
        }
    ),
)
_km(
    "ffn_swapped",
    "roles_swapped",
    "Maps linear1 to output.dense and linear2 to intermediate.dense.",
    _km_src(
        layer={
            **_KM_LAYER,
            "ffn.linear1": "output.dense",
            "ffn.linear2": "intermediate.dense",
        }
    ),
)
_km(
    "weights_only",
    "step_dropped",
    "Maps only the .weight entries of each layer, forgetting the biases.",
    _km_src(kinds='("weight",)'),
)
_km(
    "decoder_missing",
    "step_dropped",
    "Leaves out mlm.decoder.weight because it is tied.",
    _km_src(top=_without(_KM_TOP, "mlm.decoder.weight")),
)
_km(
    "hf_layers_plural",
    "other",
    "Writes 'bert.encoder.layers.{i}' on the HF side too (HF says 'layer').",
    _km_src(
        entry='keys[f"bert.encoder.layers.{i}.{ours}.{kind}"] = f"bert.encoder.layers.{i}.{hf}.{kind}"'
    ),
)
_km(
    "reversed",
    "roles_swapped",
    "Returns the map the other way round: {transformers key: course_lib key}.",
    _km_src(ret="{v: k for k, v in keys.items()}"),
)
_km(
    "layer_index_from_1",
    "edge_case",
    "Numbers the HF layers from 1.",
    _km_src(
        entry='keys[f"bert.encoder.layers.{i}.{ours}.{kind}"] = f"bert.encoder.layer.{i + 1}.{hf}.{kind}"'
    ),
)
_km(
    "query_key_swapped",
    "roles_swapped",
    "Maps q_proj to attention.self.key and k_proj to attention.self.query.",
    _km_src(
        layer={
            **_KM_LAYER,
            "self_attn.q_proj": "attention.self.key",
            "self_attn.k_proj": "attention.self.query",
        }
    ),
)
_km(
    "out_proj_to_self_dense",
    "other",
    "Maps the attention output projection to a non-existent attention.self.dense.",
    _km_src(layer={**_KM_LAYER, "self_attn.out_proj": "attention.self.dense"}),
)
_km(
    "mlm_bias_to_decoder_bias",
    "other",
    "Maps mlm.bias to cls.predictions.decoder.bias.",
    _km_src(top={**_KM_TOP, "mlm.bias": "cls.predictions.decoder.bias"}),
)

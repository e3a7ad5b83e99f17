"""Blind mistake set 2 (issue 26, item 2): plausible learner mistakes written from the exercises'
instructions alone (exercise notebooks, concept modules, solution answer cells), without reading
the checks, their tests, the planted-mistake lists or set 1.  Run with

    slot .venv/bin/python -m tests.blind_mistakes.measure set2

Each entry replaces one answer cell; ``part`` is the check function its visible test cell calls.
"""

from __future__ import annotations

import textwrap

MISTAKES: list[dict] = []

CH01, CH02, CH03, CH04 = "ch01_seq2seq", "ch02_qkv", "ch03_scaled_dot_product", "ch04_multi_head"
CH05, CH06, CH07, CH08 = "ch05_positional_encoding", "ch06_masking", "ch07_transformer", "ch08_bert"


def M(id_: str, assignment: str, part: str, category: str, description: str, source: str) -> None:
    MISTAKES.append(
        {
            "id": id_,
            "assignment": assignment,
            "part": part,
            "category": category,
            "description": description,
            "source": textwrap.dedent(source).strip("\n") + "\n",
        }
    )


# =============================================================================== ch01 (a)
A = "check_attention_context"


def ctx(body: str) -> str:
    return "def attention_context(h, hs):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch01a_softmax_batch_axis", CH01, A, "wrong_axis_reduction",
  "softmax over dim=0 (the batch) instead of the source positions",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      weights = torch.softmax(scores, dim=0)
      context = (hs * weights[:, :, None]).sum(dim=1)
      return context, weights
  """))
M("s2_ch01a_tuple_order", CH01, A, "tuple_permuted",
  "returns (weights, context) instead of (context, weights)",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      weights = scores.softmax(dim=-1)
      context = (hs * weights[:, :, None]).sum(dim=1)
      return weights, context
  """))
M("s2_ch01a_sqrt_scale", CH01, A, "scale_misplaced",
  "divides the scores by sqrt(C) although part (a) says no scaling",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1) / hs.shape[-1] ** 0.5
      weights = scores.softmax(dim=-1)
      context = (hs * weights[:, :, None]).sum(dim=1)
      return context, weights
  """))
M("s2_ch01a_mean_context", CH01, A, "other",
  "averages the weighted encoder states (mean over S) instead of summing them",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      weights = scores.softmax(dim=-1)
      context = (hs * weights[:, :, None]).mean(dim=1)
      return context, weights
  """))
M("s2_ch01a_global_softmax", CH01, A, "wrong_axis_reduction",
  "hand-written softmax divides by the sum of exp over the whole batch",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      e = torch.exp(scores - scores.max())
      weights = e / e.sum()
      context = (hs * weights[:, :, None]).sum(dim=1)
      return context, weights
  """))
M("s2_ch01a_unstable_softmax", CH01, A, "edge_case",
  "hand-written softmax without subtracting the max: overflows to NaN for large states",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      e = torch.exp(scores)
      weights = e / e.sum(dim=-1, keepdim=True)
      context = (hs * weights[:, :, None]).sum(dim=1)
      return context, weights
  """))
M("s2_ch01a_context_from_scores", CH01, A, "step_dropped",
  "weights the encoder states by the raw scores (softmax result not used for the context)",
  ctx("""
      scores = (hs * h[:, None, :]).sum(dim=-1)
      weights = scores.softmax(dim=-1)
      context = (hs * scores[:, :, None]).sum(dim=1)
      return context, weights
  """))

# =============================================================================== ch01 (b)
A = "check_attention_context_matmul"


def ctxm(body: str) -> str:
    return "def attention_context_matmul(h, hs, mask=None):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch01b_mask_polarity", CH01, A, "mask_flip",
  "fills the scores where mask is True (the real characters) with -inf",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
      if mask is not None:
          scores = scores.masked_fill(mask, float("-inf"))
      weights = scores.softmax(dim=-1)
      context = (weights.unsqueeze(1) @ hs).squeeze(1)
      return context, weights
  """))
M("s2_ch01b_mask_after_softmax", CH01, A, "step_reordered",
  "multiplies the weights by the mask after the softmax (no renormalisation)",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights * mask
      context = (weights.unsqueeze(1) @ hs).squeeze(1)
      return context, weights
  """))
M("s2_ch01b_fill_zero", CH01, A, "other",
  "fills the padded scores with 0 instead of -inf",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
      if mask is not None:
          scores = scores.masked_fill(~mask, 0.0)
      weights = scores.softmax(dim=-1)
      context = (weights.unsqueeze(1) @ hs).squeeze(1)
      return context, weights
  """))
M("s2_ch01b_bare_squeeze", CH01, A, "edge_case",
  "uses .squeeze() without a dim, which also drops a batch of size 1",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze()
      if mask is not None:
          scores = scores.masked_fill(~mask.squeeze(), float("-inf"))
      weights = scores.softmax(dim=-1)
      context = (weights.unsqueeze(-2) @ hs).squeeze()
      return context, weights
  """))
M("s2_ch01b_context_unmasked", CH01, A, "step_reordered",
  "computes the context from the unmasked softmax and only masks the returned weights",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
      weights = scores.softmax(dim=-1)
      context = (weights.unsqueeze(1) @ hs).squeeze(1)
      if mask is not None:
          weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
      return context, weights
  """))
M("s2_ch01b_mask_always", CH01, A, "edge_case",
  "applies the mask unconditionally, so mask=None crashes",
  ctxm("""
      scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)
      scores = scores.masked_fill(~mask, float("-inf"))
      weights = scores.softmax(dim=-1)
      context = (weights.unsqueeze(1) @ hs).squeeze(1)
      return context, weights
  """))
M("s2_ch01b_softmax_dim1_of_3d", CH01, A, "wrong_axis_reduction",
  "takes the softmax of the (B, 1, S) scores over dim=1 (the length-1 axis) before squeezing",
  ctxm("""
      scores = h.unsqueeze(1) @ hs.transpose(1, 2)
      if mask is not None:
          scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
      weights = scores.softmax(dim=1)
      context = (weights @ hs).squeeze(1)
      return context, weights.squeeze(1)
  """))

# =============================================================================== ch01 (c)
A = "check_additive_score"
ADD_INIT = """
class AdditiveScore(nn.Module):
    def __init__(self, d_q, d_k, d_hidden):
        super().__init__()
        self.W1 = nn.Linear(d_q, d_hidden, bias=False)
        self.W2 = nn.Linear(d_k, d_hidden, bias=False)
        self.v = nn.Linear(d_hidden, 1, bias=False)

    def forward(self, q, k):
"""


def add(body: str, init: str = ADD_INIT) -> str:
    return textwrap.dedent(init).strip("\n") + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ") + "\n"


M("s2_ch01c_no_tanh", CH01, A, "step_dropped",
  "forgets the tanh: v(W1 q + W2 k)",
  add("""
      return self.v(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3)).squeeze(-1)
  """))
M("s2_ch01c_tanh_after_v", CH01, A, "step_reordered",
  "applies tanh after v instead of before",
  add("""
      return torch.tanh(self.v(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))).squeeze(-1)
  """))
M("s2_ch01c_W1_on_keys", CH01, A, "roles_swapped",
  "applies W1 to the keys and W2 to the queries",
  add("""
      return self.v(torch.tanh(self.W2(q).unsqueeze(-2) + self.W1(k).unsqueeze(-3))).squeeze(-1)
  """))
M("s2_ch01c_broadcast_swapped", CH01, A, "axis_swap",
  "gives the queries the key axis in the wrong place, so the scores come out (B, S, T)",
  add("""
      hidden = torch.tanh(self.W1(q).unsqueeze(1) + self.W2(k).unsqueeze(2))
      return self.v(hidden).squeeze(-1)
  """))
M("s2_ch01c_bias_left_on", CH01, A, "other",
  "keeps nn.Linear's default biases on W1, W2 and v",
  add("""
      return self.v(torch.tanh(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))).squeeze(-1)
  """, init="""
class AdditiveScore(nn.Module):
    def __init__(self, d_q, d_k, d_hidden):
        super().__init__()
        self.W1 = nn.Linear(d_q, d_hidden)
        self.W2 = nn.Linear(d_k, d_hidden)
        self.v = nn.Linear(d_hidden, 1)

    def forward(self, q, k):
"""))
M("s2_ch01c_returns_softmax", CH01, A, "other",
  "returns the softmax of the scores over the keys instead of the raw scores",
  add("""
      scores = self.v(torch.tanh(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))).squeeze(-1)
      return scores.softmax(dim=-1)
  """))
M("s2_ch01c_relu", CH01, A, "other",
  "uses relu instead of tanh as the hidden nonlinearity",
  add("""
      return self.v(torch.relu(self.W1(q).unsqueeze(-2) + self.W2(k).unsqueeze(-3))).squeeze(-1)
  """))

# =============================================================================== ch01 (d)
A = "check_attention_decoder_step"


def dstep(body: str) -> str:
    return "def attention_decoder_step(y_prev, h_prev, hs, mask, layers):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch01d_attend_with_old_state", CH01, A, "step_reordered",
  "attends with the previous state h_prev instead of the new state (Bahdanau order)",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h_prev, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h_tilde), h, weights
  """))
M("s2_ch01d_concat_order", CH01, A, "roles_swapped",
  "concatenates [h_t; c_t] instead of [c_t; h_t]",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([h, context], dim=-1)))
      return layers.out(h_tilde), h, weights
  """))
M("s2_ch01d_no_tanh", CH01, A, "step_dropped",
  "forgets the tanh around W_c [c; h]",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = layers.combine(torch.cat([context, h], dim=-1))
      return layers.out(h_tilde), h, weights
  """))
M("s2_ch01d_returns_h_tilde", CH01, A, "other",
  "returns the attentional state h_tilde as the new recurrent state",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h_tilde), h_tilde, weights
  """))
M("s2_ch01d_tuple_order", CH01, A, "tuple_permuted",
  "returns (logits, weights, h) instead of (logits, h, weights)",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h_tilde), weights, h
  """))
M("s2_ch01d_mask_ignored", CH01, A, "step_dropped",
  "calls the attention without the padding mask",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h_tilde), h, weights
  """))
M("s2_ch01d_softmax_logits", CH01, A, "other",
  "returns the softmax probabilities instead of the logits",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h_tilde).softmax(dim=-1), h, weights
  """))
M("s2_ch01d_logits_from_h", CH01, A, "step_dropped",
  "computes h_tilde but feeds the plain new state h to the output layer",
  dstep("""
      x = layers.embed(y_prev)
      h = layers.cell(x, h_prev)
      context, weights = attention_context_matmul(h, hs, mask)
      h_tilde = torch.tanh(layers.combine(torch.cat([context, h], dim=-1)))
      return layers.out(h), h, weights
  """))

# =============================================================================== ch02 (a)
A = "check_qkv_projections"


def fn(sig: str, body: str) -> str:
    return sig + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


QKV = "def qkv_projections(x, W_q, W_k, W_v):"
M("s2_ch02a_returns_qvk", CH02, A, "tuple_permuted",
  "returns (q, v, k) instead of (q, k, v)",
  fn(QKV, """
      return x @ W_q, x @ W_v, x @ W_k
  """))
M("s2_ch02a_copy_paste_Wk", CH02, A, "roles_swapped",
  "copy-paste slip: the queries are computed with W_k",
  fn(QKV, """
      q = x @ W_k
      k = x @ W_k
      v = x @ W_v
      return q, k, v
  """))
M("s2_ch02a_values_with_Wk", CH02, A, "roles_swapped",
  "the values are computed with W_k instead of W_v",
  fn(QKV, """
      q = x @ W_q
      k = x @ W_k
      v = x @ W_k
      return q, k, v
  """))
M("s2_ch02a_mm_2d_only", CH02, A, "edge_case",
  "uses torch.mm, which only works for a 2-D x",
  fn(QKV, """
      return torch.mm(x, W_q), torch.mm(x, W_k), torch.mm(x, W_v)
  """))
M("s2_ch02a_einsum_3d_only", CH02, A, "edge_case",
  "hard-codes a batch axis in the einsum ('btc,cd->btd')",
  fn(QKV, """
      q = torch.einsum("btc,cd->btd", x, W_q)
      k = torch.einsum("btc,cd->btd", x, W_k)
      v = torch.einsum("btc,cd->btd", x, W_v)
      return q, k, v
  """))
M("s2_ch02a_weight_transposed", CH02, A, "axis_swap",
  "uses nn.Linear's habit x @ W.T with the (C, D) matrices",
  fn(QKV, """
      return x @ W_q.T, x @ W_k.T, x @ W_v.T
  """))

# =============================================================================== ch02 (b)
A = "check_self_attention"
SA = "def self_attention(x, W_q, W_k, W_v):"
M("s2_ch02b_softmax_over_queries", CH02, A, "wrong_axis_reduction",
  "softmax over dim=-2 (the queries) instead of the keys",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-2)
      return weights @ v, weights
  """))
M("s2_ch02b_scaled_early", CH02, A, "scale_misplaced",
  "divides the scores by sqrt(d_k) although this chapter uses the plain dot product",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch02b_transpose_1_2", CH02, A, "edge_case",
  "hard-codes k.transpose(1, 2), which fails for an unbatched (T, C) input",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(1, 2)).softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch02b_values_are_x", CH02, A, "step_dropped",
  "sums the raw inputs x instead of the projected values",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights @ x, weights
  """))
M("s2_ch02b_tuple_order", CH02, A, "tuple_permuted",
  "returns (weights, out)",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights, weights @ v
  """))
M("s2_ch02b_weights_transposed_in_sum", CH02, A, "axis_swap",
  "takes the weighted sum with the transposed weight matrix",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights.transpose(-2, -1) @ v, weights
  """))
M("s2_ch02b_q_against_q", CH02, A, "roles_swapped",
  "compares the queries with the queries (q @ q^T) instead of the keys",
  fn(SA, """
      q, k, v = qkv_projections(x, W_q, W_k, W_v)
      weights = (q @ q.transpose(-2, -1)).softmax(dim=-1)
      return weights @ v, weights
  """))

# =============================================================================== ch02 (c)
A = "check_cosine_scores"
CS = "def cosine_scores(q, k):"
M("s2_ch02c_no_clamp", CH02, A, "edge_case",
  "divides by the norms without clamping: a zero vector gives NaN",
  fn(CS, """
      q_unit = q / q.norm(dim=-1, keepdim=True)
      k_unit = k / k.norm(dim=-1, keepdim=True)
      return q_unit @ k_unit.transpose(-2, -1)
  """))
M("s2_ch02c_norm_wrong_axis", CH02, A, "wrong_axis_reduction",
  "takes the norms over dim=-2 (the positions) instead of the features",
  fn(CS, """
      q_unit = q / q.norm(dim=-2, keepdim=True).clamp_min(1e-8)
      k_unit = k / k.norm(dim=-2, keepdim=True).clamp_min(1e-8)
      return q_unit @ k_unit.transpose(-2, -1)
  """))
M("s2_ch02c_only_q_normalised", CH02, A, "step_dropped",
  "normalises the queries but forgets the keys",
  fn(CS, """
      q_unit = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
      return q_unit @ k.transpose(-2, -1)
  """))
M("s2_ch02c_global_norm", CH02, A, "wrong_axis_reduction",
  "divides by the norms of the whole q and k tensors (Frobenius) instead of per vector",
  fn(CS, """
      return (q @ k.transpose(-2, -1)) / (q.norm() * k.norm()).clamp_min(1e-8)
  """))
M("s2_ch02c_squared_norm", CH02, A, "other",
  "divides by the squared lengths (no square root)",
  fn(CS, """
      q_unit = q / (q * q).sum(dim=-1, keepdim=True).clamp_min(1e-8)
      k_unit = k / (k * k).sum(dim=-1, keepdim=True).clamp_min(1e-8)
      return q_unit @ k_unit.transpose(-2, -1)
  """))
M("s2_ch02c_clamp_max", CH02, A, "edge_case",
  "uses clamp(max=1e-8) instead of clamp(min=1e-8) on the lengths",
  fn(CS, """
      q_unit = q / q.norm(dim=-1, keepdim=True).clamp(max=1e-8)
      k_unit = k / k.norm(dim=-1, keepdim=True).clamp(max=1e-8)
      return q_unit @ k_unit.transpose(-2, -1)
  """))

# =============================================================================== ch02 (d)
A = "check_cross_attention"
CA = "def cross_attention(x_dec, x_enc, W_q, W_k, W_v):"
M("s2_ch02d_queries_from_encoder", CH02, A, "roles_swapped",
  "takes the queries from the encoder and the keys and values from the decoder",
  fn(CA, """
      q = x_enc @ W_q
      k = x_dec @ W_k
      v = x_dec @ W_v
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch02d_values_from_keys", CH02, A, "roles_swapped",
  "uses the projected keys as the values",
  fn(CA, """
      q = x_dec @ W_q
      k = x_enc @ W_k
      v = x_enc @ W_v
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights @ k, weights
  """))
M("s2_ch02d_softmax_dim1", CH02, A, "wrong_axis_reduction",
  "softmax over dim=1 (the target positions)",
  fn(CA, """
      q = x_dec @ W_q
      k = x_enc @ W_k
      v = x_enc @ W_v
      weights = (q @ k.transpose(-2, -1)).softmax(dim=1)
      return weights @ v, weights
  """))
M("s2_ch02d_scaled", CH02, A, "scale_misplaced",
  "divides the scores by sqrt(d_k) (chapter 3's attention) although this chapter uses q.k",
  fn(CA, """
      q = x_dec @ W_q
      k = x_enc @ W_k
      v = x_enc @ W_v
      weights = (q @ k.transpose(-2, -1) / k.shape[-1] ** 0.5).softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch02d_tuple_order", CH02, A, "tuple_permuted",
  "returns (weights, out)",
  fn(CA, """
      q = x_dec @ W_q
      k = x_enc @ W_k
      v = x_enc @ W_v
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights, weights @ v
  """))
M("s2_ch02d_values_unprojected", CH02, A, "step_dropped",
  "forgets W_v and sums the raw encoder states",
  fn(CA, """
      q = x_dec @ W_q
      k = x_enc @ W_k
      weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
      return weights @ x_enc, weights
  """))

# =============================================================================== ch03 (a)
A = "check_attention_weights"
AW = "def attention_weights(q, k):"
M("s2_ch03a_divide_by_dk", CH03, A, "scale_misplaced",
  "divides the scores by d_k instead of sqrt(d_k)",
  fn(AW, """
      return (q @ k.transpose(-2, -1) / q.shape[-1]).softmax(dim=-1)
  """))
M("s2_ch03a_scale_after_softmax", CH03, A, "step_reordered",
  "divides by sqrt(d_k) after the softmax",
  fn(AW, """
      return (q @ k.transpose(-2, -1)).softmax(dim=-1) / math.sqrt(q.shape[-1])
  """))
M("s2_ch03a_dk_from_k_rows", CH03, A, "other",
  "reads d_k from k.shape[-2] (the number of keys) instead of the last axis",
  fn(AW, """
      d_k = k.shape[-2]
      return (q @ k.transpose(-2, -1) / math.sqrt(d_k)).softmax(dim=-1)
  """))
M("s2_ch03a_softmax_queries", CH03, A, "wrong_axis_reduction",
  "softmax over dim=-2 (the queries)",
  fn(AW, """
      return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-2)
  """))
M("s2_ch03a_float64", CH03, A, "dtype",
  "computes in float64 'for precision' and returns float64 for float32 inputs",
  fn(AW, """
      scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
      return scores.softmax(dim=-1)
  """))
M("s2_ch03a_transpose_1_2", CH03, A, "edge_case",
  "hard-codes k.transpose(1, 2), wrong for (B, H, T, D) inputs",
  fn(AW, """
      return (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(dim=-1)
  """))
M("s2_ch03a_multiply_sqrt", CH03, A, "scale_misplaced",
  "multiplies the scores by sqrt(d_k) instead of dividing",
  fn(AW, """
      return (q @ k.transpose(-2, -1) * math.sqrt(q.shape[-1])).softmax(dim=-1)
  """))

# =============================================================================== ch03 (b)
A = "check_scaled_dot_product_attention"
SDPA = "def scaled_dot_product_attention(q, k, v, mask=None):"
M("s2_ch03b_mask_after_softmax_only", CH03, A, "step_reordered",
  "zeroes the masked weights after the softmax without masking the scores first",
  fn(SDPA, """
      weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
      if mask is not None:
          weights = weights.masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch03b_neg_inf_nan_rows", CH03, A, "edge_case",
  "fills masked scores with -inf, so a fully masked row becomes NaN",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(~mask, float("-inf"))
      weights = scores.softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch03b_mask_flip", CH03, A, "mask_flip",
  "treats True as 'hide' (masked_fill(mask, ...))",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights.masked_fill(mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch03b_no_zero_after", CH03, A, "step_dropped",
  "fills with finfo.min but never zeroes the weights afterwards (fully masked rows become uniform)",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch03b_tuple_order", CH03, A, "tuple_permuted",
  "returns (weights, out)",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights.masked_fill(~mask, 0.0)
      return weights, weights @ v
  """))
M("s2_ch03b_out_from_keys", CH03, A, "roles_swapped",
  "takes the weighted sum of the keys instead of the values",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights.masked_fill(~mask, 0.0)
      return weights @ k, weights
  """))
M("s2_ch03b_mask_by_multiplication", CH03, A, "other",
  "masks by multiplying the scores by the mask (masked scores become 0, not very negative)",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      if mask is not None:
          scores = scores * mask
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights * mask
      return weights @ v, weights
  """))
M("s2_ch03b_scale_by_dv", CH03, A, "scale_misplaced",
  "reads the scale from v's last axis (d_v) instead of q's",
  fn(SDPA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1])
      if mask is not None:
          scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      if mask is not None:
          weights = weights.masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))

# =============================================================================== ch03 (c)
A = "check_dot_product_variance"
DV = "def dot_product_variance(d_k, n_samples):"
M("s2_ch03c_closed_form", CH03, A, "closed_form",
  "returns the theoretical value float(d_k) instead of a measurement",
  fn(DV, """
      return float(d_k)
  """))
M("s2_ch03c_returns_tensor", CH03, A, "return_type",
  "returns the 0-d tensor (no .item())",
  fn(DV, """
      q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
      return (q * k).sum(dim=-1).var()
  """))
M("s2_ch03c_var_of_products", CH03, A, "wrong_axis_reduction",
  "takes the variance of all the elementwise products (about 1) instead of the dot products",
  fn(DV, """
      q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
      return (q * k).var().item()
  """))
M("s2_ch03c_uniform", CH03, A, "other",
  "draws with torch.rand (uniform on [0, 1)) instead of torch.randn",
  fn(DV, """
      q, k = torch.rand(n_samples, d_k), torch.rand(n_samples, d_k)
      return (q * k).sum(dim=-1).var().item()
  """))
M("s2_ch03c_std", CH03, A, "other",
  "returns the standard deviation instead of the variance",
  fn(DV, """
      q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
      return (q * k).sum(dim=-1).std().item()
  """))
M("s2_ch03c_k_is_q", CH03, A, "roles_swapped",
  "reuses the same draw for q and k (q . q instead of q . k)",
  fn(DV, """
      q = torch.randn(n_samples, d_k)
      k = q
      return (q * k).sum(dim=-1).var().item()
  """))
M("s2_ch03c_scaled", CH03, A, "scale_misplaced",
  "divides the dot products by sqrt(d_k) before measuring (returns about 1)",
  fn(DV, """
      q, k = torch.randn(n_samples, d_k), torch.randn(n_samples, d_k)
      return ((q * k).sum(dim=-1) / math.sqrt(d_k)).var().item()
  """))
M("s2_ch03c_shape_swapped", CH03, A, "axis_swap",
  "draws (d_k, n_samples) and sums over the samples: d_k dot products of length n_samples",
  fn(DV, """
      q, k = torch.randn(d_k, n_samples), torch.randn(d_k, n_samples)
      return (q * k).sum(dim=-1).var().item()
  """))

# =============================================================================== ch03 (d)
A = "check_attention_entropy"
AE = "def attention_entropy(weights):"
M("s2_ch03d_log_zero_nan", CH03, A, "edge_case",
  "uses w * log(w), which is NaN where a weight is 0",
  fn(AE, """
      return -(weights * weights.log()).sum(dim=-1)
  """))
M("s2_ch03d_log2", CH03, A, "other",
  "uses log2 (bits) instead of the natural log",
  fn(AE, """
      return -torch.special.xlogy(weights, weights).sum(dim=-1) / math.log(2)
  """))
M("s2_ch03d_no_minus", CH03, A, "sign_flip",
  "forgets the minus sign",
  fn(AE, """
      return torch.special.xlogy(weights, weights).sum(dim=-1)
  """))
M("s2_ch03d_sum_over_queries", CH03, A, "wrong_axis_reduction",
  "sums over dim=-2 (the queries) instead of the keys",
  fn(AE, """
      return -torch.special.xlogy(weights, weights).sum(dim=-2)
  """))
M("s2_ch03d_mean", CH03, A, "other",
  "averages -w log w over the keys instead of summing",
  fn(AE, """
      return -torch.special.xlogy(weights, weights).mean(dim=-1)
  """))
M("s2_ch03d_total_scalar", CH03, A, "wrong_axis_reduction",
  "sums over every axis and returns one number",
  fn(AE, """
      return -torch.special.xlogy(weights, weights).sum()
  """))
M("s2_ch03d_where_branches_swapped", CH03, A, "edge_case",
  "guards the log with torch.where but swaps the branches (log of 1 where w > 0, log 0 where w = 0)",
  fn(AE, """
      safe = torch.where(weights > 0, torch.ones_like(weights), weights)
      return -(weights * safe.log()).sum(dim=-1)
  """))

# =============================================================================== ch04 (a) split / merge
SPLIT_OK = '''
def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)
'''
MERGE_OK = '''
def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)
'''


def split(body: str) -> str:
    return "def split_heads(x, n_heads):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n\n" + textwrap.dedent(MERGE_OK)


def merge(body: str) -> str:
    return textwrap.dedent(SPLIT_OK).strip("\n") + "\n\n\ndef merge_heads(x):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


A = "check_split_heads"
M("s2_ch04a_split_DH_order", CH04, A, "axis_swap",
  "views the features as (D, H) instead of (H, D), so each head gets every H-th feature",
  split("""
      B, T, C = x.shape
      return x.view(B, T, C // n_heads, n_heads).permute(0, 3, 1, 2)
  """))
M("s2_ch04a_split_no_transpose", CH04, A, "step_dropped",
  "reshapes straight to (B, H, T, D) without the transpose",
  split("""
      B, T, C = x.shape
      return x.reshape(B, n_heads, T, C // n_heads)
  """))
M("s2_ch04a_split_detach", CH04, A, "other",
  "detaches the result (gradients stop at the split)",
  split("""
      B, T, C = x.shape
      return x.view(B, T, n_heads, C // n_heads).transpose(1, 2).detach()
  """))
M("s2_ch04a_split_transpose_2_3", CH04, A, "axis_swap",
  "transposes axes 2 and 3 instead of 1 and 2: (B, T, D, H)",
  split("""
      B, T, C = x.shape
      return x.view(B, T, n_heads, C // n_heads).transpose(2, 3)
  """))
M("s2_ch04a_split_heads_before_batch", CH04, A, "axis_swap",
  "stacks the chunks on a new axis 0, giving (H, B, T, D)",
  split("""
      return torch.stack(x.chunk(n_heads, dim=-1), dim=0)
  """))
M("s2_ch04a_split_D_equals_H", CH04, A, "roles_swapped",
  "passes n_heads as the per-head size: view(B, T, C // n_heads, n_heads) then moves the last axis",
  split("""
      B, T, C = x.shape
      return x.view(B, T, -1, n_heads).transpose(1, 2)
  """))

A = "check_merge_heads"
M("s2_ch04a_merge_no_transpose", CH04, A, "step_dropped",
  "reshapes (B, H, T, D) straight to (B, T, H*D) without moving the head axis back",
  merge("""
      B, H, T, D = x.shape
      return x.reshape(B, T, H * D)
  """))
M("s2_ch04a_merge_transpose_2_3", CH04, A, "axis_swap",
  "transposes axes 2 and 3 before the reshape",
  merge("""
      B, H, T, D = x.shape
      return x.transpose(2, 3).reshape(B, T, H * D)
  """))
M("s2_ch04a_merge_view", CH04, A, "other",
  "uses .view after the transpose (non-contiguous tensor)",
  merge("""
      B, H, T, D = x.shape
      return x.transpose(1, 2).view(B, T, H * D)
  """))
M("s2_ch04a_merge_sum_heads", CH04, A, "other",
  "sums the heads instead of concatenating them",
  merge("""
      return x.sum(dim=1)
  """))
M("s2_ch04a_merge_D_major", CH04, A, "axis_swap",
  "permutes to (B, T, D, H) before flattening, interleaving the heads' features",
  merge("""
      B, H, T, D = x.shape
      return x.permute(0, 2, 3, 1).reshape(B, T, H * D)
  """))
M("s2_ch04a_merge_cat_wrong_unbind", CH04, A, "wrong_axis_reduction",
  "concatenates x.unbind(0) (the batch) instead of x.unbind(1) (the heads)",
  merge("""
      return torch.cat(x.unbind(0), dim=-1)
  """))
M("s2_ch04a_merge_detach", CH04, A, "other",
  "detaches the merged tensor",
  merge("""
      B, H, T, D = x.shape
      return x.transpose(1, 2).reshape(B, T, H * D).detach()
  """))

# =============================================================================== ch04 (b) MHA
A = "check_multi_head_attention"
MHA_INIT = '''
class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, query, key, value, mask=None):
'''


def mha(body: str, init: str = MHA_INIT) -> str:
    return textwrap.dedent(init).strip("\n") + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ") + "\n"


M("s2_ch04b_no_out_proj", CH04, A, "step_dropped",
  "returns the merged heads without out_proj",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return merge_heads(heads), weights
  """))
M("s2_ch04b_kproj_for_query", CH04, A, "roles_swapped",
  "projects the query with k_proj (copy-paste)",
  mha("""
      q = split_heads(self.k_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return self.out_proj(merge_heads(heads)), weights
  """))
M("s2_ch04b_weights_averaged", CH04, A, "other",
  "returns the weights averaged over the heads (torch's default) instead of per head",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return self.out_proj(merge_heads(heads)), weights.mean(dim=1)
  """))
M("s2_ch04b_single_head", CH04, A, "step_dropped",
  "never splits into heads: one attention over the full d_model",
  mha("""
      q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
      out, weights = scaled_dot_product_attention(q, k, v, None if mask is None else mask.squeeze(1) if mask.dim() == 4 else mask)
      return self.out_proj(out), weights
  """))
M("s2_ch04b_mask_not_passed", CH04, A, "step_dropped",
  "forgets to pass the mask to the attention",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v)
      return self.out_proj(merge_heads(heads)), weights
  """))
M("s2_ch04b_values_from_key", CH04, A, "roles_swapped",
  "projects the values from key instead of value",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(key), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return self.out_proj(merge_heads(heads)), weights
  """))
M("s2_ch04b_double_scale", CH04, A, "scale_misplaced",
  "divides q by sqrt(d_model) before calling an attention that already scales by sqrt(D)",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads) / math.sqrt(self.d_model)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return self.out_proj(merge_heads(heads)), weights
  """))
M("s2_ch04b_mask_flip", CH04, A, "mask_flip",
  "inverts the mask before passing it (thinking of torch's polarity)",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, None if mask is None else ~mask)
      return self.out_proj(merge_heads(heads)), weights
  """))
M("s2_ch04b_no_bias", CH04, A, "other",
  "builds the four projections with bias=False",
  mha("""
      q = split_heads(self.q_proj(query), self.n_heads)
      k = split_heads(self.k_proj(key), self.n_heads)
      v = split_heads(self.v_proj(value), self.n_heads)
      heads, weights = scaled_dot_product_attention(q, k, v, mask)
      return self.out_proj(merge_heads(heads)), weights
  """, init=MHA_INIT.replace("d_model, d_model)", "d_model, d_model, bias=False)")))

# =============================================================================== ch04 (c) to_torch_mha
A = "check_copy_into_torch"


def tt(body: str) -> str:
    return "def to_torch_mha(mha):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch04c_qvk_stacked", CH04, A, "tuple_permuted",
  "stacks the input projections as [W_q; W_v; W_k]",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.v_proj.weight, mha.k_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.v_proj.bias, mha.k_proj.bias]))
          ref.out_proj.weight.copy_(mha.out_proj.weight)
          ref.out_proj.bias.copy_(mha.out_proj.bias)
      return ref
  """))
M("s2_ch04c_weights_transposed", CH04, A, "axis_swap",
  "copies the transposed weight matrices (x @ W layout instead of nn.Linear's)",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight.T, mha.k_proj.weight.T, mha.v_proj.weight.T]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
          ref.out_proj.weight.copy_(mha.out_proj.weight.T)
          ref.out_proj.bias.copy_(mha.out_proj.bias)
      return ref
  """))
M("s2_ch04c_out_proj_forgotten", CH04, A, "step_dropped",
  "copies the input projections but forgets out_proj",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
      return ref
  """))
M("s2_ch04c_not_batch_first", CH04, A, "other",
  "leaves batch_first at its default False",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
          ref.out_proj.weight.copy_(mha.out_proj.weight)
          ref.out_proj.bias.copy_(mha.out_proj.bias)
      return ref
  """))
M("s2_ch04c_biases_not_copied", CH04, A, "step_dropped",
  "copies the weights but not the biases",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.out_proj.weight.copy_(mha.out_proj.weight)
      return ref
  """))
M("s2_ch04c_bias_order", CH04, A, "tuple_permuted",
  "stacks the weights in the right order but the biases as [b_k; b_q; b_v]",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.k_proj.bias, mha.q_proj.bias, mha.v_proj.bias]))
          ref.out_proj.weight.copy_(mha.out_proj.weight)
          ref.out_proj.bias.copy_(mha.out_proj.bias)
      return ref
  """))
M("s2_ch04c_out_from_v", CH04, A, "roles_swapped",
  "copies v_proj into torch's out_proj (copy-paste)",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
          ref.out_proj.weight.copy_(mha.v_proj.weight)
          ref.out_proj.bias.copy_(mha.v_proj.bias)
      return ref
  """))
M("s2_ch04c_one_head", CH04, A, "other",
  "builds torch's module with 1 head instead of mha.n_heads",
  tt("""
      ref = nn.MultiheadAttention(mha.d_model, 1, batch_first=True)
      with torch.no_grad():
          ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
          ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
          ref.out_proj.weight.copy_(mha.out_proj.weight)
          ref.out_proj.bias.copy_(mha.out_proj.bias)
      return ref
  """))

# =============================================================================== ch04 (d) masks
A = "check_torch_masks"


def tm(body: str) -> str:
    return "def to_torch_masks(pad_mask, attn_mask):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch04d_not_flipped", CH04, A, "mask_flip",
  "reshapes the padding mask but keeps the course polarity for both",
  tm("""
      return pad_mask[:, 0, 0, :], attn_mask
  """))
M("s2_ch04d_only_pad_flipped", CH04, A, "mask_flip",
  "flips the padding mask but forgets the attention mask",
  tm("""
      return ~pad_mask[:, 0, 0, :], attn_mask
  """))
M("s2_ch04d_bare_squeeze", CH04, A, "edge_case",
  "squeezes the padding mask without dims (a batch of one loses its batch axis)",
  tm("""
      return ~pad_mask.squeeze(), ~attn_mask
  """))
M("s2_ch04d_float_masks", CH04, A, "dtype",
  "returns additive float masks (-inf / 0) instead of boolean ones",
  tm("""
      kpm = torch.zeros(pad_mask[:, 0, 0, :].shape).masked_fill(~pad_mask[:, 0, 0, :], float("-inf"))
      am = torch.zeros(attn_mask.shape).masked_fill(~attn_mask, float("-inf"))
      return kpm, am
  """))
M("s2_ch04d_tuple_order", CH04, A, "tuple_permuted",
  "returns (attn_mask, key_padding_mask)",
  tm("""
      return ~attn_mask, ~pad_mask[:, 0, 0, :]
  """))
M("s2_ch04d_attn_transposed", CH04, A, "axis_swap",
  "flips and transposes the attention mask",
  tm("""
      return ~pad_mask[:, 0, 0, :], ~attn_mask.T
  """))
M("s2_ch04d_int_masks", CH04, A, "dtype",
  "flips with 1 - mask.int(), returning integer masks",
  tm("""
      return (1 - pad_mask.int())[:, 0, 0, :], 1 - attn_mask.int()
  """))

# =============================================================================== ch05 (a) table
A = "check_sinusoidal_table"
ST = "def sinusoidal_table(n_positions, d_model):"
M("s2_ch05a_float32", CH05, A, "dtype",
  "builds the table in the default float32",
  fn(ST, """
      pos = torch.arange(n_positions)[:, None].float()
      two_i = torch.arange(0, d_model, 2).float()
      angles = pos / 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
      return table
  """))
M("s2_ch05a_i_not_2i", CH05, A, "other",
  "uses the pair index i in the exponent instead of 2i",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
      i = torch.arange(0, (d_model + 1) // 2, dtype=torch.float64)
      angles = pos / 10000 ** (i / d_model)
      table = torch.zeros(n_positions, d_model, dtype=torch.float64)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
      return table
  """))
M("s2_ch05a_sin_cos_swapped", CH05, A, "roles_swapped",
  "puts the cosines in the even columns and the sines in the odd ones",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
      angles = pos / 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model, dtype=torch.float64)
      table[:, 0::2] = torch.cos(angles)
      table[:, 1::2] = torch.sin(angles[:, : d_model // 2])
      return table
  """))
M("s2_ch05a_concatenated", CH05, A, "axis_swap",
  "writes all sines first, then all cosines (concatenated layout)",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
      angles = pos / 10000 ** (two_i / d_model)
      return torch.cat([torch.sin(angles), torch.cos(angles[:, : d_model // 2])], dim=-1)
  """))
M("s2_ch05a_positions_from_1", CH05, A, "edge_case",
  "numbers the positions 1..n instead of 0..n-1",
  fn(ST, """
      pos = torch.arange(1, n_positions + 1, dtype=torch.float64)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
      angles = pos / 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model, dtype=torch.float64)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
      return table
  """))
M("s2_ch05a_odd_dmodel_crash", CH05, A, "edge_case",
  "assigns all the cosines without trimming, which breaks for an odd d_model",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
      angles = pos / 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model, dtype=torch.float64)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles)
      return table
  """))
M("s2_ch05a_multiply_frequency", CH05, A, "sign_flip",
  "multiplies the positions by 10000^(2i/d) instead of dividing (exponent sign flipped)",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
      angles = pos * 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model, dtype=torch.float64)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
      return table
  """))
M("s2_ch05a_float32_then_double", CH05, A, "dtype",
  "computes in float32 and converts with .double() at the end (float32 precision)",
  fn(ST, """
      pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
      two_i = torch.arange(0, d_model, 2, dtype=torch.float32)
      angles = pos / 10000 ** (two_i / d_model)
      table = torch.zeros(n_positions, d_model)
      table[:, 0::2] = torch.sin(angles)
      table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
      return table.double()
  """))

# =============================================================================== ch05 (b) diagnosis
A = "check_bug_diagnosis"
M("s2_ch05b_i_instead_of_2i", CH05, A, "other",
  "names the neighbouring bug i_instead_of_2i",
  'diagnosis = "i_instead_of_2i"\n')
M("s2_ch05b_column_as_i", CH05, A, "other",
  "names column_as_i",
  'diagnosis = "column_as_i"\n')
M("s2_ch05b_case_and_space", CH05, A, "edge_case",
  "types the right key with a capital and a trailing space",
  'diagnosis = "Column_as_2i "\n')
M("s2_ch05b_description", CH05, A, "return_type",
  "sets diagnosis to the description text instead of the key",
  'diagnosis = MISTAKES["column_as_2i"]\n')
M("s2_ch05b_list", CH05, A, "return_type",
  "puts the key in a list",
  'diagnosis = ["column_as_2i"]\n')
M("s2_ch05b_sin_cos_swapped", CH05, A, "other",
  "names sin_cos_swapped",
  'diagnosis = "sin_cos_swapped"\n')

# =============================================================================== ch05 (c) fixed
A = "check_fixed_encoding"
FE = "def fixed_encoding(n_positions, d_model):"


def fe(two_i_line: str, extra: str = "", pos_line: str = "pos = torch.arange(n_positions, dtype=torch.float64)[:, None]",
       j_line: str = "j = torch.arange(d_model, dtype=torch.float64)[None, :]",
       tail: str = "table[:, 0::2] = torch.sin(angles[:, 0::2])\ntable[:, 1::2] = torch.cos(angles[:, 1::2])") -> str:
    body = "\n".join([pos_line, j_line, two_i_line, "angles = pos / 10000 ** (two_i / d_model)",
                      "table = torch.empty(n_positions, d_model, dtype=torch.float64)", tail, "return table"])
    return FE + "\n" + textwrap.indent(body, "    ") + "\n"


M("s2_ch05c_floor_without_times2", CH05, A, "other",
  "replaces j by j // 2 (the pair index i) without multiplying by 2",
  fe('two_i = torch.div(j, 2, rounding_mode="floor")'))
M("s2_ch05c_two_j", CH05, A, "other",
  "uses 2 * j, reading '2i' with the column index as i",
  fe("two_i = 2 * j"))
M("s2_ch05c_float32", CH05, A, "dtype",
  "fixes the exponent but builds pos and j in float32",
  fe('two_i = 2 * torch.div(j, 2, rounding_mode="floor")',
     pos_line="pos = torch.arange(n_positions, dtype=torch.float32)[:, None]",
     j_line="j = torch.arange(d_model, dtype=torch.float32)[None, :]",
     tail="table = table.float()\ntable[:, 0::2] = torch.sin(angles[:, 0::2])\ntable[:, 1::2] = torch.cos(angles[:, 1::2])"))
M("s2_ch05c_cos_from_even_angles", CH05, A, "edge_case",
  "repairs it by taking the cosines of the even-column angles, which breaks for an odd d_model",
  fe("two_i = j", tail="table[:, 0::2] = torch.sin(angles[:, 0::2])\ntable[:, 1::2] = torch.cos(angles[:, 0::2])"))
M("s2_ch05c_round_up", CH05, A, "edge_case",
  "rounds the column index up to even (j + j % 2): each cosine takes the next pair's frequency",
  fe("two_i = j + j % 2"))
M("s2_ch05c_positions_from_1", CH05, A, "edge_case",
  "fixes the exponent but also starts the positions at 1",
  fe('two_i = 2 * torch.div(j, 2, rounding_mode="floor")',
     pos_line="pos = torch.arange(1, n_positions + 1, dtype=torch.float64)[:, None]"))

# =============================================================================== ch05 (d) rotation
A = "check_rotation_matrix"
RM = "def rotation_matrix(offset, d_model):"


def rm(angle: str = "offset / 10000 ** (2 * i / d_model)", rows: str | None = None, dtype: str = "torch.float64") -> str:
    rows = rows or ("M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = c, s\n"
                    "M[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = -s, c")
    body = (f"M = torch.zeros(d_model, d_model, dtype={dtype})\nfor i in range(d_model // 2):\n"
            f"    angle = {angle}\n    c, s = math.cos(angle), math.sin(angle)\n" + textwrap.indent(rows, "    ") + "\nreturn M")
    return RM + "\n" + textwrap.indent(body, "    ") + "\n"


M("s2_ch05d_transposed_blocks", CH05, A, "sign_flip",
  "puts -sin above the diagonal and +sin below (rotates by -offset)",
  rm(rows="M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = c, -s\nM[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = s, c"))
M("s2_ch05d_i_not_2i", CH05, A, "other",
  "uses i / d_model in the frequency instead of 2i / d_model",
  rm(angle="offset / 10000 ** (i / d_model)"))
M("s2_ch05d_float32", CH05, A, "dtype",
  "allocates M in float32",
  rm(dtype="torch.float32"))
M("s2_ch05d_abs_offset", CH05, A, "edge_case",
  "uses abs(offset), so negative offsets rotate forwards",
  rm(angle="abs(offset) / 10000 ** (2 * i / d_model)"))
M("s2_ch05d_concatenated_blocks", CH05, A, "axis_swap",
  "places each pair's block at rows/columns (i, i + d/2) (concatenated layout)",
  rm(rows="h = d_model // 2\nM[i, i], M[i, i + h] = c, s\nM[i + h, i], M[i + h, i + h] = -s, c"))
M("s2_ch05d_cos_sin_swapped", CH05, A, "roles_swapped",
  "swaps the roles of cos and sin in the block",
  rm(rows="M[2 * i, 2 * i], M[2 * i, 2 * i + 1] = s, c\nM[2 * i + 1, 2 * i], M[2 * i + 1, 2 * i + 1] = c, -s"))
M("s2_ch05d_frequency_inverted", CH05, A, "other",
  "multiplies the offset by 10000^(2i/d) instead of dividing",
  rm(angle="offset * 10000 ** (2 * i / d_model)"))

# =============================================================================== ch06 (a) padding
A = "check_padding_mask"
PM = "def padding_mask(tokens, pad_id):"
M("s2_ch06a_hardcoded_zero", CH06, A, "edge_case",
  "compares with 0 instead of pad_id",
  fn(PM, """
      return (tokens != 0)[:, None, None, :]
  """))
M("s2_ch06a_polarity", CH06, A, "mask_flip",
  "returns True at the padding (tokens == pad_id)",
  fn(PM, """
      return (tokens == pad_id)[:, None, None, :]
  """))
M("s2_ch06a_three_dims", CH06, A, "other",
  "adds only one broadcast axis: (B, 1, S)",
  fn(PM, """
      return (tokens != pad_id)[:, None, :]
  """))
M("s2_ch06a_axes_at_end", CH06, A, "axis_swap",
  "puts the two broadcast axes at the end: (B, S, 1, 1)",
  fn(PM, """
      return (tokens != pad_id)[..., None, None]
  """))
M("s2_ch06a_float", CH06, A, "dtype",
  "returns a float 0/1 mask",
  fn(PM, """
      return (tokens != pad_id).float()[:, None, None, :]
  """))
M("s2_ch06a_greater_than_pad", CH06, A, "edge_case",
  "uses tokens > pad_id (only right when the pad id is the smallest id)",
  fn(PM, """
      return (tokens > pad_id)[:, None, None, :]
  """))
M("s2_ch06a_query_axis", CH06, A, "axis_swap",
  "puts the tokens on the query axis: (B, 1, S, 1)",
  fn(PM, """
      return (tokens != pad_id)[:, None, :, None]
  """))

# =============================================================================== ch06 (b) causal
A = "check_causal_mask"
CM = "def causal_mask(T):"
M("s2_ch06b_triu", CH06, A, "axis_swap",
  "uses triu instead of tril (keys may see queries' future)",
  fn(CM, """
      return torch.ones(T, T, dtype=torch.bool).triu()
  """))
M("s2_ch06b_strict", CH06, A, "edge_case",
  "uses tril(diagonal=-1): a query may not see itself",
  fn(CM, """
      return torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
  """))
M("s2_ch06b_float", CH06, A, "dtype",
  "returns torch.tril(torch.ones(T, T)) as floats",
  fn(CM, """
      return torch.tril(torch.ones(T, T))
  """))
M("s2_ch06b_torch_polarity", CH06, A, "mask_flip",
  "returns the future (triu(diagonal=1)), torch's True = ignore polarity",
  fn(CM, """
      return torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
  """))
M("s2_ch06b_compare_swapped", CH06, A, "axis_swap",
  "builds it by comparison with rows and columns swapped (t <= s)",
  fn(CM, """
      idx = torch.arange(T)
      return idx[:, None] <= idx[None, :]
  """))
M("s2_ch06b_diagonal_plus_one", CH06, A, "edge_case",
  "uses tril(diagonal=1): each query also sees the next token",
  fn(CM, """
      return torch.ones(T, T, dtype=torch.bool).tril(diagonal=1)
  """))

# =============================================================================== ch06 (c) combined
A = "check_combined_mask"
DM = "def decoder_mask(tokens, pad_id):"
M("s2_ch06c_or", CH06, A, "other",
  "combines the masks with | instead of &",
  fn(DM, """
      return padding_mask(tokens, pad_id) | causal_mask(tokens.shape[1])
  """))
M("s2_ch06c_padding_on_queries", CH06, A, "axis_swap",
  "puts the padding on the query axis: (B, 1, T, 1) & (T, T)",
  fn(DM, """
      pad = (tokens != pad_id)[:, None, :, None]
      return pad & causal_mask(tokens.shape[1])
  """))
M("s2_ch06c_hardcoded_zero", CH06, A, "edge_case",
  "builds the padding part with tokens != 0",
  fn(DM, """
      return (tokens != 0)[:, None, None, :] & causal_mask(tokens.shape[1])
  """))
M("s2_ch06c_no_head_axis", CH06, A, "other",
  "returns (B, T, T) without the head axis",
  fn(DM, """
      return (tokens != pad_id)[:, None, :] & causal_mask(tokens.shape[1])
  """))
M("s2_ch06c_triu", CH06, A, "mask_flip",
  "builds its own causal part with triu",
  fn(DM, """
      T = tokens.shape[1]
      return padding_mask(tokens, pad_id) & torch.ones(T, T, dtype=torch.bool).triu()
  """))
M("s2_ch06c_int_product", CH06, A, "dtype",
  "multiplies the two masks as integers",
  fn(DM, """
      return padding_mask(tokens, pad_id).int() * causal_mask(tokens.shape[1]).int()
  """))
M("s2_ch06c_batch_size_hardcoded", CH06, A, "edge_case",
  "uses tokens.shape[0] (the batch size) as the causal length",
  fn(DM, """
      T = tokens.shape[0]
      return padding_mask(tokens, pad_id) & causal_mask(T)[:tokens.shape[1], :tokens.shape[1]]
  """))

# =============================================================================== ch06 (d) masked attention
A = "check_masked_attention"
MA = "def masked_attention(q, k, v, mask):"
M("s2_ch06d_neg_inf", CH06, A, "edge_case",
  "fills with -inf and zeroes afterwards: fully masked rows are NaN",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores.masked_fill(~mask, float("-inf"))
      weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_zero_after_only", CH06, A, "step_reordered",
  "only zeroes the masked weights after an unmasked softmax",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_no_zero_after", CH06, A, "step_dropped",
  "fills with finfo.min but never zeroes afterwards (fully masked rows uniform)",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1)
      return weights @ v, weights
  """))
M("s2_ch06d_polarity", CH06, A, "mask_flip",
  "masks where mask is True",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores.masked_fill(mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1).masked_fill(mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_nan_to_num", CH06, A, "edge_case",
  "uses -inf and repairs the NaN rows with nan_to_num (forward fine, gradients NaN)",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores.masked_fill(~mask, float("-inf"))
      weights = torch.nan_to_num(scores.softmax(dim=-1), nan=0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_no_scale", CH06, A, "step_dropped",
  "forgets the 1/sqrt(d_k)",
  fn(MA, """
      scores = q @ k.transpose(-2, -1)
      scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_mask_inverted_in_place", CH06, A, "other",
  "inverts the caller's mask in place (mask.logical_not_())",
  fn(MA, """
      hidden = mask.logical_not_()
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores.masked_fill(hidden, torch.finfo(scores.dtype).min)
      weights = scores.softmax(dim=-1).masked_fill(hidden, 0.0)
      return weights @ v, weights
  """))
M("s2_ch06d_additive_bool_mask", CH06, A, "other",
  "adds the boolean mask to the scores as if it were an additive mask, then zeroes the masked weights",
  fn(MA, """
      scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
      scores = scores + mask
      weights = scores.softmax(dim=-1).masked_fill(~mask, 0.0)
      return weights @ v, weights
  """))

# =============================================================================== ch07 (a) encoder layer
A = "check_encoder_layer"
ENC_INIT = '''
class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x, mask=None):
'''


def enc(body: str) -> str:
    return textwrap.dedent(ENC_INIT).strip("\n") + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ") + "\n"


M("s2_ch07a_pre_ln", CH07, A, "step_reordered",
  "uses the pre-LN order x + dropout(sublayer(norm(x)))",
  enc("""
      h = self.norm1(x)
      x = x + self.dropout1(self.self_attn(h, h, h, mask=mask).out)
      x = x + self.dropout2(self.ffn(self.norm2(x)))
      return x
  """))
M("s2_ch07a_no_ffn_residual", CH07, A, "step_dropped",
  "drops the residual connection around the FFN",
  enc("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      return self.norm2(self.dropout2(self.ffn(x)))
  """))
M("s2_ch07a_mask_not_passed", CH07, A, "step_dropped",
  "does not pass the padding mask to the self-attention",
  enc("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x).out))
      return self.norm2(x + self.dropout2(self.ffn(x)))
  """))
M("s2_ch07a_norm1_twice", CH07, A, "step_duplicated",
  "uses norm1 for both sublayers (norm2 never used)",
  enc("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      return self.norm1(x + self.dropout2(self.ffn(x)))
  """))
M("s2_ch07a_dropout_after_norm", CH07, A, "step_reordered",
  "applies the dropout after the LayerNorm instead of on the sublayer output",
  enc("""
      x = self.dropout1(self.norm1(x + self.self_attn(x, x, x, mask=mask).out))
      return self.dropout2(self.norm2(x + self.ffn(x)))
  """))
M("s2_ch07a_attention_twice", CH07, A, "step_duplicated",
  "applies the self-attention sublayer twice (copy-pasted block) before the FFN",
  enc("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      return self.norm2(x + self.dropout2(self.ffn(x)))
  """))
M("s2_ch07a_ffn_on_input", CH07, A, "roles_swapped",
  "feeds the FFN the layer's input instead of the output of the first sublayer",
  enc("""
      h = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      return self.norm2(h + self.dropout2(self.ffn(x)))
  """))
M("s2_ch07a_no_dropout2", CH07, A, "step_dropped",
  "forgets the dropout on the FFN output",
  enc("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=mask).out))
      return self.norm2(x + self.ffn(x))
  """))

# =============================================================================== ch07 (b) decoder layer
A = "check_decoder_layer"
DEC_INIT = '''
class DecoderLayer(nn.Module):
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
'''


def dec(body: str) -> str:
    return textwrap.dedent(DEC_INIT).strip("\n") + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ") + "\n"


M("s2_ch07b_no_causal", CH07, A, "step_dropped",
  "runs the self-attention without the causal mask",
  dec("""
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x).out))
      x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_cross_queries_from_memory", CH07, A, "roles_swapped",
  "cross-attention with queries from memory and keys/values from the decoder",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
      x = self.norm2(x + self.dropout2(self.cross_attn(memory, x, x).out[:, :T]))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_causal_inverted", CH07, A, "mask_flip",
  "passes ~causal_mask(T) (torch's polarity) to the self-attention",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=~causal_mask(T)).out))
      x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_masks_swapped", CH07, A, "roles_swapped",
  "gives the self-attention the memory mask and the cross-attention the causal mask",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=memory_mask).out))
      S = memory.shape[1]
      x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory, mask=torch.ones(T, S, dtype=torch.bool).tril()).out))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_cross_first", CH07, A, "step_reordered",
  "does the cross-attention before the causal self-attention",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.cross_attn(x, memory, memory, mask=memory_mask).out))
      x = self.norm2(x + self.dropout2(self.self_attn(x, x, x, mask=causal_mask(T)).out))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_memory_mask_dropped", CH07, A, "step_dropped",
  "forgets memory_mask in the cross-attention",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
      x = self.norm2(x + self.dropout2(self.cross_attn(x, memory, memory).out))
      return self.norm3(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_norms_2_3_swapped", CH07, A, "other",
  "uses norm3 after the cross-attention and norm2 after the FFN",
  dec("""
      T = x.shape[1]
      x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
      x = self.norm3(x + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
      return self.norm2(x + self.dropout3(self.ffn(x)))
  """))
M("s2_ch07b_stale_query", CH07, A, "other",
  "gives the cross-attention the layer's input x as queries (the self-attention result only goes into the residual)",
  dec("""
      T = x.shape[1]
      h = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal_mask(T)).out))
      h = self.norm2(h + self.dropout2(self.cross_attn(x, memory, memory, mask=memory_mask).out))
      return self.norm3(h + self.dropout3(self.ffn(h)))
  """))

# =============================================================================== ch07 (c) lrate
A = "check_lrate"
LR = "def lrate(step, d_model, warmup_steps):"
M("s2_ch07c_dmodel_sqrt_positive", CH07, A, "sign_flip",
  "multiplies by d_model**0.5 instead of d_model**-0.5",
  fn(LR, """
      return d_model**0.5 * min(step**-0.5, step * warmup_steps**-1.5)
  """))
M("s2_ch07c_max", CH07, A, "other",
  "uses max instead of min",
  fn(LR, """
      return d_model**-0.5 * max(step**-0.5, step * warmup_steps**-1.5)
  """))
M("s2_ch07c_warmup_power", CH07, A, "other",
  "uses warmup_steps**-0.5 in the warm-up branch",
  fn(LR, """
      return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-0.5)
  """))
M("s2_ch07c_tensor", CH07, A, "return_type",
  "returns a torch tensor",
  fn(LR, """
      step = torch.tensor(float(step))
      return d_model**-0.5 * torch.minimum(step**-0.5, step * warmup_steps**-1.5)
  """))
M("s2_ch07c_step_plus_one", CH07, A, "edge_case",
  "counts from 0 and adds 1 to the step 'to avoid the division by zero'",
  fn(LR, """
      step = step + 1
      return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)
  """))
M("s2_ch07c_no_dmodel", CH07, A, "step_dropped",
  "forgets the d_model**-0.5 factor",
  fn(LR, """
      return min(step**-0.5, step * warmup_steps**-1.5)
  """))
M("s2_ch07c_rounded", CH07, A, "other",
  "rounds the result to 6 decimals for printing",
  fn(LR, """
      return round(d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5), 6)
  """))

# =============================================================================== ch07 (d) label smoothing
A = "check_label_smoothed_loss"
LS = "def label_smoothed_loss(logits, target, eps, pad_id):"
M("s2_ch07d_eps_over_V_minus_1", CH07, A, "other",
  "spreads eps over the V-1 wrong classes only (fairseq-style)",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      V = logits.shape[-1]
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      others = -(log_probs.sum(dim=-1) - (-nll)) / (V - 1)
      per_token = (1 - eps) * nll + eps * others
      real = target != pad_id
      return (per_token * real).sum() / real.sum()
  """))
M("s2_ch07d_pad_not_excluded", CH07, A, "step_dropped",
  "averages over every position, padding included",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      return per_token.mean()
  """))
M("s2_ch07d_divide_by_all", CH07, A, "other",
  "zeroes the pad positions but divides by B*T instead of the number of real tokens",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      real = target != pad_id
      return (per_token * real).sum() / target.numel()
  """))
M("s2_ch07d_log_softmax_dim1", CH07, A, "wrong_axis_reduction",
  "takes the log_softmax over dim=1 (time) instead of the vocabulary",
  fn(LS, """
      log_probs = logits.log_softmax(dim=1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      real = target != pad_id
      return (per_token * real).sum() / real.sum()
  """))
M("s2_ch07d_raw_logits", CH07, A, "step_dropped",
  "uses the raw logits as log-probabilities (no log_softmax)",
  fn(LS, """
      log_probs = logits
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      real = target != pad_id
      return (per_token * real).sum() / real.sum()
  """))
M("s2_ch07d_eps_weights_swapped", CH07, A, "roles_swapped",
  "weights the true-class term by eps and the uniform term by 1 - eps",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = eps * nll + (1 - eps) * (-log_probs.mean(dim=-1))
      real = target != pad_id
      return (per_token * real).sum() / real.sum()
  """))
M("s2_ch07d_pad_zero_hardcoded", CH07, A, "edge_case",
  "excludes target == 0 instead of target == pad_id",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      real = target != 0
      return (per_token * real).sum() / real.sum()
  """))
M("s2_ch07d_sum_not_mean", CH07, A, "other",
  "returns the sum over the real tokens instead of the mean",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      per_token = (1 - eps) * nll + eps * (-log_probs.mean(dim=-1))
      real = target != pad_id
      return (per_token * real).sum()
  """))
M("s2_ch07d_uniform_over_real_classes", CH07, A, "other",
  "leaves the pad class out of the uniform part (eps / (V-1) over the non-pad classes)",
  fn(LS, """
      log_probs = logits.log_softmax(dim=-1)
      nll = -log_probs.gather(-1, target[..., None])[..., 0]
      keep = torch.ones(logits.shape[-1], dtype=torch.bool)
      keep[pad_id] = False
      uniform = -log_probs[..., keep].mean(dim=-1)
      per_token = (1 - eps) * nll + eps * uniform
      real = target != pad_id
      return (per_token * real).sum() / real.sum()
  """))

# =============================================================================== ch07 (e) greedy decoding
A = "check_greedy_decode"
GD_HEAD = "@torch.no_grad()\ndef greedy_decode(model, src, bos_id, eos_id, max_len):"
GD_OK = """
memory = model.encode(src).out
B = src.shape[0]
tokens = torch.full((B, 1), bos_id, dtype=torch.long)
done = torch.zeros(B, dtype=torch.bool)
for _ in range(max_len):
    hidden = model.decode(tokens, memory, src).out[:, -1]
    next_id = model.out_proj(hidden).argmax(dim=-1)
    next_id = next_id.masked_fill(done, model.config.pad_id)
    tokens = torch.cat([tokens, next_id[:, None]], dim=1)
    done |= next_id == eos_id
    if done.all():
        break
return tokens
"""


def gd(*replacements: tuple[str, str]) -> str:
    body = textwrap.dedent(GD_OK).strip("\n")
    for old, new in replacements:
        assert old in body, old
        body = body.replace(old, new)
    return GD_HEAD + "\n" + textwrap.indent(body, "    ") + "\n"


M("s2_ch07e_bos_dropped", CH07, A, "edge_case",
  "returns only the generated tokens, without the bos column",
  gd(("return tokens", "return tokens[:, 1:]")))
M("s2_ch07e_first_position", CH07, A, "other",
  "reads the scores of the first position instead of the last",
  gd((".out[:, -1]", ".out[:, 0]")))
M("s2_ch07e_no_pad_after_eos", CH07, A, "step_dropped",
  "keeps generating in rows that already produced eos (no padding)",
  gd(("    next_id = next_id.masked_fill(done, model.config.pad_id)\n", "")))
M("s2_ch07e_stop_at_first_eos", CH07, A, "other",
  "stops as soon as any row produces eos",
  gd(("if done.all():", "if done.any():")))
M("s2_ch07e_argmax_of_hidden", CH07, A, "step_dropped",
  "takes the argmax of the decoder's hidden vector, forgetting out_proj",
  gd(("model.out_proj(hidden).argmax(dim=-1)", "hidden.argmax(dim=-1)")))
M("s2_ch07e_pad_zero_hardcoded", CH07, A, "edge_case",
  "fills finished rows with 0 instead of model.config.pad_id",
  gd(("masked_fill(done, model.config.pad_id)", "masked_fill(done, 0)")))
M("s2_ch07e_one_step_short", CH07, A, "edge_case",
  "loops range(max_len - 1): one token fewer than allowed",
  gd(("range(max_len)", "range(max_len - 1)")))
M("s2_ch07e_start_from_eos", CH07, A, "roles_swapped",
  "starts the decoder from eos_id (thinking 'end of the source') instead of bos_id",
  gd(("torch.full((B, 1), bos_id", "torch.full((B, 1), eos_id")))
M("s2_ch07e_eos_check_before_fill", CH07, A, "step_reordered",
  "marks rows done before padding, so the eos token itself is replaced by pad",
  gd(("    next_id = next_id.masked_fill(done, model.config.pad_id)\n", ""),
     ("    tokens = torch.cat([tokens, next_id[:, None]], dim=1)\n    done |= next_id == eos_id",
      "    done |= next_id == eos_id\n    next_id = next_id.masked_fill(done, model.config.pad_id)\n    tokens = torch.cat([tokens, next_id[:, None]], dim=1)")))

# =============================================================================== ch08 (a) embeddings
A = "check_bert_embeddings"
EMB_INIT = '''
class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, max_len: int = 512, n_segments: int = 2, dropout: float = 0.1):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.segment_embeddings = nn.Embedding(n_segments, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, segment_ids=None):
'''


def emb(body: str) -> str:
    return textwrap.dedent(EMB_INIT).strip("\n") + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "        ") + "\n"


M("s2_ch08a_no_norm", CH08, A, "step_dropped",
  "forgets the LayerNorm",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return self.dropout(x)
  """))
M("s2_ch08a_positions_from_1", CH08, A, "edge_case",
  "numbers the positions 1..T",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(1, input_ids.shape[1] + 1, device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return self.dropout(self.norm(x))
  """))
M("s2_ch08a_norm_before_position", CH08, A, "step_reordered",
  "normalises word + segment and adds the positions after the LayerNorm",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.norm(self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids))
      return self.dropout(x + self.position_embeddings(pos))
  """))
M("s2_ch08a_default_segment_one", CH08, A, "edge_case",
  "fills missing segment ids with ones",
  emb("""
      if segment_ids is None:
          segment_ids = torch.ones_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return self.dropout(self.norm(x))
  """))
M("s2_ch08a_dropout_before_norm", CH08, A, "step_reordered",
  "applies the dropout before the LayerNorm",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return self.norm(self.dropout(x))
  """))
M("s2_ch08a_positions_by_ids", CH08, A, "roles_swapped",
  "looks the position table up with the token ids",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(input_ids)
      return self.dropout(self.norm(x))
  """))
M("s2_ch08a_segments_ignored", CH08, A, "step_dropped",
  "always uses segment 0, ignoring the segment_ids passed in",
  emb("""
      segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return self.dropout(self.norm(x))
  """))
M("s2_ch08a_functional_dropout", CH08, A, "other",
  "uses F.dropout(x, 0.1), which drops even in eval mode",
  emb("""
      if segment_ids is None:
          segment_ids = torch.zeros_like(input_ids)
      pos = torch.arange(input_ids.shape[1], device=input_ids.device)
      x = self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + self.position_embeddings(pos)
      return F.dropout(self.norm(x), 0.1)
  """))

# =============================================================================== ch08 (b) mask_tokens
A = "check_mask_tokens"
MT_HEAD = "def mask_tokens(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None):"
MT_OK = """
chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
u = torch.rand(input_ids.shape, generator=generator)
random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
return inputs, labels
"""


def mt(body: str) -> str:
    return MT_HEAD + "\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


M("s2_ch08b_in_place", CH08, A, "other",
  "writes the replacements into input_ids in place and returns it",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      input_ids[chosen & (u < 0.8)] = mask_id
      rnd = chosen & (u >= 0.8) & (u < 0.9)
      input_ids[rnd] = random_ids[rnd]
      return input_ids, labels
  """))
M("s2_ch08b_specials_chosen", CH08, A, "step_dropped",
  "never excludes the special tokens",
  mt("""
      chosen = torch.rand(input_ids.shape, generator=generator) < p
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_labels_inverted", CH08, A, "mask_flip",
  "keeps the original token where NOT chosen and -100 at the chosen positions",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, torch.full_like(input_ids, -100), input_ids)
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_no_unchanged_case", CH08, A, "other",
  "replaces every chosen token not masked by a random one (80/20/0)",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_randint_no_generator", CH08, A, "other",
  "draws the random ids without the generator (not reproducible)",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_labels_after_masking", CH08, A, "step_reordered",
  "builds the labels from the corrupted inputs (labels hold mask_id / random ids)",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      labels = torch.where(chosen, inputs, torch.full_like(input_ids, -100))
      return inputs, labels
  """))
M("s2_ch08b_p_hardcoded", CH08, A, "edge_case",
  "uses 0.15 instead of the argument p",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < 0.15) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_mask_id_hardcoded", CH08, A, "edge_case",
  "writes the book's [MASK] id 4 instead of mask_id",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, 4), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_random_skips_specials", CH08, A, "other",
  "draws random replacement ids from range(5, vocab_size) (skipping the special ids) instead of range(vocab_size)",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) < p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(5, vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))
M("s2_ch08b_select_not_prob", CH08, A, "other",
  "chooses with rand > p (85% chosen) instead of rand < p",
  mt("""
      chosen = (torch.rand(input_ids.shape, generator=generator) > p) & ~special_mask
      labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
      u = torch.rand(input_ids.shape, generator=generator)
      random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
      inputs = torch.where(chosen & (u < 0.8), torch.full_like(input_ids, mask_id), input_ids)
      inputs = torch.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, inputs)
      return inputs, labels
  """))

# =============================================================================== ch08 (c) MLM head
A = "check_mlm_head"
HEAD_INIT_OK = """
vocab_size = word_embeddings.weight.shape[0]
self.dense = nn.Linear(d_model, d_model)
self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
self.decoder = nn.Linear(d_model, vocab_size, bias=False)
self.decoder.weight = word_embeddings.weight
self.bias = nn.Parameter(torch.zeros(vocab_size))
"""
HEAD_FWD_OK = """
h = self.norm(F.gelu(self.dense(hidden)))
return self.decoder(h) + self.bias
"""


def head(init: str = HEAD_INIT_OK, fwd: str = HEAD_FWD_OK) -> str:
    return ("class MaskedLMHead(nn.Module):\n"
            "    def __init__(self, d_model, word_embeddings, layer_norm_eps=1e-12):\n"
            "        super().__init__()\n" + textwrap.indent(textwrap.dedent(init).strip("\n"), "        ") + "\n\n"
            "    def forward(self, hidden):\n" + textwrap.indent(textwrap.dedent(fwd).strip("\n"), "        ") + "\n")


M("s2_ch08c_copy_not_tied", CH08, A, "other",
  "gives the decoder a copy of the embedding matrix (nn.Parameter(weight.clone())) instead of the same Parameter",
  head(init=HEAD_INIT_OK.replace("self.decoder.weight = word_embeddings.weight",
                                 "self.decoder.weight = nn.Parameter(word_embeddings.weight.detach().clone())")))
M("s2_ch08c_gelu_after_norm", CH08, A, "step_reordered",
  "applies the GELU after the LayerNorm",
  head(fwd="""
      h = F.gelu(self.norm(self.dense(hidden)))
      return self.decoder(h) + self.bias
  """))
M("s2_ch08c_tanh_gelu", CH08, A, "other",
  "uses the tanh approximation of GELU",
  head(fwd="""
      h = self.norm(F.gelu(self.dense(hidden), approximate="tanh"))
      return self.decoder(h) + self.bias
  """))
M("s2_ch08c_default_ln_eps", CH08, A, "other",
  "ignores layer_norm_eps (nn.LayerNorm's default 1e-5)",
  head(init=HEAD_INIT_OK.replace("nn.LayerNorm(d_model, eps=layer_norm_eps)", "nn.LayerNorm(d_model)")))
M("s2_ch08c_bias_not_added", CH08, A, "step_dropped",
  "creates the output bias but never adds it",
  head(fwd="""
      h = self.norm(F.gelu(self.dense(hidden)))
      return self.decoder(h)
  """))
M("s2_ch08c_no_norm", CH08, A, "step_dropped",
  "skips the LayerNorm in forward",
  head(fwd="""
      h = F.gelu(self.dense(hidden))
      return self.decoder(h) + self.bias
  """))
M("s2_ch08c_relu", CH08, A, "other",
  "uses relu instead of GELU",
  head(fwd="""
      h = self.norm(F.relu(self.dense(hidden)))
      return self.decoder(h) + self.bias
  """))
M("s2_ch08c_data_shared", CH08, A, "other",
  "ties by sharing .data (same storage, separate Parameter: gradients not shared)",
  head(init=HEAD_INIT_OK.replace("self.decoder.weight = word_embeddings.weight",
                                 "self.decoder.weight.data = word_embeddings.weight.data")))
M("s2_ch08c_random_bias", CH08, A, "other",
  "initialises the output bias with torch.randn instead of zeros",
  head(init=HEAD_INIT_OK.replace("torch.zeros(vocab_size)", "torch.randn(vocab_size)")))

# =============================================================================== ch08 (d) key map
A = "check_hf_key_map"
KM_OK = '''
def hf_key_map(n_layers):
    keys = {
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
    layer = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "norm1": "attention.output.LayerNorm",
        "ffn.linear1": "intermediate.dense",
        "ffn.linear2": "output.dense",
        "norm2": "output.LayerNorm",
    }
    for i in range(n_layers):
        for ours_name, hf_name in layer.items():
            for kind in ("weight", "bias"):
                keys[f"bert.encoder.layers.{i}.{ours_name}.{kind}"] = f"bert.encoder.layer.{i}.{hf_name}.{kind}"
    return keys
'''


def km(*replacements: tuple[str, str]) -> str:
    src = textwrap.dedent(KM_OK).strip("\n") + "\n"
    for old, new in replacements:
        assert old in src, old
        src = src.replace(old, new)
    return src


M("s2_ch08d_decoder_missing", CH08, A, "step_dropped",
  "leaves out mlm.decoder.weight ('it is tied anyway')",
  km(('        "mlm.decoder.weight": "cls.predictions.decoder.weight",\n', "")))
M("s2_ch08d_query_key_swapped", CH08, A, "roles_swapped",
  "maps q_proj to attention.self.key and k_proj to attention.self.query",
  km(('"self_attn.q_proj": "attention.self.query"', '"self_attn.q_proj": "attention.self.key"'),
     ('"self_attn.k_proj": "attention.self.key"', '"self_attn.k_proj": "attention.self.query"')))
M("s2_ch08d_norms_swapped", CH08, A, "roles_swapped",
  "maps norm1 to output.LayerNorm and norm2 to attention.output.LayerNorm",
  km(('"norm1": "attention.output.LayerNorm"', '"norm1": "output.LayerNorm"'),
     ('"norm2": "output.LayerNorm"', '"norm2": "attention.output.LayerNorm"')))
M("s2_ch08d_one_layer_hardcoded", CH08, A, "edge_case",
  "builds the per-layer entries for layer 0 only",
  km(("for i in range(n_layers):", "for i in range(1):")))
M("s2_ch08d_hf_layers_plural", CH08, A, "other",
  "writes bert.encoder.layers.{i} on the transformers side too",
  km(('f"bert.encoder.layer.{i}.{hf_name}.{kind}"', 'f"bert.encoder.layers.{i}.{hf_name}.{kind}"')))
M("s2_ch08d_ffn_swapped", CH08, A, "roles_swapped",
  "maps ffn.linear1 to output.dense and ffn.linear2 to intermediate.dense",
  km(('"ffn.linear1": "intermediate.dense"', '"ffn.linear1": "output.dense"'),
     ('"ffn.linear2": "output.dense"', '"ffn.linear2": "intermediate.dense"')))
M("s2_ch08d_segment_name_kept", CH08, A, "other",
  "keeps segment_embeddings on the transformers side (no token_type_embeddings)",
  km(('"bert.embeddings.token_type_embeddings.weight"', '"bert.embeddings.segment_embeddings.weight"')))
M("s2_ch08d_weights_only", CH08, A, "step_dropped",
  "maps only the .weight of each layer's parameters, no biases",
  km(('for kind in ("weight", "bias"):', 'for kind in ("weight",):')))
M("s2_ch08d_layers_from_1", CH08, A, "edge_case",
  "numbers the layers 1..n_layers",
  km(("for i in range(n_layers):", "for i in range(1, n_layers + 1):")))
M("s2_ch08d_out_proj_to_output_dense", CH08, A, "roles_swapped",
  "maps the attention's out_proj to the FFN's output.dense (and the FFN's linear2 to attention.output.dense)",
  km(('"self_attn.out_proj": "attention.output.dense"', '"self_attn.out_proj": "output.dense"'),
     ('"ffn.linear2": "output.dense"', '"ffn.linear2": "attention.output.dense"')))


# =============================================================================== held back
# Written with the set but not measured in set2_baseline.json: the measurement had to fit a short
# window on a shared 2-core machine, so each check keeps 4-6 mistakes of different flavours.  The
# two -inf variants of ch06 (d) were dropped for a different reason: with the masked weights set to
# 0 afterwards they are correct (masked_fill's backward stops the NaN), so they are not mistakes.
NOT_MISTAKES = {"s2_ch06d_neg_inf", "s2_ch06d_nan_to_num"}
HELD_BACK = {
    "s2_ch01a_sqrt_scale", "s2_ch01a_mean_context",
    "s2_ch01b_mask_always", "s2_ch01b_softmax_dim1_of_3d",
    "s2_ch01c_W1_on_keys", "s2_ch01c_relu",
    "s2_ch01d_no_tanh", "s2_ch01d_softmax_logits", "s2_ch01d_logits_from_h",
    "s2_ch02a_weight_transposed",
    "s2_ch02b_tuple_order", "s2_ch02b_weights_transposed_in_sum",
    "s2_ch02c_clamp_max",
    "s2_ch02d_tuple_order",
    "s2_ch03a_softmax_queries", "s2_ch03a_multiply_sqrt",
    "s2_ch03b_tuple_order", "s2_ch03b_mask_by_multiplication",
    "s2_ch03c_uniform", "s2_ch03c_std", "s2_ch03c_scaled",
    "s2_ch03d_mean", "s2_ch03d_total_scalar",
    "s2_ch04a_split_D_equals_H",
    "s2_ch04a_merge_transpose_2_3", "s2_ch04a_merge_cat_wrong_unbind",
    "s2_ch04b_single_head", "s2_ch04b_mask_flip", "s2_ch04b_no_bias",
    "s2_ch04c_bias_order", "s2_ch04c_out_from_v", "s2_ch04c_one_head",
    "s2_ch04d_tuple_order", "s2_ch04d_int_masks",
    "s2_ch05a_multiply_frequency", "s2_ch05a_float32",
    "s2_ch05b_sin_cos_swapped",
    "s2_ch05c_positions_from_1",
    "s2_ch05d_cos_sin_swapped", "s2_ch05d_frequency_inverted",
    "s2_ch06a_axes_at_end", "s2_ch06a_query_axis",
    "s2_ch06b_compare_swapped",
    "s2_ch06c_triu", "s2_ch06c_batch_size_hardcoded",
    "s2_ch07a_attention_twice", "s2_ch07a_norm1_twice", "s2_ch07a_no_dropout2",
    "s2_ch07b_masks_swapped", "s2_ch07b_norms_2_3_swapped",
    "s2_ch07c_warmup_power", "s2_ch07c_no_dmodel",
    "s2_ch07d_log_softmax_dim1", "s2_ch07d_raw_logits", "s2_ch07d_sum_not_mean", "s2_ch07d_uniform_over_real_classes",
    "s2_ch07e_argmax_of_hidden", "s2_ch07e_one_step_short", "s2_ch07e_start_from_eos",
    "s2_ch08a_dropout_before_norm", "s2_ch08a_positions_by_ids", "s2_ch08a_segments_ignored",
    "s2_ch08b_randint_no_generator", "s2_ch08b_p_hardcoded", "s2_ch08b_random_skips_specials", "s2_ch08b_select_not_prob",
    "s2_ch08c_no_norm", "s2_ch08c_relu", "s2_ch08c_default_ln_eps", "s2_ch08c_random_bias",
    "s2_ch08d_ffn_swapped", "s2_ch08d_segment_name_kept", "s2_ch08d_weights_only", "s2_ch08d_layers_from_1",
    "s2_ch08d_out_proj_to_output_dense",
}
_ALL_IDS = {m["id"] for m in MISTAKES}
assert (HELD_BACK | NOT_MISTAKES) <= _ALL_IDS, sorted((HELD_BACK | NOT_MISTAKES) - _ALL_IDS)
RESERVE = [m for m in MISTAKES if m["id"] in HELD_BACK]
MISTAKES = [m for m in MISTAKES if m["id"] not in HELD_BACK | NOT_MISTAKES]

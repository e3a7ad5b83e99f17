"""The ch08_bert checks pass on right answers and fail, with the right hint, on planted mistakes."""

import pytest
import torch
import torch.nn.functional as F

from torch import nn

from course_lib.bert import BertEmbeddings, MaskedLMHead, hf_key_map, mask_tokens
from course_lib.checks.ch08_bert import (
    check_bert_embeddings,
    check_bert_embeddings_other_sizes,
    check_hf_key_map,
    check_hf_key_map_three_layers,
    check_mask_tokens,
    check_mask_tokens_other_rate,
    check_mlm_head,
)

from check_cases import fails_with, planted_mistake_tests

# ------------------------------------------------------------------ (a) embeddings


class Embeddings(nn.Module):
    """The exercise's skeleton with a switchable forward."""

    mistake = None

    def __init__(self, vocab_size, d_model, max_len, n_segments, dropout):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.segment_embeddings = nn.Embedding(n_segments, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids, segment_ids=None):
        B, T = input_ids.shape
        m = self.mistake
        if segment_ids is None:
            segment_ids = torch.ones_like(input_ids) if m == "default_ones" else torch.zeros_like(input_ids)
        word = self.word_embeddings(input_ids)
        seg = self.segment_embeddings(segment_ids)
        pos = self.position_embeddings(torch.arange(B if m == "by_batch" else T))
        if m == "by_batch":
            pos = pos[:, None, :]
        if m == "no_segment":
            x = word + pos
        elif m == "no_position":
            x = word + seg
        else:
            x = word + seg + pos
        if m == "norm_first":
            return self.norm(word) + seg + pos
        if m == "detached":
            x = x.detach()
        return self.dropout(x if m == "no_norm" else self.norm(x))


def _variant(mistake):
    return type(f"Embeddings_{mistake}", (Embeddings,), {"mistake": mistake})


class RenamedEmbeddings(Embeddings):
    def __init__(self, vocab_size, d_model, max_len, n_segments, dropout):
        super().__init__(vocab_size, d_model, max_len, n_segments, dropout)
        self.tok_emb = self.word_embeddings
        del self.word_embeddings

    def forward(self, input_ids, segment_ids=None):
        raise AssertionError("never reached")


def test_embeddings_pass():
    check_bert_embeddings(Embeddings)
    check_bert_embeddings_other_sizes(Embeddings)
    check_bert_embeddings(lambda vocab_size, d_model, max_len, n_segments, dropout: BertEmbeddings(vocab_size, d_model, max_len, n_segments, dropout))


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("no_segment", ["segment embedding is missing"]),
        ("no_position", ["position embedding is missing"]),
        ("no_norm", ["LayerNorm is missing"]),
        ("norm_first", ["*sum* of all three"]),
        ("by_batch", ["not the batch axis"]),
        ("default_ones", ["without segment_ids", "segment 0"]),
        ("detached", ["no gradient reached word_embeddings.weight"]),
    ],
)
def test_embeddings_fail(mistake, words):
    fails_with(check_bert_embeddings, _variant(mistake), *words)


def test_embeddings_fail_on_renamed_parameters():
    fails_with(check_bert_embeddings, RenamedEmbeddings, "no parameter 'word_embeddings.weight'", "keep the names")


def test_embeddings_hidden_check_catches_a_hard_coded_segment_count():
    class TwoSegments(Embeddings):
        def __init__(self, vocab_size, d_model, max_len, n_segments, dropout):
            super().__init__(vocab_size, d_model, max_len, 2, dropout)

    check_bert_embeddings(TwoSegments)
    fails_with(check_bert_embeddings_other_sizes, TwoSegments, "segment_embeddings.weight: expected shape (3, 8)")


# ------------------------------------------------------------------ (b) masking


def masking(mistake=None):
    def fn(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None):
        if mistake == "fixed_p":
            p = 0.15
        gen = None if mistake == "global_rng" else generator
        chosen = torch.rand(input_ids.shape, generator=gen) < p
        if mistake != "specials":
            chosen &= ~special_mask
        u = torch.rand(input_ids.shape, generator=gen)
        to_mask = chosen & (u < (1.0 if mistake == "all_mask" else 0.8))
        to_random = chosen & (u >= 0.8) & (u < (0.8 if mistake in ("no_random", "all_mask") else 0.9))
        random_ids = torch.randint(vocab_size, input_ids.shape, generator=gen)
        target = input_ids if mistake == "in_place" else input_ids.clone()
        target[to_mask] = mask_id
        target[to_random] = random_ids[to_random]
        if mistake == "label_everything":
            labels = input_ids.clone()
        elif mistake == "label_corrupted":
            labels = torch.where(chosen, target, torch.full_like(target, -100))
        elif mistake == "label_only_masked":
            labels = torch.where(to_mask, input_ids, torch.full_like(input_ids, -100))
        else:
            labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
        if mistake == "in_place":
            labels = torch.where(chosen, labels, torch.full_like(labels, -100))
        return target, labels

    return fn


def test_mask_tokens_pass():
    check_mask_tokens(mask_tokens)
    check_mask_tokens_other_rate(mask_tokens)
    check_mask_tokens(masking())
    check_mask_tokens_other_rate(masking())


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("all_mask", ["every chosen token became [MASK]"]),
        ("no_random", ["random replacement is missing"]),
        ("specials", ["special positions", "special_mask is True"]),
        ("label_everything", ["every position has a label"]),
        ("label_corrupted", ["corrupted input"]),
        ("label_only_masked", ["needs a label"]),
        ("global_rng", ["generator=generator"]),
        ("in_place", ["in place"]),
    ],
)
def test_mask_tokens_fail(mistake, words):
    fails_with(check_mask_tokens, masking(mistake), *words)


def test_mask_tokens_visible_check_catches_a_fixed_rate_and_mask_id():
    """The instructions say to use the arguments p and mask_id: the visible check tries others (issue 27)."""
    fails_with(check_mask_tokens, masking("fixed_p"), "use the argument p=0.3")
    fails_with(check_mask_tokens_other_rate, masking("fixed_p"), "use the argument p=0.4")

    def fixed_mask_id(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None):
        return mask_tokens(input_ids, special_mask, 4, vocab_size, p, generator)

    fails_with(check_mask_tokens, fixed_mask_id, "use the mask_id argument")
    fails_with(check_mask_tokens_other_rate, fixed_mask_id, "use the mask_id argument")


# ------------------------------------------------------------------ (c) MLM head


class Head(nn.Module):
    mistake = None

    def __init__(self, d_model, word_embeddings, layer_norm_eps=1e-12):
        super().__init__()
        V = word_embeddings.weight.shape[0]
        self.dense = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.decoder = nn.Linear(d_model, V, bias=False)
        if self.mistake == "copy":
            with torch.no_grad():
                self.decoder.weight.copy_(word_embeddings.weight)  # a copy: not tied
        else:
            self.decoder.weight = word_embeddings.weight
        self.bias = nn.Parameter(torch.zeros(V))
        self.embedding = word_embeddings if self.mistake == "detached" else None

    def forward(self, hidden):
        m = self.mistake
        h = self.dense(hidden)
        h = {"relu": F.relu, "tanh": lambda t: F.gelu(t, approximate="tanh")}.get(m, F.gelu)(h)
        if m != "no_norm":
            h = self.norm(h)
        if m == "detached":
            return h @ self.embedding.weight.detach().T + self.bias
        logits = self.decoder(h)
        return logits if m == "no_bias" else logits + self.bias


def _head(mistake):
    return type(f"Head_{mistake}", (Head,), {"mistake": mistake})


def test_mlm_head_pass():
    check_mlm_head(Head)
    check_mlm_head(MaskedLMHead)


@pytest.mark.parametrize(
    "mistake, words",
    [
        ("copy", ["holds a copy"]),
        ("relu", ["not ReLU"]),
        ("tanh", ["exact (erf) GELU"]),
        ("no_norm", ["LayerNorm after the GELU is missing"]),
        ("no_bias", ["output bias"]),
        ("detached", ["no gradient reached word_embeddings.weight"]),
    ],
)
def test_mlm_head_fails(mistake, words):
    fails_with(check_mlm_head, _head(mistake), *words)


def test_mlm_head_fails_on_an_extra_bias():
    class ExtraBias(Head):
        def __init__(self, d_model, word_embeddings, layer_norm_eps=1e-12):
            super().__init__(d_model, word_embeddings, layer_norm_eps)
            self.decoder_bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))  # unused, but owned

    fails_with(check_mlm_head, ExtraBias, "second bias vector")


# ------------------------------------------------------------------ (d) key map


def edited_map(edit):
    def fn(n_layers):
        m = dict(hf_key_map(n_layers))
        edit(m)
        return m

    return fn


def _swap(a, b):
    def edit(m):
        for kind in ("weight", "bias"):
            ka, kb = f"bert.encoder.layers.1.{a}.{kind}", f"bert.encoder.layers.1.{b}.{kind}"
            m[ka], m[kb] = m[kb], m[ka]

    return edit


def test_key_map_pass():
    check_hf_key_map(hf_key_map)
    check_hf_key_map_three_layers(hf_key_map)
    # the tied decoder may point at the embedding's name as well
    check_hf_key_map(edited_map(lambda m: m.update({"mlm.decoder.weight": "bert.embeddings.word_embeddings.weight"})))


@pytest.mark.parametrize(
    "edit, words",
    [
        (_swap("self_attn.q_proj", "self_attn.k_proj"), ["logits after loading", "query/key/value"]),
        (_swap("norm1", "norm2"), ["logits after loading", "norm1"]),
        (_swap("ffn.linear1", "ffn.linear2"), ["shape", "FFN's first layer"]),
        (lambda m: m.update({k: v.replace("encoder.layer.", "encoder.layers.") for k, v in m.items()}), ["not keys of", "(layer, not layers)"]),
        (lambda m: [m.pop(k) for k in [k for k in m if k.startswith("mlm.")]], ["lacks", "mlm."]),
        (lambda m: m.update({"bert.embeddings.segment_embeddings.weight": "bert.embeddings.position_embeddings.weight"}), ["shape"]),
    ],
)
def test_key_map_fails(edit, words):
    fails_with(check_hf_key_map, edited_map(edit), *words)


def test_key_map_hidden_check_catches_a_hard_coded_layer_count():
    def two_layers_only(n_layers):
        return hf_key_map(2)

    check_hf_key_map(two_layers_only)
    fails_with(check_hf_key_map_three_layers, two_layers_only, "lacks", "layers.2")


# ------------------------------------------------------------------ the tables (issue 17: 6+ planted mistakes per check)


class TwoSegments(Embeddings):
    def __init__(self, vocab_size, d_model, max_len, n_segments, dropout):
        super().__init__(vocab_size, d_model, max_len, 2, dropout)


class PositionByToken(Embeddings):
    def forward(self, input_ids, segment_ids=None):
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        pos = self.position_embeddings(input_ids.clamp(max=self.position_embeddings.num_embeddings - 1))
        return self.dropout(self.norm(self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + pos))


class PositionsFromOne(Embeddings):
    def forward(self, input_ids, segment_ids=None):
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)
        pos = self.position_embeddings(torch.arange(1, input_ids.shape[1] + 1))
        return self.dropout(self.norm(self.word_embeddings(input_ids) + self.segment_embeddings(segment_ids) + pos))


EMBEDDING_MISTAKES = [
    (_variant("no_segment"), "segment embedding is missing"),
    (_variant("no_position"), "position embedding is missing"),
    (_variant("no_norm"), "LayerNorm is missing"),
    (_variant("norm_first"), "*sum* of all three"),
    (_variant("default_ones"), "segment 0"),
    (_variant("detached"), "no gradient reached word_embeddings.weight"),
    (PositionByToken, "not by the token id"),
    (RenamedEmbeddings, "keep the names"),
]


def fixed_mask_id(input_ids, special_mask, mask_id, vocab_size, p=0.15, generator=None):
    return mask_tokens(input_ids, special_mask, 4, vocab_size, p, generator)


MASKING_MISTAKES = [
    (masking("all_mask"), "every chosen token became [MASK]"),
    (masking("no_random"), "random replacement is missing"),
    (masking("specials"), "special_mask is True"),
    (masking("label_everything"), "every position has a label"),
    (masking("label_corrupted"), "corrupted input"),
    (masking("label_only_masked"), "needs a label"),
    (masking("global_rng"), "generator=generator"),
    (masking("in_place"), "in place"),
]


class ExtraBiasHead(Head):
    def __init__(self, d_model, word_embeddings, layer_norm_eps=1e-12):
        super().__init__(d_model, word_embeddings, layer_norm_eps)
        self.decoder_bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))  # unused, but owned


class NormThenGelu(Head):
    def forward(self, hidden):
        return self.decoder(F.gelu(self.norm(self.dense(hidden)))) + self.bias


def _rename_values(old, new):
    return lambda m: m.update({k: v.replace(old, new) for k, v in m.items()})


KEY_MAP_MISTAKES = [
    (edited_map(_swap("self_attn.q_proj", "self_attn.k_proj")), "query/key/value"),
    (edited_map(_swap("norm1", "norm2")), "norm1"),
    (edited_map(_swap("ffn.linear1", "ffn.linear2")), "FFN's first layer"),
    (edited_map(_rename_values("encoder.layer.", "encoder.layers.")), "(layer, not layers)"),
    (edited_map(_rename_values("token_type_embeddings", "segment_embeddings")), "token_type_embeddings"),
    (edited_map(_rename_values("LayerNorm.weight", "LayerNorm.gamma")), "'weight', not 'gamma'"),
    (edited_map(lambda m: [m.pop(k) for k in [k for k in m if k.startswith("mlm.")]]), "lacks"),
]

CASES = [
    (check_bert_embeddings, Embeddings, EMBEDDING_MISTAKES + [
        (_variant("by_batch"), "not the batch axis"),
        (PositionsFromOne, "positions start at 0"),
    ]),
    (check_bert_embeddings_other_sizes, Embeddings, EMBEDDING_MISTAKES + [(TwoSegments, "segment_embeddings.weight: expected shape (3, 8)")]),
    (check_mask_tokens, mask_tokens, MASKING_MISTAKES),
    (check_mask_tokens_other_rate, mask_tokens, MASKING_MISTAKES + [
        (masking("fixed_p"), "use the argument p=0.4"),
        (fixed_mask_id, "use the mask_id argument"),
    ]),
    (check_mlm_head, MaskedLMHead, [
        (_head("copy"), "holds a copy"),
        (_head("relu"), "not ReLU"),
        (_head("tanh"), "exact (erf) GELU"),
        (_head("no_norm"), "LayerNorm after the GELU is missing"),
        (_head("no_bias"), "output bias"),
        (_head("detached"), "no gradient reached word_embeddings.weight"),
        (ExtraBiasHead, "second bias vector"),
        (NormThenGelu, "normalised before the activation"),
    ]),
    (check_hf_key_map, hf_key_map, KEY_MAP_MISTAKES),
    (check_hf_key_map_three_layers, hf_key_map, KEY_MAP_MISTAKES + [(lambda n_layers: hf_key_map(2), "layers.2")]),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(CASES)

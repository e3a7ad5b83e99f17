"""course_lib.bert: parity with transformers' BERT, parameter counts, masking statistics, NSP pairs."""

import random

import pytest
import torch

transformers = pytest.importorskip("transformers")

from course_lib.bert import (  # noqa: E402
    IGNORE_INDEX,
    BertConfig,
    BertEmbeddings,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    bert_parameter_count,
    count_parameters,
    from_hf_config,
    hf_key_map,
    load_hf_state_dict,
    make_nsp_pair,
    mask_tokens,
    special_tokens_mask,
    to_hf_config,
    to_hf_state_dict,
)

# Hugging Face's own BERT test sizes, deliberately all different: vocab 99, hidden 32,
# 4 heads, intermediate 37, 2 layers; batch 3, sequence 7.
TINY = BertConfig(vocab_size=99, d_model=32, n_layers=2, n_heads=4, d_ff=37, max_len=64, n_segments=2, dropout=0.1)
B, T = 3, 7


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, TINY.vocab_size, (B, T), generator=g)
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[:, 4:] = 1
    attention_mask = torch.ones(B, T, dtype=torch.long)
    attention_mask[1, 5:] = 0  # padding at the end of two rows
    attention_mask[2, 3:] = 0
    ids[attention_mask == 0] = TINY.pad_id
    return ids, segments, attention_mask


def _perturb(model):
    """Random LayerNorm gains/biases and non-zero biases, so a swapped or skipped parameter shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def test_logits_equal_transformers_after_loading_through_key_map():
    hf = _perturb(transformers.BertForMaskedLM(to_hf_config(TINY))).eval()
    ours = load_hf_state_dict(BertForMaskedLM(TINY), hf.state_dict()).eval()
    ids, segments, attention_mask = _inputs()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments).logits
        got = ours(ids, segments, attention_mask).logits
    assert got.shape == (B, T, TINY.vocab_size)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_transformers_logits_equal_ours_after_export_through_key_map():
    ours = _perturb(BertForMaskedLM(TINY)).eval()
    hf = transformers.BertForMaskedLM(to_hf_config(TINY)).eval()
    result = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert not result.unexpected_keys
    assert all("position_ids" in k or "token_type_ids" in k for k in result.missing_keys)  # buffers only
    assert hf.cls.predictions.decoder.weight is hf.bert.embeddings.word_embeddings.weight  # still tied
    ids, segments, attention_mask = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            hf(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments).logits,
            ours(ids, segments, attention_mask).logits,
            atol=1e-5,
            rtol=1e-4,
        )


def test_pretraining_model_matches_transformers_both_heads():
    hf = _perturb(transformers.BertForPreTraining(to_hf_config(TINY))).eval()
    ours = load_hf_state_dict(BertForPreTraining(TINY), hf.state_dict()).eval()
    ids, segments, attention_mask = _inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments)
        out = ours(ids, segments, attention_mask)
    torch.testing.assert_close(out.mlm_logits, ref.prediction_logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.nsp_logits, ref.seq_relationship_logits, atol=1e-5, rtol=1e-4)


def test_attention_weights_match_transformers():
    hf = _perturb(transformers.BertForMaskedLM(to_hf_config(TINY))).eval()
    ours = load_hf_state_dict(BertForMaskedLM(TINY), hf.state_dict()).eval()
    ids, segments, attention_mask = _inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments, output_attentions=True).attentions
        got = ours(ids, segments, attention_mask, need_weights=True).attentions
    assert len(got) == len(ref) == TINY.n_layers
    for g, r in zip(got, ref):
        assert g.shape == (B, TINY.n_heads, T, T)
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-4)


def test_mlm_positions_gather_equals_full_logits():
    model = BertForPreTraining(TINY).eval()
    ids, segments, attention_mask = _inputs()
    positions = torch.zeros(B, T, dtype=torch.bool)
    positions[0, 1], positions[1, 3], positions[2, 2] = True, True, True
    labels = torch.where(positions, ids, torch.full_like(ids, IGNORE_INDEX))
    with torch.no_grad():
        full = model(ids, segments, attention_mask, mlm_labels=labels)
        gathered = model(ids, segments, attention_mask, mlm_labels=labels, mlm_positions=positions)
    torch.testing.assert_close(gathered.mlm_logits, full.mlm_logits[positions])
    torch.testing.assert_close(gathered.mlm_loss, full.mlm_loss)


def test_key_map_covers_every_parameter_once():
    for model, kwargs in ((BertForMaskedLM(TINY), {}), (BertForPreTraining(TINY), {"pooler": True, "nsp": True})):
        key_map = hf_key_map(TINY.n_layers, **kwargs)
        assert set(key_map) == set(model.state_dict())
        assert len(set(key_map.values())) == len(key_map)


def test_config_round_trip_and_validation():
    assert from_hf_config(to_hf_config(TINY)) == TINY
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="pad_id"):
        BertConfig(vocab_size=10, pad_id=10)


@pytest.mark.parametrize(
    "name, config, expected_millions",
    [("base", BertConfig.base(), 110), ("large", BertConfig.large(), 340)],
)
def test_parameter_counts_equal_transformers(name, config, expected_millions):
    with torch.device("meta"):  # no memory, no time: shapes only
        hf_model = transformers.BertModel(to_hf_config(config))
        hf_mlm = transformers.BertForMaskedLM(to_hf_config(config))
        ours = BertModel(config)
        ours_mlm = BertForMaskedLM(config)
    n_hf = sum(p.numel() for p in hf_model.parameters())
    assert count_parameters(ours) == n_hf == bert_parameter_count(config)
    assert count_parameters(ours_mlm) == sum(p.numel() for p in hf_mlm.parameters())
    # the paper's rounded figures: 110M (base: 109,482,240) and 340M (large: 335,141,888)
    assert abs(n_hf / 1e6 - expected_millions) / expected_millions < 0.02


def test_tied_decoder_is_the_embedding():
    model = BertForMaskedLM(TINY)
    assert model.mlm.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert count_parameters(model) == sum(p.numel() for n, p in model.named_parameters())
    assert torch.all(model.bert.embeddings.word_embeddings.weight[TINY.pad_id] == 0)  # [PAD] row starts at zero


def test_embeddings_use_segments_and_positions():
    emb = BertEmbeddings(vocab_size=11, d_model=12, max_len=9, n_segments=2, dropout=0.0).eval()
    ids = torch.tensor([[2, 5, 5, 3]])
    a = emb(ids, torch.tensor([[0, 0, 0, 0]]))
    b = emb(ids, torch.tensor([[0, 0, 1, 1]]))
    assert a.shape == (1, 4, 12)
    assert torch.allclose(a[0, :2], b[0, :2]) and not torch.allclose(a[0, 2:], b[0, 2:])
    assert not torch.allclose(a[0, 1], a[0, 2])  # same token, different position
    with pytest.raises(ValueError, match="max_len"):
        emb(torch.zeros(1, 10, dtype=torch.long))


def test_bad_inputs_raise_clear_errors():
    model = BertForMaskedLM(TINY)
    with pytest.raises(TypeError, match="integer"):
        model(torch.randn(2, 5))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))


def test_sequence_classifier_shapes_and_loss():
    model = BertForSequenceClassification(TINY, n_classes=3)
    ids, segments, attention_mask = _inputs()
    out = model(ids, segments, attention_mask, labels=torch.tensor([0, 2, 1]))
    assert out.logits.shape == (B, 3) and out.loss.ndim == 0
    out.loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None


# --------------------------------------------------------------------------- masking


def _masking_sample(seed=0, V=1000, mask_id=4):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (400, 128), generator=g)
    lengths = torch.randint(20, 129, (400,), generator=g)
    ids[torch.arange(128)[None, :] >= lengths[:, None]] = 0  # padding
    ids[:, 0] = 2  # [CLS]
    ids[torch.arange(400), lengths - 1] = 3  # [SEP]
    special = special_tokens_mask(ids, (0, 1, 2, 3, 4))
    out = mask_tokens(ids, special, mask_id=mask_id, vocab_size=V, generator=torch.Generator().manual_seed(seed + 1))
    return ids, special, out


def test_masking_statistics_15_80_10_10():
    ids, special, (inputs, labels) = _masking_sample()
    chosen = labels != IGNORE_INDEX
    n_candidates = int((~special).sum())
    assert abs(chosen.sum() / n_candidates - 0.15) < 0.005
    n = int(chosen.sum())
    masked = (inputs == 4) & chosen
    unchanged = (inputs == ids) & chosen
    random_ = chosen & ~masked & ~unchanged
    assert abs(masked.sum() / n - 0.80) < 0.01
    assert abs(unchanged.sum() / n - 0.10) < 0.01
    assert abs(random_.sum() / n - 0.10) < 0.01
    # labels hold the original token exactly where chosen; nothing else changes
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    # random replacements spread over the vocabulary
    assert inputs[random_].unique().numel() > 0.6 * int(random_.sum())  # ~450 draws from 1000 ids: mostly distinct


def test_masking_never_chooses_special_or_padding():
    ids, special, (inputs, labels) = _masking_sample(seed=3)
    assert not (labels[special] != IGNORE_INDEX).any()
    assert torch.equal(inputs[special], ids[special])


def test_masking_is_deterministic_given_a_generator():
    a = _masking_sample(seed=5)[2]
    b = _masking_sample(seed=5)[2]
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)


# --------------------------------------------------------------------------- NSP


def test_nsp_pairs_are_half_real_and_real_pairs_follow():
    # documents whose sentences are [doc, sentence] so we can see where B came from
    docs = [[[100 + d, 200 + s] for s in range(6)] for d in range(20)]
    rng = random.Random(0)
    labels = []
    for _ in range(2000):
        a, b, label = make_nsp_pair(docs, rng, max_tokens=61)
        labels.append(label)
        assert len(a) + len(b) <= 61 and len(a) >= 2 and len(b) >= 2
        a_doc, b_doc = a[-2], b[0]
        if label == 0:
            assert a_doc == b_doc and b[1] == a[-1] + 1  # B starts with the sentence right after A
        else:
            assert a_doc != b_doc  # from another document
    assert abs(sum(labels) / len(labels) - 0.5) < 0.04


def test_nsp_pairs_respect_the_length_budget():
    docs = [[list(range(30)) for _ in range(5)] for _ in range(3)]
    rng = random.Random(1)
    for _ in range(100):
        a, b, _ = make_nsp_pair(docs, rng, max_tokens=40)
        assert len(a) + len(b) <= 40 and a and b


def test_causal_lm_matches_transformers_lm_head_model():
    from course_lib.bert import BertForCausalLM

    hf = _perturb(transformers.BertLMHeadModel(to_hf_config(TINY, is_decoder=True))).eval()
    ours = load_hf_state_dict(BertForCausalLM(TINY), hf.state_dict()).eval()
    ids, segments, attention_mask = _inputs()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments)
        out = ours(ids, segments, attention_mask)
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-4)
    # causal: changing a later token leaves earlier positions' logits unchanged
    changed = ids.clone()
    changed[:, 4] = 7
    with torch.no_grad():
        later = ours(changed, segments, attention_mask).logits
    torch.testing.assert_close(later[:, :4], out.logits[:, :4])


def test_embeddings_equal_the_chapter_formula():
    # chapter 8 computes LayerNorm(token + segment + position) by hand and compares
    emb = BertEmbeddings(vocab_size=20, d_model=16, max_len=32, n_segments=2, dropout=0.0)
    ids = torch.tensor([[2, 7, 9, 3, 11, 3]])
    segments = torch.tensor([[0, 0, 0, 0, 1, 1]])
    by_hand = emb.word_embeddings(ids) + emb.segment_embeddings(segments) + emb.position_embeddings(torch.arange(6))
    by_hand = torch.nn.functional.layer_norm(by_hand, (16,), emb.norm.weight, emb.norm.bias, eps=1e-12)
    torch.testing.assert_close(emb(ids, segments), by_hand)


def test_fill_mask_returns_k_predictions_per_mask():
    from course_lib.bert import fill_mask
    from course_lib.tokenization import load_tokenizer

    tokenizer = load_tokenizer()
    model = BertForMaskedLM(BertConfig.tiny(tokenizer.vocab_size))
    preds = fill_mask(model, tokenizer, "the [MASK] barks at the [MASK] .", k=3)
    assert len(preds) == 2 and all(len(p) == 3 for p in preds)
    assert all(0 <= prob <= 1 for p in preds for _, prob in p)
    assert preds[0][0][1] >= preds[0][1][1] >= preds[0][2][1]

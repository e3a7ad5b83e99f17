"""course_lib.transformer against torch.nn.Transformer* (and BERT's layer) given the same weights.

Mask polarity is the trap: course_lib masks are True = may attend; torch's
``src_key_padding_mask``/``tgt_mask``/boolean ``attn_mask`` are True = IGNORE.
"""

import dataclasses

import pytest
import torch
from torch import nn

from course_lib.attention import MultiHeadAttention
from course_lib.masks import causal_mask, combine_masks, padding_mask, to_torch_key_padding_mask
from course_lib.transformer import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    FeedForward,
    Transformer,
    TransformerConfig,
    beam_search,
    count_parameters,
    greedy_decode,
)

from conftest import B, C, H, S, T

F_ = 20  # d_ff, deliberately not a multiple of C


@pytest.fixture(autouse=True)
def _no_torch_fastpath():
    # torch's inference fast path (eval mode) returns zeros at padded positions and
    # takes a fused kernel; the reference we compare with is the plain maths.
    old = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    yield
    torch.backends.mha.set_fastpath_enabled(old)


def pad_tokens(lengths, length, pad_id=0, vocab_size=50):
    tokens = torch.randint(1, vocab_size, (len(lengths), length))
    for b, n in enumerate(lengths):
        tokens[b, n:] = pad_id
    return tokens


# --------------------------------------------------------------------------- weight copying


def copy_mha(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        ref.out_proj.weight.copy_(ours.out_proj.weight)
        ref.out_proj.bias.copy_(ours.out_proj.bias)


def copy_encoder_layer(ours: EncoderLayer, ref: nn.TransformerEncoderLayer) -> None:
    copy_mha(ours.self_attn, ref.self_attn)
    ref.linear1.load_state_dict(ours.ffn.linear1.state_dict())
    ref.linear2.load_state_dict(ours.ffn.linear2.state_dict())
    ref.norm1.load_state_dict(ours.norm1.state_dict())
    ref.norm2.load_state_dict(ours.norm2.state_dict())


def copy_decoder_layer(ours: DecoderLayer, ref: nn.TransformerDecoderLayer) -> None:
    copy_mha(ours.self_attn, ref.self_attn)
    copy_mha(ours.cross_attn, ref.multihead_attn)  # torch's name for the cross-attention
    ref.linear1.load_state_dict(ours.ffn.linear1.state_dict())
    ref.linear2.load_state_dict(ours.ffn.linear2.state_dict())
    for i in (1, 2, 3):
        getattr(ref, f"norm{i}").load_state_dict(getattr(ours, f"norm{i}").state_dict())


def randomise_norms(module: nn.Module) -> None:
    """LayerNorms start at weight 1, bias 0: randomise them so a swapped norm is caught."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)


# --------------------------------------------------------------------------- config


def test_config_validates_and_varies_by_replace():
    cfg = TransformerConfig()
    assert (cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.d_head) == (512, 8, 2048, 64)
    assert dataclasses.replace(cfg, n_heads=4).d_head == 128
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="activation"):
        TransformerConfig(activation="swish")
    with pytest.raises(ValueError, match="dropout"):
        TransformerConfig(dropout=1.0)
    with pytest.raises(ValueError, match="shared vocabulary"):
        TransformerConfig(src_vocab_size=10, tgt_vocab_size=12, share_src_tgt_embeddings=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 3  # type: ignore[misc]
    big = TransformerConfig.big()
    assert (big.d_model, big.n_heads, big.d_ff, big.d_head, big.dropout) == (1024, 16, 4096, 64, 0.3)


# --------------------------------------------------------------------------- feed-forward


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_ffn_is_the_formula_and_a_1x1_convolution(activation):
    ffn = FeedForward(C, F_, activation).double()
    x = torch.randn(B, S, C, dtype=torch.float64)
    act = torch.relu if activation == "relu" else lambda h: 0.5 * h * (1 + torch.erf(h / 2**0.5))
    expected = act(x @ ffn.linear1.weight.T + ffn.linear1.bias) @ ffn.linear2.weight.T + ffn.linear2.bias
    torch.testing.assert_close(ffn(x), expected)
    conv1 = nn.Conv1d(C, F_, kernel_size=1).double()
    conv2 = nn.Conv1d(F_, C, kernel_size=1).double()
    with torch.no_grad():
        conv1.weight.copy_(ffn.linear1.weight[:, :, None])
        conv1.bias.copy_(ffn.linear1.bias)
        conv2.weight.copy_(ffn.linear2.weight[:, :, None])
        conv2.bias.copy_(ffn.linear2.bias)
    conv_out = conv2(act(conv1(x.transpose(1, 2)))).transpose(1, 2)  # Conv1d wants (B, C, S)
    torch.testing.assert_close(ffn(x), conv_out)


# --------------------------------------------------------------------------- encoder


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    ours = EncoderLayer(C, H, F_, dropout=0.0, norm_first=norm_first, activation=activation).eval()
    randomise_norms(ours)
    ref = nn.TransformerEncoderLayer(C, H, F_, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first).eval()
    copy_encoder_layer(ours, ref)
    x = torch.randn(B, S, C)
    pad = padding_mask(pad_tokens([7, 4, 2], S), 0)  # (B, 1, 1, S), True = attend
    out, weights = ours(x, mask=pad)
    ref_out = ref(x, src_key_padding_mask=to_torch_key_padding_mask(pad))  # True = ignore
    torch.testing.assert_close(out, ref_out)
    assert weights.shape == (B, H, S, S)
    assert (weights[..., 4:][1] == 0).all(), "padded keys get zero weight"
    # the fused path (need_weights=False) is the same maths
    fused, none = ours(x, mask=pad, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, out)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_stack_matches_torch(norm_first):
    n_layers = 2
    ours = Encoder(n_layers, C, H, F_, dropout=0.0, norm_first=norm_first).eval()
    randomise_norms(ours)
    layer = nn.TransformerEncoderLayer(C, H, F_, dropout=0.0, batch_first=True, norm_first=norm_first)
    final_norm = nn.LayerNorm(C) if norm_first else None  # post-LN needs no final norm
    ref = nn.TransformerEncoder(layer, n_layers, norm=final_norm, enable_nested_tensor=False).eval()
    for ours_layer, ref_layer in zip(ours.layers, ref.layers):
        copy_encoder_layer(ours_layer, ref_layer)
    if norm_first:
        ref.norm.load_state_dict(ours.norm.state_dict())
    else:
        assert ours.norm is None
    x = torch.randn(B, S, C)
    pad = padding_mask(pad_tokens([7, 4, 2], S), 0)
    out, weights = ours(x, mask=pad)
    torch.testing.assert_close(out, ref(x, src_key_padding_mask=to_torch_key_padding_mask(pad)))
    assert len(weights) == n_layers and all(w.shape == (B, H, S, S) for w in weights)
    # causal self-attention too (the mask polarity flips for torch)
    causal = causal_mask(S)
    out, _ = ours(x, mask=combine_masks(pad, causal))
    torch.testing.assert_close(out, ref(x, mask=~causal, src_key_padding_mask=to_torch_key_padding_mask(pad)))


def test_encoder_from_config():
    cfg = TransformerConfig(d_model=C, n_heads=H, d_ff=F_, n_encoder_layers=3, norm_first=True)
    enc = Encoder.from_config(cfg)
    assert len(enc.layers) == 3 and enc.norm is not None


def test_encoder_layer_equals_bert_layer():
    """With GELU, eps 1e-12 and post-LN, an EncoderLayer is a BERT layer (chapter 8 reuses it)."""
    transformers = pytest.importorskip("transformers")
    from transformers.models.bert.modeling_bert import BertLayer

    bert_cfg = transformers.BertConfig(
        hidden_size=C, num_attention_heads=H, intermediate_size=F_, hidden_act="gelu",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
    )  # fmt: skip
    bert_cfg._attn_implementation = "eager"
    bert = BertLayer(bert_cfg).eval()
    randomise_norms(bert)
    ours = EncoderLayer(C, H, F_, dropout=0.0, norm_first=False, activation="gelu", layer_norm_eps=1e-12).eval()
    key_map = {
        "self_attn.q_proj": "attention.self.query",
        "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value",
        "self_attn.out_proj": "attention.output.dense",
        "norm1": "attention.output.LayerNorm",
        "ffn.linear1": "intermediate.dense",
        "ffn.linear2": "output.dense",
        "norm2": "output.LayerNorm",
    }
    bert_state = bert.state_dict()
    ours.load_state_dict({f"{o}.{p}": bert_state[f"{b}.{p}"] for o, b in key_map.items() for p in ("weight", "bias")})
    x = torch.randn(B, S, C)
    pad = padding_mask(pad_tokens([7, 4, 2], S), 0)
    additive = torch.zeros(B, 1, 1, S).masked_fill(~pad, torch.finfo(torch.float32).min)  # BERT's extended mask
    torch.testing.assert_close(ours(x, mask=pad).out, bert(x, attention_mask=additive))


# --------------------------------------------------------------------------- decoder


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_decoder_layer_matches_torch(norm_first):
    ours = DecoderLayer(C, H, F_, dropout=0.0, norm_first=norm_first).eval()
    randomise_norms(ours)
    ref = nn.TransformerDecoderLayer(C, H, F_, dropout=0.0, batch_first=True, norm_first=norm_first).eval()
    copy_decoder_layer(ours, ref)
    x, memory = torch.randn(B, T, C), torch.randn(B, S, C)
    tgt_pad = padding_mask(pad_tokens([5, 3, 4], T), 0)  # (B, 1, 1, T)
    src_pad = padding_mask(pad_tokens([7, 4, 2], S), 0)  # (B, 1, 1, S)
    causal = causal_mask(T)  # (T, T)
    out, self_weights, cross_weights = ours(x, memory, self_mask=combine_masks(tgt_pad, causal), memory_mask=src_pad)
    ref_out = ref(
        x, memory,
        tgt_mask=~causal,  # torch: True = ignore
        tgt_key_padding_mask=to_torch_key_padding_mask(tgt_pad),
        memory_key_padding_mask=to_torch_key_padding_mask(src_pad),
    )  # fmt: skip
    torch.testing.assert_close(out, ref_out)
    assert self_weights.shape == (B, H, T, T) and cross_weights.shape == (B, H, T, S)
    assert (self_weights.triu(1) == 0).all(), "no query attends to a later position"
    assert (cross_weights[2, :, :, 2:] == 0).all(), "padded source positions get zero weight"
    fused = ours(x, memory, self_mask=combine_masks(tgt_pad, causal), memory_mask=src_pad, need_weights=False)
    assert fused.self_weights is None and fused.cross_weights is None
    torch.testing.assert_close(fused.out, out)


def test_decoder_is_causal_and_cross_attends_to_memory():
    dec = Decoder(2, C, H, F_, dropout=0.0).eval()
    x, memory = torch.randn(1, T, C), torch.randn(1, S, C)
    out = dec(x, memory, self_mask=causal_mask(T)).out
    x2 = x.clone()
    x2[:, -1] += 1.0  # change the last target position only
    out2 = dec(x2, memory, self_mask=causal_mask(T)).out
    torch.testing.assert_close(out[:, :-1], out2[:, :-1])  # earlier positions cannot see it
    assert not torch.allclose(out[:, -1], out2[:, -1])
    assert not torch.allclose(dec(x, memory + 1.0, self_mask=causal_mask(T)).out, out)  # memory matters


def small_config(**overrides) -> TransformerConfig:
    base = dict(src_vocab_size=23, tgt_vocab_size=19, d_model=C, n_heads=H, d_ff=F_, n_encoder_layers=2, n_decoder_layers=3, dropout=0.0, max_len=32)
    return TransformerConfig(**{**base, **overrides})


def torch_transformer_like(model: Transformer) -> nn.Transformer:
    c = model.config
    ref = nn.Transformer(
        c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff, dropout=0.0,
        activation=c.activation, batch_first=True, norm_first=c.norm_first, layer_norm_eps=c.layer_norm_eps,
    )  # fmt: skip
    for ours_layer, ref_layer in zip(model.encoder.layers, ref.encoder.layers):
        copy_encoder_layer(ours_layer, ref_layer)
    for ours_layer, ref_layer in zip(model.decoder.layers, ref.decoder.layers):
        copy_decoder_layer(ours_layer, ref_layer)
    if c.norm_first:
        ref.encoder.norm.load_state_dict(model.encoder.norm.state_dict())
        ref.decoder.norm.load_state_dict(model.decoder.norm.state_dict())
    else:
        # torch.nn.Transformer always ends both stacks with a LayerNorm; after a post-LN
        # layer that is a second, extra normalisation the paper does not have.
        ref.encoder.norm = None
        ref.decoder.norm = None
    return ref.eval()


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_transformer_matches_torch_transformer(norm_first):
    model = Transformer(small_config(norm_first=norm_first)).eval()
    randomise_norms(model)
    ref = torch_transformer_like(model)
    src = pad_tokens([7, 4, 2], S, vocab_size=23)
    tgt_in = pad_tokens([5, 3, 4], T, vocab_size=19)
    tgt_in[:, 0] = 1  # a start token, never padding
    src_emb = model.embed(src, model.src_embed)
    tgt_emb = model.embed(tgt_in, model.tgt_embed)
    ref_hidden = ref(
        src_emb, tgt_emb,
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.bool),  # True above the diagonal = ignore
        src_key_padding_mask=src == 0,
        tgt_key_padding_mask=tgt_in == 0,
        memory_key_padding_mask=src == 0,
    )  # fmt: skip
    memory = model.encode(src).out
    torch.testing.assert_close(model.decode(tgt_in, memory, src).out, ref_hidden)
    torch.testing.assert_close(model(src, tgt_in), model.out_proj(ref_hidden))


def test_embeddings_scaled_and_tied():
    model = Transformer(small_config(src_vocab_size=19, tie_embeddings=True, share_src_tgt_embeddings=True)).eval()
    assert model.out_proj.weight is model.tgt_embed.weight is model.src_embed.weight
    untied = Transformer(small_config(src_vocab_size=19))
    assert count_parameters(untied) - count_parameters(model) == 2 * 19 * C
    tokens = torch.tensor([[3, 4, 5]])
    expected = model.tgt_embed.weight[tokens] * C**0.5 + model.positional.pe[:3]
    torch.testing.assert_close(model.embed(tokens, model.tgt_embed), expected)
    # N(0, 1/d_model) init: after the sqrt(d_model) scale, entries have about unit variance like the PE table
    big = Transformer(small_config(d_model=256, n_heads=4, tgt_vocab_size=2000))
    assert 0.9 < (big.tgt_embed.weight * 256**0.5).std().item() < 1.1


def test_paper_parameter_counts():
    """The paper (Table 3) reports 65M (base) and 213M (big) parameters.

    Our counts use one ~37000-token BPE vocabulary shared by source and target
    (EN-DE, sec. 5.1) and one embedding matrix shared three ways (sec. 3.4):
    embeddings are 37000 x d_model = 18.9M (base) / 37.9M (big). Without the
    sharing, base would have 2 x 18.9M = 37.9M more parameters (~101M). The
    remaining gap (~1-2M) is what the paper leaves unsaid: its exact vocabulary
    size and whether biases / LayerNorm gains are counted; it quotes two
    significant figures.
    """
    with torch.device("meta"):  # shapes only, no memory or init time
        base = count_parameters(Transformer(TransformerConfig.base()))
        big = count_parameters(Transformer(TransformerConfig.big()))
        untied = count_parameters(Transformer(TransformerConfig.base(tie_embeddings=False, share_src_tgt_embeddings=False)))

    def by_hand(C, F, V=37000, N=6):
        attention = 4 * (C * C + C)  # q, k, v, out projections with biases
        ffn = C * F + F + F * C + C
        encoder_layer = attention + ffn + 2 * 2 * C  # two LayerNorms (gain and bias)
        decoder_layer = 2 * attention + ffn + 3 * 2 * C
        return V * C + N * encoder_layer + N * decoder_layer  # one shared embedding, no output bias

    assert base == by_hand(512, 2048) == 63_082_496
    assert big == by_hand(1024, 4096) == 214_245_376
    assert abs(base - 65e6) / 65e6 < 0.05 and abs(big - 213e6) / 213e6 < 0.02
    assert untied - base == 2 * 37000 * 512


# --------------------------------------------------------------------------- decoding


def test_greedy_decode_is_argmax_of_teacher_forcing():
    torch.manual_seed(1)
    model = Transformer(small_config(dropout=0.1)).train()
    src = pad_tokens([7, 4, 2], S, vocab_size=23)
    out = greedy_decode(model, src, start_id=1, eos_id=2, max_new_tokens=6)
    assert model.training, "decoding restores the training mode"
    assert (out[:, 0] == 1).all() and out.shape[1] <= 7
    model.eval()
    with torch.no_grad():
        logits = model(src, out[:, :-1])  # re-read the generated prefix with teacher forcing
    for b in range(out.shape[0]):
        n = len(out[b]) - 1
        hits = (out[b, 1:] == 2).nonzero()
        if len(hits):
            n = int(hits[0]) + 1  # up to and including eos
        torch.testing.assert_close(logits[b, :n].argmax(-1), out[b, 1 : n + 1])


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_equals_greedy(seed):
    torch.manual_seed(seed)
    model = Transformer(small_config(tgt_vocab_size=7)).eval()  # small vocabulary: eos is likely
    src = pad_tokens([7, 4, 2], S, vocab_size=23)
    greedy = greedy_decode(model, src, start_id=1, eos_id=2, max_new_tokens=8)
    beam = beam_search(model, src, start_id=1, eos_id=2, max_new_tokens=8, beam_size=1)
    torch.testing.assert_close(beam, greedy)


def test_wide_beam_is_exhaustive_search():
    """With a beam wider than the number of sequences, beam search is exact: it returns
    the sequence of highest log P(y | x) / lp(|y|) among all of them (checked by brute force)."""
    import itertools
    import math

    torch.manual_seed(0)
    V, eos, steps, alpha = 5, 2, 3, 0.6
    model = Transformer(small_config(tgt_vocab_size=V)).eval()
    src = pad_tokens([7], S, vocab_size=23)
    candidates = []
    for n in range(1, steps + 1):
        for body in itertools.product([t for t in range(V) if t != eos], repeat=n - 1):
            candidates.append([1, *body, eos])
    candidates += [[1, *body] for body in itertools.product([t for t in range(V) if t != eos], repeat=steps)]
    best, best_score = None, -math.inf
    for length in {len(c) for c in candidates}:  # score all candidates of one length in one batch
        tokens = torch.tensor([c for c in candidates if len(c) == length])
        with torch.no_grad():
            logits = model(src.expand(len(tokens), -1), tokens[:, :-1])
        log_p = logits.log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0].sum(-1)  # (n,)
        scores = log_p / ((5 + length - 1) / 6) ** alpha
        i = int(scores.argmax())
        if scores[i] > best_score:
            best, best_score = tokens[i].tolist(), float(scores[i])
    beam = beam_search(model, src, start_id=1, eos_id=eos, max_new_tokens=steps, beam_size=len(candidates), alpha=alpha)
    assert beam[0].tolist()[: len(best)] == best


def test_date_task_decoding_starts_with_the_training_start_token():
    """The date task's decoder inputs begin with <bos>; decoding with tgt_vocab.bos_id starts the same way
    (the tutorial bug this guards against: training on one first token, decoding from another)."""
    from course_lib.data.dates import load_date_task

    task = load_date_task(n_train=20, n_test=5, seed=0)
    bos = task.tgt_vocab.bos_id
    assert (task.train.tgt_in[:, 0] == bos).all() and (task.test.tgt_in[:, 0] == bos).all()
    torch.testing.assert_close(task.train.tgt_in[:, 1:], task.train.tgt_out[:, :-1].masked_fill(task.train.tgt_out[:, :-1] == task.tgt_vocab.eos_id, 0))
    cfg = small_config(src_vocab_size=len(task.src_vocab), tgt_vocab_size=len(task.tgt_vocab), pad_id=task.src_vocab.pad_id)
    out = greedy_decode(Transformer(cfg), task.test.src, bos, task.tgt_vocab.eos_id, task.max_tgt_len)
    torch.testing.assert_close(out[:, 0], task.test.tgt_in[:, 0])

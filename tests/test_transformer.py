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
from course_lib.transformer import Encoder, EncoderLayer, FeedForward, TransformerConfig

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


def pad_tokens(lengths, length, pad_id=0):
    tokens = torch.randint(1, 50, (len(lengths), length))
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

"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), chapter 7.

Dimension legend:
    B batch, S source length, T target length, C d_model, H heads,
    D head dim (C // H), F d_ff (the FFN's hidden size), V vocabulary size, L layers.

Masks are boolean, True = may attend, broadcastable to (B, H, T, S); see
``course_lib.masks``. (``torch.nn.Transformer`` uses the opposite polarity.)

Read top-down: the config, the position-wise feed-forward network, one encoder
layer, the encoder (a stack of layers); then the decoder side and the full model.

Every sublayer is wrapped the same way ("Add & Norm", sec. 5.4: dropout on the
sublayer's output, before it is added to its input):

    post-LN (the paper, ``norm_first=False``):  x = LayerNorm(x + Dropout(Sublayer(x)))
    pre-LN  (``norm_first=True``):              x = x + Dropout(Sublayer(LayerNorm(x)))

Pre-LN stacks end with one more LayerNorm (their residual stream is never
normalised otherwise); post-LN stacks do not need it.

Attention weights are returned, not hidden: each layer returns a small
NamedTuple with ``out`` and its weights, each stack the per-layer lists, so a
chapter can plot any head of any layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import MultiHeadAttention

__all__ = [
    "TransformerConfig",
    "FeedForward",
    "EncoderLayer",
    "EncoderLayerOutput",
    "Encoder",
    "EncoderOutput",
]

ACTIVATIONS = ("relu", "gelu")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_layer_args(d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str, layer_norm_eps: float) -> None:
    for name, value in (("d_model", d_model), ("n_heads", n_heads), ("d_ff", d_ff)):
        _positive_int(name, value)
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} (each head gets d_model // n_heads dims)")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not layer_norm_eps > 0:
        raise ValueError(f"layer_norm_eps must be > 0, got {layer_norm_eps}")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TransformerConfig:
    """Every size of the model in one place; defaults are the paper's base model
    except the vocabularies (the course's tasks are small).

    Variants: ``dataclasses.replace(cfg, n_heads=4)``. The paper's models:
    ``TransformerConfig.base()`` and ``TransformerConfig.big()``.
    """

    src_vocab_size: int = 64  # number of source token ids (the paper: ~37000 shared BPE for EN-DE)
    tgt_vocab_size: int = 64  # number of target token ids
    d_model: int = 512  # width of every token vector between sublayers (sec. 3.1)
    n_heads: int = 8  # h parallel attention heads, each of width d_model // n_heads = 64 (sec. 3.2.2)
    d_ff: int = 2048  # hidden width of the position-wise FFN, 4 x d_model (sec. 3.3)
    n_encoder_layers: int = 6  # N identical encoder layers (sec. 3.1)
    n_decoder_layers: int = 6  # N identical decoder layers (sec. 3.1)
    dropout: float = 0.1  # P_drop on sublayer outputs, embeddings + positions and attention weights (sec. 5.4)
    max_len: int = 512  # longest sequence the positional table covers
    norm_first: bool = False  # False: post-LN as in the paper; True: pre-LN (more stable without warmup)
    activation: str = "relu"  # FFN non-linearity: "relu" (the paper) or "gelu" (exact erf GELU, as in BERT)
    layer_norm_eps: float = 1e-5  # LayerNorm's epsilon (torch's default; BERT uses 1e-12)
    tie_embeddings: bool = False  # share the target embedding with the pre-softmax projection (sec. 3.4)
    share_src_tgt_embeddings: bool = False  # one embedding for source and target (needs one shared vocabulary)
    pad_id: int = 0  # token id of padding: masked as a key, ignored by the loss

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "n_encoder_layers", "n_decoder_layers", "max_len"):
            _positive_int(name, getattr(self, name))
        _check_layer_args(self.d_model, self.n_heads, self.d_ff, self.dropout, self.activation, self.layer_norm_eps)
        if self.share_src_tgt_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_src_tgt_embeddings needs one shared vocabulary, got "
                f"src_vocab_size={self.src_vocab_size} and tgt_vocab_size={self.tgt_vocab_size}"
            )
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(f"pad_id must be a token id in both vocabularies, got {self.pad_id!r}")

    @property
    def d_head(self) -> int:
        """d_k = d_v = d_model / h (64 in both paper models)."""
        return self.d_model // self.n_heads

    @classmethod
    def base(cls, vocab_size: int = 37000, **overrides) -> "TransformerConfig":
        """The paper's base model (Table 3): N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1,
        one shared ~37000-token BPE vocabulary for EN-DE and all three embedding matrices shared."""
        kwargs = dict(
            src_vocab_size=vocab_size, tgt_vocab_size=vocab_size, d_model=512, n_heads=8, d_ff=2048,
            n_encoder_layers=6, n_decoder_layers=6, dropout=0.1, tie_embeddings=True, share_src_tgt_embeddings=True,
        )  # fmt: skip
        return cls(**{**kwargs, **overrides})

    @classmethod
    def big(cls, vocab_size: int = 37000, **overrides) -> "TransformerConfig":
        """The paper's big model (Table 3): d_model=1024, d_ff=4096, h=16, P_drop=0.3 (EN-DE)."""
        return cls.base(vocab_size, **{"d_model": 1024, "n_heads": 16, "d_ff": 4096, "dropout": 0.3, **overrides})


# --------------------------------------------------------------------------- building blocks


class FeedForward(nn.Module):
    """FFN(x) = max(0, x W1 + b1) W2 + b2   (sec. 3.3), applied to each position alone.

    The same two linear maps at every position: a 1x1 convolution over the
    sequence. ``activation="gelu"`` swaps max(0, .) for the exact (erf) GELU.
    No dropout inside (the paper and BERT put dropout on the sublayer's output only).

    Shapes:
        x: (..., C) -> (..., C), through a hidden (..., F)
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff)  # W1, b1
        self.linear2 = nn.Linear(d_ff, d_model)  # W2, b2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.linear1(x)  # (..., C) -> (..., F)
        hidden = F.relu(hidden) if self.activation == "relu" else F.gelu(hidden)  # exact erf GELU, not tanh
        return self.linear2(hidden)  # (..., F) -> (..., C)


class EncoderLayerOutput(NamedTuple):
    """``out`` (B, S, C); ``self_weights`` (B, H, S, S), or None with need_weights=False."""

    out: torch.Tensor
    self_weights: torch.Tensor | None


class EncoderLayer(nn.Module):
    """One encoder layer: multi-head self-attention, then the FFN, each with Add & Norm.

    post-LN (``norm_first=False``, the paper and BERT):
        x = norm1(x + dropout1(self_attn(x, x, x)))
        x = norm2(x + dropout2(ffn(x)))
    pre-LN (``norm_first=True``):
        x = x + dropout1(self_attn(norm1(x), ...))
        x = x + dropout2(ffn(norm2(x)))

    With ``activation="gelu", layer_norm_eps=1e-12`` this is exactly a BERT layer
    (``self_attn.q_proj/k_proj/v_proj`` = attention.self.query/key/value,
    ``self_attn.out_proj`` = attention.output.dense, ``norm1`` = attention.output.LayerNorm,
    ``ffn.linear1`` = intermediate.dense, ``ffn.linear2`` = output.dense, ``norm2`` = output.LayerNorm).
    ``dropout`` also applies to the attention weights, as in torch and BERT.

    Shapes:
        x: (B, S, C)   mask: bool, broadcastable to (B, H, S, S), True = may attend
        returns EncoderLayerOutput(out (B, S, C), self_weights (B, H, S, S))
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        _check_layer_args(d_model, n_heads, d_ff, dropout, activation, layer_norm_eps)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = True) -> EncoderLayerOutput:
        if self.norm_first:
            h = self.norm1(x)
            attended, weights = self.self_attn(h, h, h, mask=mask, need_weights=need_weights)  # (B, S, C)
            x = x + self.dropout1(attended)
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            attended, weights = self.self_attn(x, x, x, mask=mask, need_weights=need_weights)  # (B, S, C)
            x = self.norm1(x + self.dropout1(attended))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return EncoderLayerOutput(x, weights)


class EncoderOutput(NamedTuple):
    """``out`` (B, S, C): the last layer's output, the "memory" every decoder layer
    attends to; ``self_weights``: one (B, H, S, S) tensor per layer (None entries
    with need_weights=False)."""

    out: torch.Tensor
    self_weights: list[torch.Tensor | None]


class Encoder(nn.Module):
    """N identical ``EncoderLayer``s; pre-LN adds a final LayerNorm (``norm``), post-LN has none.

    Takes vectors, not token ids: embeddings and positions belong to the model
    around it (``Transformer`` here, BERT in chapter 8).

    Shapes:
        x: (B, S, C)   mask: bool, broadcastable to (B, H, S, S), True = may attend
        returns EncoderOutput(out (B, S, C), self_weights [L x (B, H, S, S)])
    """

    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = False,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ):
        super().__init__()
        _positive_int("n_layers", n_layers)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first, activation, layer_norm_eps) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm_first else None

    @classmethod
    def from_config(cls, config: TransformerConfig) -> "Encoder":
        c = config
        return cls(c.n_encoder_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = True) -> EncoderOutput:
        weights = []
        for layer in self.layers:
            x, layer_weights = layer(x, mask=mask, need_weights=need_weights)  # (B, S, C) -> (B, S, C)
            weights.append(layer_weights)
        if self.norm is not None:
            x = self.norm(x)
        return EncoderOutput(x, weights)

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
from course_lib.masks import causal_mask, combine_masks, padding_mask
from course_lib.positional import PositionalEncoding

__all__ = [
    "TransformerConfig",
    "FeedForward",
    "EncoderLayer",
    "EncoderLayerOutput",
    "Encoder",
    "EncoderOutput",
    "DecoderLayer",
    "DecoderLayerOutput",
    "Decoder",
    "DecoderOutput",
    "Transformer",
    "greedy_decode",
    "beam_search",
    "count_parameters",
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


# --------------------------------------------------------------------------- decoder


class DecoderLayerOutput(NamedTuple):
    """``out`` (B, T, C); ``self_weights`` (B, H, T, T) of the masked self-attention;
    ``cross_weights`` (B, H, T, S) over the source. Weights are None with need_weights=False."""

    out: torch.Tensor
    self_weights: torch.Tensor | None
    cross_weights: torch.Tensor | None


class DecoderLayer(nn.Module):
    """One decoder layer: masked self-attention, cross-attention, FFN, each with Add & Norm.

    Cross-attention ("encoder-decoder attention", sec. 3.2.3): queries come from
    the decoder, keys and values from ``memory``, the output of the *last*
    encoder layer (the same memory for every decoder layer).

    post-LN (``norm_first=False``, the paper):
        x = norm1(x + dropout1(self_attn(x, x, x, self_mask)))      # self_mask: causal (+ padding)
        x = norm2(x + dropout2(cross_attn(x, memory, memory, memory_mask)))
        x = norm3(x + dropout3(ffn(x)))
    pre-LN (``norm_first=True``): x = x + dropout_i(sublayer_i(norm_i(x))), memory used as given.

    Shapes:
        x: (B, T, C)   memory: (B, S, C)
        self_mask: bool, broadcastable to (B, H, T, T)   memory_mask: broadcastable to (B, H, T, S)
        returns DecoderLayerOutput(out (B, T, C), self_weights (B, H, T, T), cross_weights (B, H, T, S))
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
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ffn = FeedForward(d_model, d_ff, activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        need_weights: bool = True,
    ) -> DecoderLayerOutput:
        if self.norm_first:
            h = self.norm1(x)
            attended, self_weights = self.self_attn(h, h, h, mask=self_mask, need_weights=need_weights)  # (B, T, C)
            x = x + self.dropout1(attended)
            h = self.norm2(x)
            attended, cross_weights = self.cross_attn(h, memory, memory, mask=memory_mask, need_weights=need_weights)
            x = x + self.dropout2(attended)  # (B, T, C): one mix of source vectors per target position
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:
            attended, self_weights = self.self_attn(x, x, x, mask=self_mask, need_weights=need_weights)  # (B, T, C)
            x = self.norm1(x + self.dropout1(attended))
            attended, cross_weights = self.cross_attn(x, memory, memory, mask=memory_mask, need_weights=need_weights)
            x = self.norm2(x + self.dropout2(attended))  # (B, T, C): one mix of source vectors per target position
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return DecoderLayerOutput(x, self_weights, cross_weights)


class DecoderOutput(NamedTuple):
    """``out`` (B, T, C): the last layer's output (before the output projection);
    ``self_weights``/``cross_weights``: one (B, H, T, T) / (B, H, T, S) tensor per layer."""

    out: torch.Tensor
    self_weights: list[torch.Tensor | None]
    cross_weights: list[torch.Tensor | None]


class Decoder(nn.Module):
    """N identical ``DecoderLayer``s, each attending to the same ``memory``;
    pre-LN adds a final LayerNorm (``norm``).

    Shapes:
        x: (B, T, C)   memory: (B, S, C)   masks as in ``DecoderLayer``
        returns DecoderOutput(out (B, T, C), self_weights [L x (B, H, T, T)], cross_weights [L x (B, H, T, S)])
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
            DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first, activation, layer_norm_eps) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps) if norm_first else None

    @classmethod
    def from_config(cls, config: TransformerConfig) -> "Decoder":
        c = config
        return cls(c.n_decoder_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, c.norm_first, c.activation, c.layer_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        self_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        need_weights: bool = True,
    ) -> DecoderOutput:
        self_weights, cross_weights = [], []
        for layer in self.layers:
            x, sw, cw = layer(x, memory, self_mask=self_mask, memory_mask=memory_mask, need_weights=need_weights)
            self_weights.append(sw)
            cross_weights.append(cw)
        if self.norm is not None:
            x = self.norm(x)
        return DecoderOutput(x, self_weights, cross_weights)


# --------------------------------------------------------------------------- the model


class Transformer(nn.Module):
    """Embeddings (scaled by sqrt(d_model)) + sinusoidal positions -> Encoder -> Decoder -> Linear.

    ``forward(src, tgt_in)`` returns logits; softmax is left to the loss (and to
    decoding). Teacher forcing: ``tgt_in`` is the target shifted right, starting
    with the start token; the logits at position t predict ``tgt_out[t] = tgt_in[t + 1]``.

    Weight sharing (sec. 3.4): ``tie_embeddings`` makes the pre-softmax
    projection use the target embedding matrix; ``share_src_tgt_embeddings``
    makes source and target use one embedding. Embeddings start at N(0, 1/d_model)
    so that after the sqrt(d_model) scale each entry has unit variance, like the
    positional table's entries; every other matrix starts Xavier-uniform, as in
    ``torch.nn.Transformer``.

    Shapes:
        src: (B, S) token ids   tgt_in: (B, T) token ids
        returns logits: (B, T, V)
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = c = config
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = self.src_embed if c.share_src_tgt_embeddings else nn.Embedding(c.tgt_vocab_size, c.d_model)
        self.positional = PositionalEncoding(c.d_model, c.max_len, c.dropout)  # adds PE, then dropout (sec. 5.4)
        self.encoder = Encoder.from_config(c)
        self.decoder = Decoder.from_config(c)
        self.out_proj = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)  # the pre-softmax linear layer
        self._reset_parameters()
        if c.tie_embeddings:
            self.out_proj.weight = self.tgt_embed.weight  # one (V, C) matrix, two uses

    def _reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if "embed" in name:
                nn.init.normal_(p, std=self.config.d_model**-0.5)
            elif p.dim() > 1:
                nn.init.xavier_uniform_(p)

    # ---- masks (True = may attend)
    def src_mask(self, src: torch.Tensor) -> torch.Tensor:
        """Padding mask over the source keys. Shapes: src (B, S) -> (B, 1, 1, S)."""
        return padding_mask(src, self.config.pad_id)

    def tgt_mask(self, tgt_in: torch.Tensor) -> torch.Tensor:
        """Causal AND padding mask for the decoder's self-attention. Shapes: (B, T) -> (B, 1, T, T)."""
        return combine_masks(padding_mask(tgt_in, self.config.pad_id), causal_mask(tgt_in.shape[1], device=tgt_in.device))

    # ---- the pieces
    def _check_tokens(self, tokens: torch.Tensor, name: str, vocab_size: int) -> None:
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"{name} must be integer token ids of shape (B, length), got {got}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
            raise ValueError(f"{name} holds ids in [{int(tokens.min())}, {int(tokens.max())}], outside the vocabulary [0, {vocab_size})")
        if tokens.shape[1] > self.config.max_len:
            raise ValueError(f"{name} has length {tokens.shape[1]} > max_len={self.config.max_len} of the positional table")

    def embed(self, tokens: torch.Tensor, embedding: nn.Embedding) -> torch.Tensor:
        """Token vectors times sqrt(d_model), plus positions, then dropout. Shapes: (B, L) -> (B, L, C)."""
        return self.positional(embedding(tokens) * math.sqrt(self.config.d_model))  # (B, L) -> (B, L, C)

    def encode(self, src: torch.Tensor, need_weights: bool = True) -> EncoderOutput:
        """Shapes: src (B, S) -> EncoderOutput(out (B, S, C), self_weights [L x (B, H, S, S)])."""
        self._check_tokens(src, "src", self.config.src_vocab_size)
        return self.encoder(self.embed(src, self.src_embed), mask=self.src_mask(src), need_weights=need_weights)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src: torch.Tensor, need_weights: bool = True) -> DecoderOutput:
        """Run the decoder over a target prefix; ``src`` only supplies the padding mask of ``memory``.

        Shapes: tgt_in (B, T), memory (B, S, C), src (B, S) -> DecoderOutput(out (B, T, C), ...)
        """
        self._check_tokens(tgt_in, "tgt_in", self.config.tgt_vocab_size)
        x = self.embed(tgt_in, self.tgt_embed)  # (B, T, C)
        return self.decoder(x, memory, self.tgt_mask(tgt_in), self.src_mask(src), need_weights=need_weights)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory = self.encode(src, need_weights=False).out  # (B, S, C)
        hidden = self.decode(tgt_in, memory, src, need_weights=False).out  # (B, T, C)
        return self.out_proj(hidden)  # (B, T, C) -> (B, T, V)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, each shared tensor counted once (``parameters()`` de-duplicates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- decoding


class _EvalMode:
    """Temporarily switch a module to eval mode (dropout off), restoring its mode after."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, start_id: int, eos_id: int, max_new_tokens: int) -> torch.Tensor:
    """Generate one token at a time, always taking the most probable next token.

    ``start_id`` must be the token the training targets begin with (``tgt_in[:, 0]``):
    a model trained on ``[bos, y1, y2, ...]`` has never seen a prefix that starts otherwise.
    The decoder re-reads the whole prefix at every step (no key/value cache: O(T^2), simple).

    Shapes:
        src: (B, S) -> tokens (B, 1 + n) with n <= max_new_tokens: ``start_id`` first,
        then the generated ids; after a sequence's ``eos_id``, ``pad_id`` fills its row.
    """
    with _EvalMode(model):
        memory = model.encode(src, need_weights=False).out  # (B, S, C), computed once
        B = src.shape[0]
        tokens = torch.full((B, 1), start_id, dtype=torch.long, device=src.device)  # (B, 1)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        for _ in range(max_new_tokens):
            hidden = model.decode(tokens, memory, src, need_weights=False).out[:, -1]  # (B, C): the last position
            next_id = model.out_proj(hidden).argmax(dim=-1)  # (B, V) -> (B,)
            next_id = next_id.masked_fill(done, model.config.pad_id)
            tokens = torch.cat([tokens, next_id[:, None]], dim=1)  # (B, t) -> (B, t + 1)
            done |= next_id == eos_id
            if bool(done.all()):
                break
    return tokens


def _length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016); the paper used alpha = 0.6."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(
    model: Transformer,
    src: torch.Tensor,
    start_id: int,
    eos_id: int,
    max_new_tokens: int,
    beam_size: int = 4,
    alpha: float = 0.6,
) -> torch.Tensor:
    """Keep the ``beam_size`` most probable prefixes instead of one (the paper: beam 4, alpha 0.6).

    Per source sentence: at each step every live prefix is extended by every
    token; the best ``2 * beam_size`` extensions are scanned in order of total
    log-probability: one ending in ``eos_id`` among the first ``beam_size`` becomes a
    finished hypothesis, the others refill the beam. The search stops when
    ``beam_size`` hypotheses are finished or after ``max_new_tokens`` steps (the live
    prefixes then count as finished). The winner maximises
    log P(Y | X) / lp(|Y|), lp the GNMT length penalty, so long outputs are not
    unfairly beaten by short ones. With ``beam_size=1`` this is greedy decoding.

    Shapes:
        src: (B, S) -> tokens (B, 1 + n), laid out as ``greedy_decode``'s output.
    """
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    pad_id = model.config.pad_id
    results = []
    with _EvalMode(model):
        for b in range(src.shape[0]):
            one_src = src[b : b + 1]  # (1, S)
            memory = model.encode(one_src, need_weights=False).out  # (1, S, C)
            beams = torch.full((1, 1), start_id, dtype=torch.long, device=src.device)  # (K, t), K live prefixes
            scores = torch.zeros(1, device=src.device)  # (K,) total log-probability of each prefix
            finished: list[tuple[float, torch.Tensor]] = []  # (normalised score, tokens)
            for step in range(1, max_new_tokens + 1):
                K = beams.shape[0]
                hidden = model.decode(beams, memory.expand(K, -1, -1), one_src.expand(K, -1), need_weights=False).out
                log_probs = model.out_proj(hidden[:, -1]).log_softmax(dim=-1)  # (K, V)
                V = log_probs.shape[-1]
                total = (scores[:, None] + log_probs).flatten()  # (K * V,): every one-token extension
                top_scores, top_ids = total.topk(min(2 * beam_size, total.numel()))
                new_beams, new_scores = [], []
                for rank, (score, flat) in enumerate(zip(top_scores.tolist(), top_ids.tolist())):
                    prefix, token = beams[flat // V], flat % V
                    extended = torch.cat([prefix, prefix.new_tensor([token])])
                    if token == eos_id:
                        if rank < beam_size:  # only an eos that would have made the beam counts
                            finished.append((score / _length_penalty(step, alpha), extended))
                    else:
                        new_beams.append(extended)
                        new_scores.append(score)
                    if len(new_beams) == beam_size:
                        break
                if len(finished) >= beam_size or not new_beams:
                    break
                beams = torch.stack(new_beams)  # (K', t + 1)
                scores = torch.tensor(new_scores, device=src.device)
            else:  # ran out of steps: unfinished prefixes compete too
                finished += [(s / _length_penalty(beams.shape[1] - 1, alpha), beam) for s, beam in zip(scores.tolist(), beams)]
            best = max(finished, key=lambda pair: pair[0])[1]
            results.append(best)
    width = max(len(r) for r in results)
    out = torch.full((len(results), width), pad_id, dtype=torch.long, device=src.device)
    for b, r in enumerate(results):
        out[b, : len(r)] = r
    return out

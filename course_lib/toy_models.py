"""A small attention-only model for the experiments of chapters 4-6.

Dimension legend: B batch, T sequence length, F input fields, C d_model, H heads, K classes.

    tokens -> sum of one embedding per input field (+ positions)
           -> n_layers x [ x + MultiHeadAttention(x, x, x, mask) ]
           -> Linear -> logits (B, T, K)

No feed-forward block and no LayerNorm: the smallest model in which every head
can be read off a heatmap. The full Transformer is ``course_lib.transformer``
(chapter 7). ``fit`` is a few-line training loop with a progress bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, NamedTuple

import torch
from torch import nn

from course_lib.attention import MultiHeadAttention
from course_lib.positional import LearnedPositionalEmbedding, PositionalEncoding
from course_lib.train import tqdm  # plain text in the built book

__all__ = ["ToyConfig", "ToyOutput", "AttentionOnlyModel", "fit"]

Positional = Literal["sinusoidal", "learned", "none"]


@dataclass(frozen=True)
class ToyConfig:
    vocab_sizes: tuple[int, ...] = (16,)  # one embedding table per input field; the embeddings are summed
    n_classes: int = 16  # outputs per position
    d_model: int = 32  # width of every vector in the model
    n_heads: int = 4  # heads per attention layer; d_head = d_model // n_heads
    n_layers: int = 1  # attention layers, each with a residual connection
    max_len: int = 64  # longest sequence the positional table covers
    positional: Positional = "sinusoidal"  # "learned" (BERT, GPT) or "none" (a bag of tokens)

    def __post_init__(self):
        if not self.vocab_sizes or any(v < 1 for v in self.vocab_sizes):
            raise ValueError(f"vocab_sizes must be a non-empty tuple of positive ints, got {self.vocab_sizes!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.positional not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"positional must be 'sinusoidal', 'learned' or 'none', got {self.positional!r}")
        if min(self.n_classes, self.n_layers, self.max_len) < 1:
            raise ValueError("n_classes, n_layers and max_len must be positive")


class ToyOutput(NamedTuple):
    """``logits`` (B, T, K); ``weights``: one (B, H, T, T) attention tensor per layer."""

    logits: torch.Tensor
    weights: list[torch.Tensor]


class AttentionOnlyModel(nn.Module):
    """Embeddings + positions, ``n_layers`` residual multi-head self-attention layers, a linear readout.

    Shapes:
        tokens: (B, T) long for one input field, (B, T, F) for F fields
        mask: bool, broadcastable to (B, H, T, T), True = may attend
        returns logits (B, T, K) and per-layer weights (B, H, T, T)
    """

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(nn.Embedding(v, config.d_model) for v in config.vocab_sizes)
        if config.positional == "sinusoidal":
            self.positions: nn.Module = PositionalEncoding(config.d_model, config.max_len)
        elif config.positional == "learned":
            self.positions = LearnedPositionalEmbedding(config.max_len, config.d_model)
        else:
            self.positions = nn.Identity()
        self.layers = nn.ModuleList(MultiHeadAttention(config.d_model, config.n_heads) for _ in range(config.n_layers))
        self.readout = nn.Linear(config.d_model, config.n_classes)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        n_fields = len(self.config.vocab_sizes)
        fields = tokens.unsqueeze(-1) if tokens.dim() == 2 else tokens  # (B, T) -> (B, T, 1)
        if fields.dim() != 3 or fields.shape[-1] != n_fields:
            raise ValueError(f"expected tokens of shape (B, T, F={n_fields}) (or (B, T) for one field), got {tuple(tokens.shape)}")
        x = sum(emb(fields[..., f]) for f, emb in enumerate(self.embeddings))  # (B, T, C)
        return self.positions(x)  # (B, T, C)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> ToyOutput:
        x = self.embed(tokens)  # (B, T, C)
        all_weights = []
        for layer in self.layers:
            out, weights = layer(x, x, x, mask=mask)  # (B, T, C), (B, H, T, T)
            x = x + out  # residual: each layer adds what it read to the token's vector
            all_weights.append(weights)
        return ToyOutput(self.readout(x), all_weights)  # (B, T, C) -> (B, T, K)


def fit(
    model: nn.Module,
    batches: Iterable,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    lr: float = 3e-3,
    desc: str = "training",
    total: int | None = None,
) -> list[float]:
    """Adam over ``batches``; ``loss_fn(model, batch)`` returns the loss. Returns the loss per step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    bar = tqdm(batches, desc=desc, total=total, mininterval=1.0)
    for batch in bar:
        loss = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / 50:.3f}")
    model.eval()
    return losses

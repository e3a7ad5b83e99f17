"""Positional encodings (chapter 5).

Dimension legend: B batch, T sequence length, C d_model, P number of positions.

The paper's sinusoidal table (Vaswani et al. 2017, sec. 3.5), with i indexing
dimension *pairs*:

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

For an odd d_model the last column is the sine of a final, unpaired i; the
formula itself says so, and this module follows it.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = [
    "sinusoidal_encoding",
    "pair_frequencies",
    "relative_rotation",
    "PositionalEncoding",
    "LearnedPositionalEmbedding",
]

Layout = Literal["interleaved", "concatenated"]


def _check_sizes(n_positions: int, d_model: int) -> None:
    for name, value in (("n_positions", n_positions), ("d_model", d_model)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def pair_frequencies(d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """omega_i = 1 / base^(2i / d_model) for i = 0 .. ceil(d_model / 2) - 1.

    The wavelength of pair i is 2 pi / omega_i: from 2 pi (i = 0) up to
    (almost) base * 2 pi.
    """
    _check_sizes(1, d_model)
    two_i = torch.arange(0, d_model, 2, dtype=dtype)  # 0, 2, 4, ... (2i)
    return base ** (-two_i / d_model)


def sinusoidal_encoding(
    n_positions: int,
    d_model: int,
    layout: Layout = "interleaved",
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The sinusoidal table.

    layout="interleaved" (the paper): columns sin_0, cos_0, sin_1, cos_1, ...
    layout="concatenated" (tensor2tensor, some tutorials): all sines, then all cosines.
    Both hold the same numbers; only the column order differs.

    Shapes:
        returns: (n_positions, d_model)
    """
    _check_sizes(n_positions, d_model)
    if layout not in ("interleaved", "concatenated"):
        raise ValueError(f"layout must be 'interleaved' or 'concatenated', got {layout!r}")
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1); float64 so 10 decimals are exact
    angles = pos * pair_frequencies(d_model, base)[None, :]  # (P, 1) * (1, ceil(C/2)) -> (P, ceil(C/2))
    sin, cos = angles.sin(), angles.cos()
    n_cos = d_model // 2  # an odd d_model has one more sine than cosines
    if layout == "interleaved":
        table = torch.empty(n_positions, d_model, dtype=torch.float64)
        table[:, 0::2] = sin
        table[:, 1::2] = cos[:, :n_cos]
    else:
        table = torch.cat([sin, cos[:, :n_cos]], dim=-1)
    return table.to(dtype)


def relative_rotation(offset: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The linear map M_k with PE(pos + k) = M_k @ PE(pos) for every pos (interleaved layout).

    M_k is block-diagonal: for each pair (sin, cos) of frequency omega it is the
    2x2 rotation [[cos(k omega), sin(k omega)], [-sin(k omega), cos(k omega)]],
    because sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b - sin a sin b.
    It depends on the offset k only, not on pos. d_model must be even.

    Shapes:
        returns: (d_model, d_model)
    """
    if d_model % 2:
        raise ValueError(f"relative_rotation needs an even d_model (sin/cos pairs), got {d_model}")
    omega = pair_frequencies(d_model, base, dtype=torch.float64)
    M = torch.zeros(d_model, d_model, dtype=torch.float64)
    c, s = torch.cos(offset * omega), torch.sin(offset * omega)
    idx = torch.arange(0, d_model, 2)
    M[idx, idx], M[idx, idx + 1] = c, s  # new sin = cos(k w) sin + sin(k w) cos
    M[idx + 1, idx], M[idx + 1, idx + 1] = -s, c  # new cos = -sin(k w) sin + cos(k w) cos
    return M.to(dtype)


class PositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to token embeddings, then dropout.

    Shapes:
        x: (B, T, C) -> (B, T, C), T <= max_len
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.dropout = nn.Dropout(dropout)
        # a buffer: saved with the model and moved by .to(), but not trained
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"PositionalEncoding expects (B, T, d_model={self.d_model}), got {tuple(x.shape)}")
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.max_len} of this PositionalEncoding")
        return self.dropout(x + self.pe[:T].to(x.dtype))  # (B, T, C) + (T, C)


class LearnedPositionalEmbedding(nn.Module):
    """One trained vector per position (as in BERT and GPT); cannot go past max_len.

    Shapes:
        x: (B, T, C) -> (B, T, C), T <= max_len
    """

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.embedding = nn.Embedding(max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"LearnedPositionalEmbedding expects (B, T, d_model={self.d_model}), got {tuple(x.shape)}")
        T = x.shape[1]
        if T > self.max_len:
            raise ValueError(
                f"sequence length {T} exceeds max_len={self.max_len}: a learned table has no vector for "
                "positions it never saw (this is its extrapolation limit)"
            )
        positions = torch.arange(T, device=x.device)
        return self.dropout(x + self.embedding(positions))  # (B, T, C) + (T, C)


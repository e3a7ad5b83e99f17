"""Positional encodings (chapter 5).

Dimension legend: B batch, T sequence length, C d_model, P number of positions.

The paper's sinusoidal table (Vaswani et al. 2017, sec. 3.5), with i indexing
dimension *pairs*:

    PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
    PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

For an odd d_model the last column is the sine of a final, unpaired i; the
formula itself says so, and this module follows it.

Checking a table found in a tutorial or a paper: ``check_encoding_table`` compares it
with the formula cell by cell and names the likely cause of any difference;
``faulty_sinusoidal_encoding`` reproduces the usual mistakes listed in ``MISTAKES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "sinusoidal_encoding",
    "pair_frequencies",
    "relative_rotation",
    "PositionalEncoding",
    "LearnedPositionalEmbedding",
    "MISTAKES",
    "faulty_sinusoidal_encoding",
    "check_encoding_table",
    "TableReport",
    "CellMismatch",
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
    layout="concatenated" (some tutorials): all sines, then all cosines.
    Both hold the same numbers; only the column order differs.

    tensor2tensor's ``get_timing_signal_1d`` is concatenated but is not this table: it
    spaces the log-frequencies by log(10000) / (d_model/2 - 1) where the paper has
    log(10000) * 2 / d_model (its own comment: it "slightly differs from the published
    paper"). At d_model = 10, positions 0-10, its largest difference from layout="concatenated" is
    about 0.55, and ``check_encoding_table`` does not report it as ``concatenated``.

    >>> table = sinusoidal_encoding(3, 4)
    >>> table.shape
    torch.Size([3, 4])
    >>> table[0].tolist()  # position 0: sin 0 = 0, cos 0 = 1
    [0.0, 1.0, 0.0, 1.0]
    >>> sinusoidal_encoding(3, 4, layout="concatenated")[0].tolist()
    [0.0, 0.0, 1.0, 1.0]

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



# --------------------------------------------------------------------------- checking a table (chapter 5)
# Tables of this encoding circulate in tutorials, some with errors. ``faulty_sinusoidal_encoding``
# reproduces the usual implementation mistakes so that their symptoms can be recognised;
# ``check_encoding_table`` compares any table with the formula and names the likely cause.

MISTAKES: dict[str, str] = {
    "i_instead_of_2i": "the exponent uses i / d_model where the formula has 2i / d_model "
    "(the frequencies fall half as fast: later columns oscillate too quickly)",
    "column_as_2i": "the exponent uses the column index j / d_model instead of the pair's 2i / d_model "
    "(sine columns are right, every cosine column has a slightly lower frequency than its sine)",
    "column_as_i": "the exponent uses 2j / d_model with j the column index instead of the pair index i "
    "(frequencies fall twice as fast: the right half of the table is almost constant)",
    "sin_cos_swapped": "sine and cosine are swapped (row 0 reads 1, 0, 1, 0, ... instead of 0, 1, 0, 1, ...)",
    "degrees": "the angles were taken in degrees instead of radians (values change very slowly down the rows)",
    "base_1000": "the base is 1000 instead of 10000 (the low-frequency columns change too quickly)",
    "positions_from_1": "the rows start at position 1 instead of 0 (the first row is not 0, 1, 0, 1, ...)",
    "concatenated": "not a mistake but the other layout: all sines first, then all cosines, "
    "with the paper's frequencies (tensor2tensor's timing signal is concatenated too, but its "
    "frequencies differ slightly, so it does not match this)",
}


def faulty_sinusoidal_encoding(n_positions: int, d_model: int, mistake: str, base: float = 10000.0) -> torch.Tensor:
    """The sinusoidal table with one of the ``MISTAKES`` made, for teaching and tests.

    Shapes:
        returns: (n_positions, d_model) float64
    """
    _check_sizes(n_positions, d_model)
    if mistake not in MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}; known: {sorted(MISTAKES)}")
    if mistake == "concatenated":
        return sinusoidal_encoding(n_positions, d_model, layout="concatenated", base=base, dtype=torch.float64)
    if mistake == "base_1000":
        return sinusoidal_encoding(n_positions, d_model, base=1000.0, dtype=torch.float64)
    first = 1 if mistake == "positions_from_1" else 0
    pos = torch.arange(first, first + n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    j = torch.arange(d_model, dtype=torch.float64)[None, :]  # (1, C) column index
    two_i = 2 * torch.div(j, 2, rounding_mode="floor")  # (1, C) 2i of the pair each column belongs to
    exponent = {
        "i_instead_of_2i": (two_i / 2) / d_model,
        "column_as_2i": j / d_model,
        "column_as_i": 2 * j / d_model,
    }.get(mistake, two_i / d_model)
    angles = pos / base**exponent  # (P, 1) / (1, C) -> (P, C)
    if mistake == "degrees":
        angles = torch.deg2rad(angles)
    is_sin = (j.long() % 2 == 0).expand_as(angles)  # (P, C)
    if mistake == "sin_cos_swapped":
        is_sin = ~is_sin
    return torch.where(is_sin, angles.sin(), angles.cos())


@dataclass(frozen=True)
class CellMismatch:
    pos: int
    dim: int
    expected: float
    got: float


@dataclass(frozen=True)
class TableReport:
    """What ``check_encoding_table`` found. ``ok`` is True when every cell matches the formula."""

    ok: bool
    tolerance: float
    max_abs_error: float
    mismatches: tuple[CellMismatch, ...]
    likely_cause: str
    n_cells: int

    def summary(self) -> str:
        if self.ok:
            return f"all {self.n_cells} cells match the formula (tolerance {self.tolerance:.1e})"
        return (
            f"{len(self.mismatches)} of {self.n_cells} cells differ from the formula "
            f"(tolerance {self.tolerance:.1e}, largest difference {self.max_abs_error:.3g}).\n"
            f"Likely cause: {self.likely_cause}"
        )

    def mismatch_frame(self, limit: int = 20):
        """The first ``limit`` mismatching cells as a pandas DataFrame (pos, dim, expected, got, difference)."""
        from course_lib.extras import require

        pd = require("pandas", "chapters", "mismatch_frame")

        rows = [
            {"pos": m.pos, "dim": m.dim, "expected": m.expected, "got": m.got, "difference": m.got - m.expected}
            for m in self.mismatches[:limit]
        ]
        return pd.DataFrame(rows, columns=["pos", "dim", "expected", "got", "difference"])

    def __str__(self) -> str:
        return self.summary()


def _infer_decimals(table: torch.Tensor, max_decimals: int = 12) -> int | None:
    """The number of decimals the table was rounded to (None when it looks unrounded)."""
    for k in range(max_decimals + 1):
        scaled = table * 10.0**k
        if bool(((scaled - scaled.round()).abs() < 1e-6).all()):
            return k
    return None


def check_encoding_table(
    table,
    base: float = 10000.0,
    decimals: int | None = None,
    first_position: int = 0,
) -> TableReport:
    """Compare a table of sinusoidal encodings (rows = positions, columns = dimensions) with the formula.

    ``table`` may be a tensor, an array or nested lists, e.g. copied from a tutorial. Values are
    compared within half a unit of the last decimal (``decimals``; inferred from the table when
    not given). When cells differ, the table is compared with every mistake in ``MISTAKES`` and the
    report names the one it matches, or describes the pattern of the differences.

    Shapes:
        table: (n_positions, d_model), rows for positions first_position, first_position + 1, ...
    """
    got = torch.as_tensor(table, dtype=torch.float64)
    if got.dim() != 2:
        raise ValueError(f"expected a table of shape (n_positions, d_model), got shape {tuple(got.shape)}")
    n_positions, d_model = got.shape
    if decimals is None:
        decimals = _infer_decimals(got)
    tol = 1e-9 if decimals is None else 0.5 * 10.0**-decimals + 1e-12
    positions = torch.arange(first_position, first_position + n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    expected = torch.zeros(n_positions, d_model, dtype=torch.float64)
    angles = positions * pair_frequencies(d_model, base)[None, :]  # (P, ceil(C/2))
    expected[:, 0::2] = angles.sin()
    expected[:, 1::2] = angles.cos()[:, : d_model // 2]
    err = (got - expected).abs()
    wrong = err > tol
    mismatches = tuple(
        CellMismatch(int(p), int(d), float(expected[p, d]), float(got[p, d])) for p, d in wrong.nonzero().tolist()
    )
    n_cells = n_positions * d_model
    if not mismatches:
        return TableReport(True, tol, float(err.max()), (), "none: the table follows the formula", n_cells)
    return TableReport(False, tol, float(err.max()), mismatches, _likely_cause(got, wrong, tol, base, first_position), n_cells)


def _likely_cause(got: torch.Tensor, wrong: torch.Tensor, tol: float, base: float, first_position: int) -> str:
    n_positions, d_model = got.shape
    n_wrong = int(wrong.sum())
    # the known mistake that explains the table best (a few typos on top of a mistake still count)
    best, best_left = None, n_wrong
    for mistake in MISTAKES:
        if mistake == "positions_from_1" and first_position != 0:
            continue
        variant = faulty_sinusoidal_encoding(n_positions + first_position, d_model, mistake, base=base)[first_position:]
        left = int(((got - variant).abs() > tol).sum())
        if left < best_left:
            best, best_left = mistake, left
    if best is not None and best_left <= n_wrong // 4:
        extra = "" if best_left == 0 else f" (plus {best_left} cell(s) that differ even from that)"
        return MISTAKES[best] + extra
    cols = sorted({int(d) for d in wrong.nonzero()[:, 1]})
    if n_wrong <= max(2, wrong.numel() // 20):
        return "a few isolated cells differ: most likely transcription or rounding errors in the table itself"
    if all(c % 2 == 1 for c in cols):
        return "only cosine (odd) columns differ: check the exponent and the function used for odd dimensions"
    if all(c % 2 == 0 for c in cols):
        return "only sine (even) columns differ: check the exponent and the function used for even dimensions"
    if not wrong[0].any():
        return "row 0 is right but later rows differ: the frequencies (exponent or base) are probably wrong"
    return "many cells differ in no pattern this checker knows: recompute a few cells by hand from the formula"

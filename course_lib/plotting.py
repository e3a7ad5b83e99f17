"""Figures shared by the chapters: attention heatmaps and curves.

Every function draws on a matplotlib Axes (made if not given) and returns it,
so a chapter can place several side by side.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def _token_ticks(ax, keys: Sequence[str] | None, queries: Sequence[str] | None) -> None:
    """Tokens as tick labels: keys along x (written vertically when any is longer than 2 characters), queries along y."""
    if keys is not None:
        ax.set_xticks(range(len(keys)), list(keys), rotation=90 if max(map(len, keys), default=0) > 2 else 0)
    if queries is not None:
        ax.set_yticks(range(len(queries)), list(queries))


def plot_attention(
    weights,
    keys: Sequence[str] | None = None,
    queries: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
    annotate: bool = False,
    vmax: float | None = None,
) -> plt.Axes:
    """Heatmap of one (T, S) weight matrix: rows are queries, columns keys.

    Shapes:
        weights: (T, S) tensor or array, each row a distribution over the keys
    """
    w = _to_numpy(weights)
    if w.ndim != 2:
        raise ValueError(f"plot_attention expects one (T, S) matrix, got shape {w.shape}: select a batch element and head first")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2, 0.45 * w.shape[0] + 1.2))
    top = float(w.max()) if vmax is None else vmax  # vmax: one colour scale shared by several heatmaps
    im = ax.imshow(w, cmap=cmap, vmin=0.0, vmax=max(1e-9, top), aspect="auto")
    _token_ticks(ax, keys, queries)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    if annotate:
        for t in range(w.shape[0]):
            for s in range(w.shape[1]):
                ax.text(s, t, f"{w[t, s]:.2f}", ha="center", va="center", fontsize=7, color="white" if w[t, s] < 0.6 * w.max() else "black")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def plot_heads(
    weights,
    keys=None,
    queries=None,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 2.6,
    colorbar: bool = True,
):
    """Several (T, S) heatmaps side by side, e.g. every head of one layer, on one colour scale
    (0 to the largest weight of any head), with one colour bar for all of them.

    Shapes:
        weights: (H, T, S)
    """
    w = _to_numpy(weights)
    if w.ndim != 3:
        raise ValueError(f"plot_heads expects (H, T, S), got shape {w.shape}")
    H = w.shape[0]
    ncols = ncols or min(H, 4)
    nrows = -(-H // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= H:
            ax.axis("off")
            continue
        plot_attention(w[h], keys, queries, ax=ax, title=titles[h] if titles else f"head {h}", colorbar=False, vmax=float(w.max()))
        if h % ncols:
            ax.set_ylabel("")
    fig.tight_layout()
    if colorbar:
        fig.colorbar(axes.flat[0].images[0], ax=axes.ravel().tolist(), fraction=0.025, pad=0.02, label="attention weight")
    return fig


def plot_encoding(
    table,
    ax: plt.Axes | None = None,
    title: str | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
    vmax: float | None = 1.0,
) -> plt.Axes:
    """Heatmap of a positional-encoding table: rows are positions, columns dimensions.

    Shapes:
        table: (n_positions, d_model); values in [-1, 1] for sinusoids (use vmax=None otherwise)
    """
    w = _to_numpy(table)
    if w.ndim != 2:
        raise ValueError(f"plot_encoding expects one (n_positions, d_model) table, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    limit = float(np.abs(w).max()) if vmax is None else vmax
    im = ax.imshow(w, cmap=cmap, vmin=-max(limit, 1e-12), vmax=max(limit, 1e-12), aspect="auto", interpolation="nearest")
    ax.set_xlabel("dimension")
    ax.set_ylabel("position")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_mask(
    mask,
    keys: Sequence[str] | None = None,
    queries: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    legend: bool = True,
) -> plt.Axes:
    """A boolean (T, S) mask as a grid: filled = may attend (True), blank = masked (False), with a
    legend saying so (to the right of the grid; pass legend=False for all but one of a row of masks).

    Shapes:
        mask: (T, S) bool (select one batch element and head of a (B, H, T, S) mask first)
    """
    m = _to_numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"plot_mask expects one (T, S) mask, got shape {m.shape}: index the batch and head axes first")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.4 * m.shape[1] + 1.8, 0.4 * m.shape[0] + 1.2))
    from matplotlib.colors import ListedColormap

    two_colours = ListedColormap(["#eeeeee", "#2e7d32"])  # False = light grey, True = green
    ax.imshow(m.astype(float), cmap=two_colours, vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    ax.set_xticks(np.arange(m.shape[1]) - 0.5, minor=True)
    ax.set_yticks(np.arange(m.shape[0]) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    _token_ticks(ax, keys, queries)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    if legend:
        from matplotlib.patches import Patch

        ax.legend(
            handles=[Patch(fc="#2e7d32", label="may attend (True)"), Patch(fc="#eeeeee", ec="gray", label="masked (False)")],
            loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=10, frameon=False,
        )  # fmt: skip
    return ax

"""bertviz attention views for the chapters.

``head_view`` and ``model_view`` take the same arguments as bertviz's own
functions. bertviz hard-codes public CDN URLs for require.js, d3 and jQuery;
this module is where the book serves them locally instead (see the offline-book
work), so chapters call these wrappers, never bertviz directly.

Shapes:
    attention: a tuple with one tensor per layer, each (B=1, H, T, T)
"""

from __future__ import annotations

from typing import Sequence

import torch


def _check(attention, tokens: Sequence[str]) -> None:
    if not isinstance(attention, (tuple, list)) or not attention:
        raise TypeError("attention must be a non-empty tuple of per-layer tensors of shape (1, H, T, T)")
    for i, a in enumerate(attention):
        if not isinstance(a, torch.Tensor) or a.dim() != 4 or a.shape[0] != 1 or a.shape[-1] != len(tokens):
            got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            raise ValueError(f"layer {i}: expected attention of shape (1, H, T, T) with T={len(tokens)} tokens, got {got}")


def head_view(attention, tokens: Sequence[str], sentence_b_start: int | None = None, **kwargs):
    """Interactive per-head view of one or more layers (bertviz ``head_view``)."""
    from bertviz import head_view as _head_view

    _check(attention, tokens)
    return _head_view(attention, list(tokens), sentence_b_start, **kwargs)


def model_view(attention, tokens: Sequence[str], sentence_b_start: int | None = None, **kwargs):
    """Every layer and head at once (bertviz ``model_view``)."""
    from bertviz import model_view as _model_view

    _check(attention, tokens)
    return _model_view(attention, list(tokens), sentence_b_start, **kwargs)

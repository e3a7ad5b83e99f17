"""Boolean attention masks (chapter 6, used from chapter 3 on).

Dimension legend: B batch, H heads, T query length, S key length.

One convention, everywhere in course_lib:

    mask[b, h, t, s] is True  -> query t MAY attend to key s
    mask[b, h, t, s] is False -> the score is replaced by -inf before softmax

Masks are ``torch.bool`` and only need to *broadcast* to ``(B, H, T, S)``:
a padding mask is ``(B, 1, 1, S)``, a causal mask ``(T, T)``; ``combine_masks``
ANDs any number of them.

This is the polarity of the boolean ``attn_mask`` of
``torch.nn.functional.scaled_dot_product_attention``. It is the *opposite* of
``key_padding_mask`` and of a boolean ``attn_mask`` in ``torch.nn.MultiheadAttention``
/ ``torch.nn.Transformer`` (True = ignore): convert with ``~mask``
(see ``to_torch_key_padding_mask``).

A row in which every key is masked ("fully masked row", e.g. a padding query
that also has all keys padded) would give softmax(-inf, ..., -inf) = NaN.
``course_lib.attention.scaled_dot_product_attention`` instead returns weights of
exactly 0 for such a row, so its output row is the zero vector, and gradients
stay finite.
"""

from __future__ import annotations

import torch

__all__ = [
    "padding_mask",
    "causal_mask",
    "combine_masks",
    "check_mask",
    "to_torch_key_padding_mask",
]


def padding_mask(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """True where the key is a real token, False where it is padding.

    Shapes:
        tokens: (B, S) integer token ids
        returns: (B, 1, 1, S) bool, broadcastable to (B, H, T, S)
    """
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"padding_mask expects tokens as a torch.Tensor of shape (B, S), got {type(tokens).__name__}")
    if tokens.dim() != 2:
        raise ValueError(f"padding_mask expects tokens of shape (B, S), got {tuple(tokens.shape)}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"padding_mask expects integer token ids, got dtype {tokens.dtype}")
    return (tokens != pad_id)[:, None, None, :]  # (B, S) -> (B, 1, 1, S)


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Lower-triangular mask: query t may attend to keys 0..t only.

    Shapes:
        returns: (T, T) bool, broadcastable to (B, H, T, T)
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"causal_mask expects a positive int length T, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND several boolean masks together (None entries are skipped).

    A (B, 1, 1, S) padding mask and a (T, T) causal mask combine to (B, 1, T, T):
    a position may be attended only if *every* mask allows it.
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    for m in present:
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            got = m.dtype if isinstance(m, torch.Tensor) else type(m).__name__
            raise TypeError(f"combine_masks expects boolean masks (True = may attend), got {got}")
    out = present[0]
    for m in present[1:]:
        try:
            out = out & m
        except RuntimeError as err:
            raise ValueError(
                f"masks of shapes {tuple(out.shape)} and {tuple(m.shape)} do not broadcast together"
            ) from err
    return out


def check_mask(mask: torch.Tensor, target_shape: tuple[int, ...], name: str = "mask") -> torch.Tensor:
    """Validate a boolean mask against the scores' shape and return it.

    Raises TypeError for non-boolean masks (a float 0/1 mask is ambiguous: does 1
    mean keep or drop?) and ValueError when it does not broadcast to ``target_shape``.
    """
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of dtype torch.bool, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{name} must have dtype torch.bool (True = may attend), got {mask.dtype}. "
            f"Convert a 0/1 mask with `{name}.bool()` if 1 means 'keep', or `{name} == 0` if 1 means 'drop'."
        )
    try:
        torch.broadcast_shapes(mask.shape, target_shape)
        broadcast_ok = torch.broadcast_shapes(mask.shape, target_shape) == torch.Size(target_shape)
    except RuntimeError:
        broadcast_ok = False
    if not broadcast_ok:
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to the scores' shape {tuple(target_shape)} "
            "(B, H, T, S) / (..., T, S). A padding mask is (B, 1, 1, S), a causal mask (T, T)."
        )
    return mask


def to_torch_key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """Convert a course_lib padding mask (B, 1, 1, S), True = attend, to
    ``torch.nn.MultiheadAttention``'s ``key_padding_mask`` (B, S), True = ignore."""
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
        raise ValueError(f"expected a padding mask of shape (B, 1, 1, S), got {tuple(mask.shape)}")
    return ~mask[:, 0, 0, :]  # (B, 1, 1, S) -> (B, S), polarity flipped

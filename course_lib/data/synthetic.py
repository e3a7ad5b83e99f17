"""Synthetic sequence tasks for chapters 4-6 (generated, never downloaded).

Dimension legend: N examples, T sequence length.

    letter_digit_task   chapter 4: each position holds a (letter, digit) pair; the model must
                        report the digit one step back ("previous token" lookup) and the digit
                        at the other place where the same letter occurs ("matching token" lookup).
                        One attention head cannot do both at once: several heads can.
    copy_back_task      chapter 5: output the token ``shift`` positions back; only solvable
                        with positional information, and sequences of any length can be made,
                        so extrapolation beyond the trained length can be measured.
    TINY_CORPUS         chapter 6: a handful of short sentences for a tiny causal language model.
    WordVocab           word <-> id for TINY_CORPUS (with <pad>, <bos>, <eos>).

Every generator takes an explicit ``torch.Generator`` (or a seed), so chapters are reproducible.
Targets that do not exist (e.g. "the token one step back" at position 0) are ``IGNORE``
(-100), the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch

__all__ = [
    "IGNORE",
    "LETTERS",
    "LetterDigitBatch",
    "letter_digit_task",
    "letter_digit_labels",
    "CopyBackBatch",
    "copy_back_task",
    "TINY_CORPUS",
    "WordVocab",
]

IGNORE = -100  # torch.nn.functional.cross_entropy's default ignore_index
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _generator(seed_or_generator: int | torch.Generator | None) -> torch.Generator:
    if isinstance(seed_or_generator, torch.Generator):
        return seed_or_generator
    return torch.Generator().manual_seed(0 if seed_or_generator is None else int(seed_or_generator))


# --------------------------------------------------------------------------- chapter 4


class LetterDigitBatch(NamedTuple):
    """One batch of the letter-digit task.

    Shapes:
        tokens: (N, T, 2) long - field 0 the letter id, field 1 the digit 0..9
        prev_target: (N, T) long - the digit at t-1 (IGNORE at t = 0)
        match_target: (N, T) long - the digit at the other position with the same letter
        partner: (N, T) long - the index of that other position
    """

    tokens: torch.Tensor
    prev_target: torch.Tensor
    match_target: torch.Tensor
    partner: torch.Tensor


def letter_digit_task(
    n: int, length: int = 12, n_letters: int = 16, seed: int | torch.Generator | None = 0
) -> LetterDigitBatch:
    """``length / 2`` distinct letters, each placed at two random positions, each position with a random digit.

    Example (length 6): the previous digit (``IGNORE`` at t = 0), and the matching digit,
    the one beside the *other* ``c``, ``e`` or ``d``:

    >>> batch = letter_digit_task(1, length=6, n_letters=6, seed=0)
    >>> letter_digit_labels(batch.tokens[0])
    ['c6', 'e9', 'e8', 'd6', 'c6', 'd8']
    >>> batch.prev_target[0].tolist()
    [-100, 6, 9, 8, 6, 6]
    >>> batch.match_target[0].tolist()
    [6, 8, 9, 8, 6, 6]
    """
    if length % 2 or length < 4:
        raise ValueError(f"length must be even and >= 4 (every letter occurs twice), got {length}")
    if not length // 2 <= n_letters <= len(LETTERS):
        raise ValueError(f"n_letters must be in [{length // 2}, {len(LETTERS)}] for length {length}, got {n_letters}")
    g = _generator(seed)
    half = length // 2
    letter_choice = torch.rand(n, n_letters, generator=g).argsort(dim=-1)[:, :half]  # (N, T/2) distinct letters
    order = torch.rand(n, length, generator=g).argsort(dim=-1)  # (N, T) a random placement
    slot_letter = torch.cat([letter_choice, letter_choice], dim=1)  # (N, T): slot j and j + T/2 share a letter
    letters = torch.empty(n, length, dtype=torch.long)
    letters.scatter_(1, order, slot_letter)  # position order[j] gets slot j's letter
    digits = torch.randint(0, 10, (n, length), generator=g)
    # the partner of position order[j] is position order[(j + T/2) mod T]
    partner_of_slot = order.roll(shifts=half, dims=1)  # (N, T)
    partner = torch.empty_like(order)
    partner.scatter_(1, order, partner_of_slot)
    match_target = digits.gather(1, partner)
    prev_target = torch.full_like(digits, IGNORE)
    prev_target[:, 1:] = digits[:, :-1]
    return LetterDigitBatch(torch.stack([letters, digits], dim=-1), prev_target, match_target, partner)


def letter_digit_labels(tokens: torch.Tensor) -> list[str]:
    """Readable labels like ``['c4', 'a1', ...]`` for one sequence of shape (T, 2)."""
    if tokens.dim() != 2 or tokens.shape[-1] != 2:
        raise ValueError(f"expected one sequence of (letter, digit) pairs of shape (T, 2), got {tuple(tokens.shape)}")
    return [f"{LETTERS[int(a)]}{int(d)}" for a, d in tokens]


# --------------------------------------------------------------------------- chapter 5


class CopyBackBatch(NamedTuple):
    """Shapes: tokens (N, T) long; target (N, T) long, IGNORE where t < shift."""

    tokens: torch.Tensor
    target: torch.Tensor


def copy_back_task(
    n: int, length: int, vocab_size: int = 10, shift: int = 1, seed: int | torch.Generator | None = 0
) -> CopyBackBatch:
    """Random tokens; the target at position t is the token at t - shift.

    >>> copy_back_task(1, 6, shift=1, seed=0)
    CopyBackBatch(tokens=tensor([[4, 9, 3, 0, 3, 9]]), target=tensor([[-100,    4,    9,    3,    0,    3]]))

    Attention without positions sees a *set* of tokens and cannot know which one is
    ``shift`` steps back, so this task measures what a positional encoding provides.
    """
    if not 0 < shift < length:
        raise ValueError(f"shift must be in [1, length), got shift={shift}, length={length}")
    g = _generator(seed)
    tokens = torch.randint(0, vocab_size, (n, length), generator=g)
    target = torch.full_like(tokens, IGNORE)
    target[:, shift:] = tokens[:, :-shift]
    return CopyBackBatch(tokens, target)


# --------------------------------------------------------------------------- chapter 6

TINY_CORPUS: tuple[str, ...] = (
    "I am a cat",
    "I am a student",
    "you are a cat",
    "you are a dog",
    "she is a teacher",
    "he is a student",
    "we are cats",
    "they are dogs",
    "the cat is small",
    "the dog is big",
    "I like cats",
    "she likes dogs",
    "the small cat likes the big dog",
    "cats are small",
)


@dataclass(frozen=True)
class WordVocab:
    """Word-level vocabulary with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2."""

    words: tuple[str, ...]

    PAD, BOS, EOS = 0, 1, 2

    @classmethod
    def from_sentences(cls, sentences: Sequence[str]) -> "WordVocab":
        seen: dict[str, None] = {}
        for sentence in sentences:
            for word in sentence.split():
                seen.setdefault(word, None)
        return cls(("<pad>", "<bos>", "<eos>", *seen))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, length: int | None = None) -> list[int]:
        """``<bos> w1 .. wn <eos>``, right-padded with ``<pad>`` to ``length`` if given."""
        index = {w: i for i, w in enumerate(self.words)}
        try:
            ids = [self.BOS] + [index[w] for w in sentence.split()] + [self.EOS]
        except KeyError as err:
            raise KeyError(f"word {err.args[0]!r} is not in the vocabulary") from None
        if length is not None:
            if len(ids) > length:
                raise ValueError(f"{sentence!r} needs {len(ids)} tokens, more than length={length}")
            ids += [self.PAD] * (length - len(ids))
        return ids

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def batch(self, sentences: Sequence[str], length: int | None = None) -> torch.Tensor:
        """(N, length) long tensor of padded ids (length defaults to the longest sentence)."""
        length = length or max(len(s.split()) + 2 for s in sentences)
        return torch.tensor([self.encode(s, length) for s in sentences], dtype=torch.long)

"""Human-written dates -> ISO dates: the toy translation task of chapters 1 and 7.

    >>> make_date_pairs(3, seed=0)
    [('2050/12/05', '2050-12-05'), ('November 30 1992', '1992-11-30'), ('10-MAR-37', '2037-03-10')]

A source string is one date written in one of ``FORMATS``; the target is always the ISO
date. Weekday names are the real ones (``datetime``). Characters are the tokens, so the
vocabularies are tiny. Five of the formats, for one day:

    >>> len(FORMATS)
    17
    >>> day = dt.date(1994, 9, 27)
    >>> day.strftime("%A")
    'Tuesday'
    >>> for fmt in ("month d, yyyy", "m/d/yy", "WEEKDAY, MONTH d, yyyy", "d mon yyyy", "dd.mm.yyyy"):
    ...     print(format_date(day, fmt))
    september 27, 1994
    9/27/94
    TUESDAY, SEPTEMBER 27, 1994
    27 sep 1994
    27.09.1994

(``tests/test_data_review.py`` checks that the example beside each format in ``FORMATS``
is what ``format_date`` writes for that day.)

Conventions that keep the task well defined (one right answer per source):
    - a slash means month first (``9/27/94``, ``09/27/1994``) unless the year
      comes first (``1994/09/27``); a dot means day first (``27.09.1994``);
    - two-digit years only appear for 1950-2049 (``94`` -> 1994, ``07`` -> 2007);
      four-digit formats draw from 1900-2099.

Shapes (N examples, S source length, T target length = 11 for ISO dates):
    src:     (N, S) long, right-padded with ``src_vocab.pad_id``
    tgt_in:  (N, T) long, ``<bos>`` + the ISO string      (the decoder's input)
    tgt_out: (N, T) long, the ISO string + ``<eos>``      (what it must predict)
Teacher forcing: ``tgt_in`` is ``tgt_out`` shifted right by one, starting with
``<bos>``; greedy decoding at test time starts from the same ``<bos>``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch.utils.data import DataLoader

__all__ = [
    "CharVocab",
    "FORMATS",
    "format_date",
    "make_date_pairs",
    "DateSplit",
    "DateTask",
    "load_date_task",
    "exact_match",
    "SOURCE_CHARS",
    "TARGET_CHARS",
]

MONTHS = ["january", "february", "march", "april", "may", "june",
          "july", "august", "september", "october", "november", "december"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]  # date.weekday() order

SOURCE_CHARS = " ,.-/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TARGET_CHARS = "-0123456789"

FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2099, 12, 31)  # four-digit-year formats
FIRST_DAY_YY, LAST_DAY_YY = dt.date(1950, 1, 1), dt.date(2049, 12, 31)  # two-digit-year formats


# --------------------------------------------------------------------------- vocabulary


class CharVocab:
    """Characters <-> ids, with four special tokens first: ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, ``<unk>``=3.

    ``encode`` maps unknown characters to ``<unk>``; ``decode`` stops at the
    first ``<eos>`` and skips ``<pad>``/``<bos>``.
    """

    specials = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, chars: str):
        if len(set(chars)) != len(chars):
            raise ValueError(f"CharVocab expects distinct characters, got duplicates in {chars!r}")
        self.itos: list[str] = list(self.specials) + list(chars)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} tokens: {''.join(self.itos[len(self.specials):])!r} + specials)"

    def encode(self, text: str) -> list[int]:
        """One id per character (no ``<bos>``/``<eos>`` added)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return [self.stoi.get(ch, self.unk_id) for ch in text]

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """Characters up to the first ``<eos>``; ``<pad>``/``<bos>`` skipped, ``<unk>`` shown as ``?``."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects one sequence of ids (1-D), got shape {tuple(ids.shape)}: decode each row")
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self):
                raise ValueError(f"token id {i} is outside the vocabulary (size {len(self)})")
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append("?" if i == self.unk_id else self.itos[i])
        return "".join(out)

    def encode_batch(self, texts: Sequence[str], length: int | None = None, bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Encode and right-pad with ``pad_id`` to ``length`` (default: the longest).

        Shapes:
            returns (N, length) long
        """
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"encode_batch expects strings, got {type(t).__name__}")
        extra = int(bos) + int(eos)
        longest = max((len(t) for t in texts), default=0) + extra
        length = longest if length is None else length
        if longest > length:
            raise ValueError(f"a sequence has {longest} tokens, more than length={length}")
        ids = self._encode_ascii(texts, longest - extra)  # (N, L) with L = the longest text, pad_id after each
        if ids is None:  # non-ASCII text: the plain (slower) way
            rows = [self.encode(t) + [self.pad_id] * (longest - extra - len(t)) for t in texts]
            ids = torch.tensor(rows, dtype=torch.long).reshape(len(texts), longest - extra)
        out = torch.full((len(texts), length), self.pad_id, dtype=torch.long)  # (N, length)
        out[:, int(bos) : int(bos) + ids.shape[1]] = ids
        if bos:
            out[:, 0] = self.bos_id
        if eos:
            lengths = torch.tensor([len(t) for t in texts], dtype=torch.long)
            out[torch.arange(len(texts)), lengths + int(bos)] = self.eos_id
        return out

    def _encode_ascii(self, texts: Sequence[str], width: int) -> torch.Tensor | None:
        """Vectorised encode through a 256-entry lookup table; None if a text is not plain ASCII."""
        try:
            blob = "".join(t.ljust(width, "\0") for t in texts).encode("ascii")
        except UnicodeEncodeError:
            return None
        if any("\0" in t for t in texts):
            return None
        if not hasattr(self, "_lut"):
            lut = torch.full((256,), self.unk_id, dtype=torch.long)
            for ch, i in self.stoi.items():
                if len(ch) == 1 and ord(ch) < 256:
                    lut[ord(ch)] = i
            lut[0] = self.pad_id
            self._lut = lut
        codes = torch.frombuffer(bytearray(blob), dtype=torch.uint8).long() if blob else torch.zeros(0, dtype=torch.long)
        return self._lut[codes].reshape(len(texts), width)  # (N, width)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        """``decode`` for each row of an (N, L) tensor."""
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
            raise ValueError(f"decode_batch expects an (N, L) tensor of ids, got {getattr(ids, 'shape', type(ids).__name__)}")
        return [self.decode(row) for row in ids.tolist()]


# --------------------------------------------------------------------------- formats


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _m(d: dt.date) -> str:
    return MONTHS[d.month - 1]


def _w(d: dt.date) -> str:
    return WEEKDAYS[d.weekday()]


# name -> (function date -> string, uses a two-digit year). Examples are for 1994-09-27.
FORMATS: dict[str, tuple[Callable[[dt.date], str], bool]] = {
    "month d, yyyy":            (lambda d: f"{_m(d)} {d.day}, {d.year}", False),             # september 27, 1994
    "Month d yyyy":             (lambda d: f"{_m(d).title()} {d.day} {d.year}", False),      # September 27 1994
    "WEEKDAY, MONTH d, yyyy":   (lambda d: f"{_w(d)}, {_m(d)} {d.day}, {d.year}".upper(), False),  # TUESDAY, SEPTEMBER 27, 1994
    "weekday, month d, yyyy":   (lambda d: f"{_w(d)}, {_m(d)} {d.day}, {d.year}", False),    # tuesday, september 27, 1994
    "m/d/yy":                   (lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}", True),   # 9/27/94
    "mm/dd/yyyy":               (lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}", False),    # 09/27/1994
    "d mon yyyy":               (lambda d: f"{d.day} {_m(d)[:3]} {d.year}", False),          # 27 sep 1994
    "dd.mm.yyyy":               (lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}", False),    # 27.09.1994
    "d.m.yy":                   (lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}", True),   # 27.9.94
    "Mon d yyyy":               (lambda d: f"{_m(d)[:3].title()} {d.day} {d.year}", False),  # Sep 27 1994
    "mon. d, yyyy":             (lambda d: f"{_m(d)[:3]}. {d.day}, {d.year}", False),        # sep. 27, 1994
    "yyyy mm dd":               (lambda d: f"{d.year} {d.month:02d} {d.day:02d}", False),    # 1994 09 27
    "yyyy/mm/dd":               (lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}", False),    # 1994/09/27
    "d Month yyyy":             (lambda d: f"{d.day} {_m(d).title()} {d.year}", False),      # 27 September 1994
    "Wkd, d Mon yyyy":          (lambda d: f"{_w(d)[:3].title()}, {d.day} {_m(d)[:3].title()} {d.year}", False),  # Tue, 27 Sep 1994
    "the dth of month yyyy":    (lambda d: f"the {_ordinal(d.day)} of {_m(d)} {d.year}", False),  # the 27th of september 1994
    "dd-MON-yy":                (lambda d: f"{d.day:02d}-{_m(d)[:3].upper()}-{d.year % 100:02d}", True),  # 27-SEP-94
}


def format_date(date: dt.date, fmt: str) -> str:
    """Write ``date`` in the human format named ``fmt`` (a key of ``FORMATS``)."""
    if fmt not in FORMATS:
        raise KeyError(f"unknown date format {fmt!r}; known: {list(FORMATS)}")
    write, two_digit_year = FORMATS[fmt]
    if two_digit_year and not FIRST_DAY_YY <= date <= LAST_DAY_YY:
        raise ValueError(f"format {fmt!r} has a two-digit year, so it is only defined for 1950-2049, got {date}")
    return write(date)


def _random_date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def make_date_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (human date, ISO date) pairs with distinct sources, deterministic by ``seed``.

    Each pair picks a format uniformly from ``FORMATS``, then a day uniformly
    from the format's year range (1900-2099, or 1950-2049 for two-digit years).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = random.Random(seed)
    names = list(FORMATS)
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        fmt = rng.choice(names)
        first, last = (FIRST_DAY_YY, LAST_DAY_YY) if FORMATS[fmt][1] else (FIRST_DAY, LAST_DAY)
        date = _random_date(rng, first, last)
        source = format_date(date, fmt)
        if source in seen:  # a repeat would leak between the train and test splits
            continue
        seen.add(source)
        pairs.append((source, date.isoformat()))
    return pairs


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class DateSplit:
    """One split as tensors (see the module's Shapes block)."""

    pairs: list[tuple[str, str]]
    src: torch.Tensor  # (N, S)
    tgt_in: torch.Tensor  # (N, T)
    tgt_out: torch.Tensor  # (N, T)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def sources(self) -> list[str]:
        return [s for s, _ in self.pairs]

    @property
    def targets(self) -> list[str]:
        return [t for _, t in self.pairs]


@dataclass(frozen=True)
class DateTask:
    """The date task: splits, vocabularies and padded lengths.

    ``max_src_len`` (S) and ``max_tgt_len`` (T, counting ``<bos>``/``<eos>``) are
    the padded lengths of both splits.
    """

    train: DateSplit
    test: DateSplit
    src_vocab: CharVocab
    tgt_vocab: CharVocab
    max_src_len: int
    max_tgt_len: int

    @property
    def train_pairs(self) -> list[tuple[str, str]]:
        return self.train.pairs

    @property
    def test_pairs(self) -> list[tuple[str, str]]:
        return self.test.pairs

    def encode_sources(self, texts: Sequence[str]) -> torch.Tensor:
        """Encode new human dates (e.g. typed by a reader): (N, S') with S' = the longest of them."""
        return self.src_vocab.encode_batch(texts)

    def loader(
        self, split: str = "train", batch_size: int = 128, shuffle: bool | None = None, seed: int = 0, bucket: bool = False
    ) -> DataLoader:
        """Batches of ``(src, tgt_in, tgt_out)``; shuffled (by ``seed``) for train, in order for test.

        Whole batches are sliced out of the tensors at once (a batch sampler),
        which is much faster than collating example by example. Iterating the
        loader again gives a new (still seeded) order.

        ``bucket=True`` groups sources of similar length into the same batch
        and cuts each batch's ``src`` to its longest source: an RNN then runs
        over fewer padded steps (about twice as fast here). The batch order is
        still shuffled. The catch: here lengths go with formats, so a bucketed
        batch holds only a few formats, and chapter 1's GRU learns markedly
        worse per epoch with it; the chapter does not use it.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        data = self.train if split == "train" else self.test
        shuffle = split == "train" if shuffle is None else shuffle
        lengths = (data.src != self.src_vocab.pad_id).sum(dim=1)  # (N,)
        sampler = _BatchOrder(lengths, batch_size, shuffle, bucket, torch.Generator().manual_seed(seed))
        dataset = _SliceDataset(data.src, data.tgt_in, data.tgt_out, lengths if bucket else None)
        return DataLoader(dataset, sampler=sampler, batch_size=None)


class _BatchOrder:
    """Yields lists of example indices, one list per batch (a DataLoader sampler)."""

    def __init__(self, lengths: torch.Tensor, batch_size: int, shuffle: bool, bucket: bool, generator: torch.Generator):
        self.lengths, self.batch_size, self.shuffle, self.bucket, self.generator = lengths, batch_size, shuffle, bucket, generator

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        n = len(self.lengths)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.bucket:  # stable sort by length keeps the random order within equal lengths
            order = order[torch.sort(self.lengths[order], stable=True).indices]
        batches = list(order.split(self.batch_size))
        if self.shuffle and self.bucket:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        for batch in batches:
            yield batch.tolist()


class _SliceDataset(torch.utils.data.Dataset):
    """Returns a whole batch for a list of indices; trims ``src`` to the batch's longest source if ``lengths``."""

    def __init__(self, src, tgt_in, tgt_out, lengths: torch.Tensor | None):
        self.src, self.tgt_in, self.tgt_out, self.lengths = src, tgt_in, tgt_out, lengths

    def __len__(self) -> int:
        return self.src.shape[0]

    def __getitem__(self, index: list[int]):
        src = self.src[index]  # (B, S)
        if self.lengths is not None:
            src = src[:, : int(self.lengths[index].max())]  # (B, S_batch): drop all-padding columns
        return src, self.tgt_in[index], self.tgt_out[index]


def _encode_split(pairs, src_vocab: CharVocab, tgt_vocab: CharVocab, S: int, T: int) -> DateSplit:
    src = src_vocab.encode_batch([s for s, _ in pairs], length=S)  # (N, S)
    tgt_in = tgt_vocab.encode_batch([t for _, t in pairs], length=T, bos=True)  # (N, T): <bos> 1 9 9 4 - ...
    tgt_out = tgt_vocab.encode_batch([t for _, t in pairs], length=T, eos=True)  # (N, T): 1 9 9 4 - ... <eos>
    return DateSplit(pairs, src, tgt_in, tgt_out)


def load_date_task(n_train: int = 45_000, n_test: int = 5_000, seed: int = 0) -> DateTask:
    """Generate the task: ``n_train + n_test`` distinct pairs, the last ``n_test`` held out.

    No source string of the test split appears in the training split.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    pairs = make_date_pairs(n_train + n_test, seed)
    src_vocab, tgt_vocab = CharVocab(SOURCE_CHARS), CharVocab(TARGET_CHARS)
    S = max(len(s) for s, _ in pairs)
    T = max(len(t) for _, t in pairs) + 1  # + <bos> (input) or <eos> (output)
    train = _encode_split(pairs[:n_train], src_vocab, tgt_vocab, S, T)
    test = _encode_split(pairs[n_train:], src_vocab, tgt_vocab, S, T)
    return DateTask(train, test, src_vocab, tgt_vocab, S, T)


def exact_match(pred_strings: Sequence[str], target_strings: Sequence[str]) -> float:
    """Fraction of predictions equal to their target, character for character."""
    if isinstance(pred_strings, str) or isinstance(target_strings, str):
        raise TypeError("exact_match expects two sequences of strings, got a single str")
    if len(pred_strings) != len(target_strings):
        raise ValueError(f"exact_match got {len(pred_strings)} predictions for {len(target_strings)} targets")
    if not target_strings:
        raise ValueError("exact_match needs at least one example")
    return sum(p == t for p, t in zip(pred_strings, target_strings)) / len(target_strings)

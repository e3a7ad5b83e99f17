"""What a demo's typed input may be, checked the same way in the page and in a live kernel.

Chapters 1 and 8 end with a demo of the model they trained: in the built book it runs in the
reader's browser (``course_lib.book.demos``, ONNX Runtime Web), in a live kernel it is an
ipywidget. Both apply these rules, so both say the same thing about bad input:
``prepare_date_input`` (chapter 1) and ``fill_mask_input`` (chapter 8).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DateInput", "prepare_date_input", "date_max_chars", "FillMaskInput", "fill_mask_input"]

class DateInput(NamedTuple):
    text: str  # what the model reads (stripped, cut)
    ids: list[int]  # one id per character, <unk> for characters outside the vocabulary
    messages: list[str]  # what the reader is told (empty when all is well)


def prepare_date_input(text: str, src_vocab, max_chars: int) -> DateInput:
    """Strip, cut to ``max_chars`` characters, encode; say what was cut or unknown.

    An empty (or all-blank) text gives no ids and the message "type a date".
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the typed text as a str, got {type(text).__name__}")
    messages = []
    text = text.strip()
    if not text:
        return DateInput("", [], ["type a date, e.g. 4th of july 1976"])
    if len(text) > max_chars:
        messages.append(f"too long: {len(text)} characters; the model reads the first {max_chars}")
        text = text[:max_chars]
    unknown = sorted({ch for ch in text if ch not in src_vocab.stoi})
    if unknown:
        shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in unknown)
        messages.append(f"characters the model never saw, read as <unk>: {shown} (it knows a-z, A-Z, 0-9, space and , . - /)")
    return DateInput(text, src_vocab.encode(text), messages)


class FillMaskInput(NamedTuple):
    ids: list[int]  # [CLS] ... [SEP]; empty when the text cannot be scored
    tokens: list[str]
    error: str | None  # why there is nothing to predict (empty, no [MASK], too long)
    notes: list[str]  # e.g. how many words became [UNK]


def fill_mask_input(text: str, tokenizer, max_len: int) -> FillMaskInput:
    """WordPiece-encode ``[CLS] text [SEP]`` and check that the model can score it."""
    if not isinstance(text, str):
        raise TypeError(f"expected the typed text as a str, got {type(text).__name__}")
    encoding = tokenizer.encode_pair(text)
    ids, tokens = encoding.ids, encoding.tokens
    if len(ids) == 2:
        return FillMaskInput([], [], "type a sentence with [MASK] where a word should be predicted", [])
    if tokenizer.mask_id not in ids:
        return FillMaskInput([], tokens, "no [MASK] in the sentence: write [MASK] (capitals, in brackets) where a word should be predicted", [])
    if len(ids) > max_len:
        return FillMaskInput([], tokens, f"too long: {len(ids)} tokens with [CLS] and [SEP]; the model has positions for {max_len}", [])
    n_unk = ids.count(tokenizer.unk_id)
    notes = [f"{n_unk} word(s) outside the vocabulary read as [UNK]"] if n_unk else []
    return FillMaskInput(ids, tokens, None, notes)


def date_max_chars(task) -> int:
    """The demo reads at most three times the longest training source (a very long paste is cut)."""
    return 3 * task.max_src_len

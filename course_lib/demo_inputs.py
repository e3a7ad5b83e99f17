"""What a demo's typed input may be, checked the same way in the page and in a live kernel.

Chapters 1 and 8 end with a demo of the model they trained: in the built book it runs in the
reader's browser (``course_lib.book.demos``, ONNX Runtime Web), in a live kernel it is an
ipywidget. Both apply these rules, so both say the same thing about bad input:
``prepare_date_input`` (chapter 1) and ``fill_mask_input`` (chapter 8).

Both also say when the input is unlike anything the model was trained on (out of distribution):
the model still answers, and the reader is told why not to trust the answer
(``course_lib.ood`` holds chapter 1's rules; chapter 8's are here: words the toy corpus never
contains, which the tokenizer can only cut into pieces or read as [UNK]).
"""

from __future__ import annotations

from typing import NamedTuple

from course_lib.ood import NOT_TRAINED, date_input_reasons

__all__ = [
    "EMPTY_DATE",
    "NOT_TRAINED",
    "NOT_TRAINED_SENTENCE",
    "DateInput",
    "FillMaskInput",
    "date_max_chars",
    "fill_mask_input",
    "prepare_date_input",
]

#: The example the empty box suggests: one of the training formats ("the dth of month yyyy").
EMPTY_DATE = "type a date, e.g. the 4th of july 1976"
#: Chapter 8's first line when a sentence is unlike the training stories.
NOT_TRAINED_SENTENCE = (
    "the model was never trained on sentences like this; it still answers, and here is why you should not trust it:"
)


class DateInput(NamedTuple):
    text: str  # what the model reads (stripped, cut)
    ids: list[int]  # one id per character, <unk> for characters outside the vocabulary
    messages: list[str]  # what the reader is told (empty when all is well)


def prepare_date_input(text: str, src_vocab, max_chars: int) -> DateInput:
    """Strip, cut to ``max_chars`` characters, encode; say what was cut or unknown, and why not to trust the answer.

    An empty (or all-blank) text gives no ids and the message "type a date". A text unlike every
    training source (``course_lib.ood.date_input_reasons``, or characters outside the vocabulary)
    gets ``NOT_TRAINED`` followed by the reasons.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the typed text as a str, got {type(text).__name__}")
    messages = []
    text = text.strip()
    if not text:
        return DateInput("", [], [EMPTY_DATE])
    if len(text) > max_chars:
        messages.append(f"too long: {len(text)} characters; the model reads the first {max_chars}")
        text = text[:max_chars]
    unknown = sorted({ch for ch in text if ch not in src_vocab.stoi})
    reasons = date_input_reasons(text)
    if unknown or reasons:
        messages.append(NOT_TRAINED)
    if unknown:
        shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in unknown)
        messages.append(f"characters the model never saw, read as <unk>: {shown} (it knows a-z, A-Z, 0-9, space and , . - /)")
    messages += reasons
    return DateInput(text, src_vocab.encode(text), messages)


class FillMaskInput(NamedTuple):
    ids: list[int]  # [CLS] ... [SEP]; empty when the text cannot be scored
    tokens: list[str]
    error: str | None  # why there is nothing to predict (empty, no [MASK], too long)
    notes: list[str]  # why not to trust the answer: words became [UNK], or were cut into pieces


def split_words(tokens: list[str], prefix: str = "##") -> list[str]:
    """Words the tokenizer had to cut into pieces, as ``zebra (z ##eb ##ra)``.

    The course's vocabulary holds every word of the training stories as one token (chapter 8
    checks it), so a word in pieces is a word those stories never contain.
    """
    groups: list[list[str]] = []
    for token in tokens:
        if token.startswith(prefix) and groups:
            groups[-1].append(token)
        else:
            groups.append([token])
    return ["".join(p.removeprefix(prefix) for p in g) + " (" + " ".join(g) + ")"
            for g in groups if len(g) > 1]  # fmt: skip


def fill_mask_input(text: str, tokenizer, max_len: int) -> FillMaskInput:
    """WordPiece-encode ``[CLS] text [SEP]`` and check that the model can score it.

    Words outside the training stories (read as [UNK], or cut into pieces) give the notes
    ``NOT_TRAINED_SENTENCE`` and what they are: the model still predicts, but from pieces it
    never saw in a sentence.
    """
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
    pieces = split_words(tokens, tokenizer.hf._tokenizer.model.continuing_subword_prefix)
    notes = [NOT_TRAINED_SENTENCE] if n_unk or pieces else []
    if n_unk:
        notes.append(f"{n_unk} word(s) outside the vocabulary read as [UNK]")
    if pieces:
        notes.append("words the training stories never contain, which the model knows only as pieces: " + ", ".join(pieces))
    return FillMaskInput(ids, tokens, None, notes)


def date_max_chars(task) -> int:
    """The demo reads at most three times the longest training source (a very long paste is cut)."""
    return 3 * task.max_src_len

"""WordPiece tokenization for chapter 8, trained locally with Hugging Face ``tokenizers``.

    python -m course_lib.tokenization            # retrain and rewrite the shipped vocabulary

WordPiece (Schuster & Nakajima 2012; Wu et al. 2016; used by BERT) keeps a
vocabulary of whole words *and* word pieces. A word is cut greedily into the
longest pieces found in the vocabulary, left to right; a piece that continues a
word is written with the prefix ``##``:

    "heavily"      -> ["heavily"]                  (frequent: one token)
    "unbelievably" -> ["un", "##bel", "##ie", ...]  (never seen: split into pieces)
    "雨"           -> ["[UNK]"]                     (a character the vocabulary lacks)

Training starts from single characters and repeatedly adds the merge of two
pieces that helps most, until the vocabulary has the requested size.

The special tokens come first, so their ids are fixed:

    [PAD]=0 padding, [UNK]=1 unknown, [CLS]=2 start (its vector feeds classifiers),
    [SEP]=3 end of a segment, [MASK]=4 a hidden token for masked language modelling

Reproducibility: the Rust trainer breaks ties between equally frequent merges in
hash-map order, which changes from process to process, so two trainings on the
same text can give slightly different vocabularies. The course therefore ships
the vocabulary it trained once (``DEFAULT_VOCAB``) and every chapter loads that
file; ``train_wordpiece`` is there to watch training happen and to retrain.

Dimension legend: B batch, T sequence length.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Container, Iterable, NamedTuple, Sequence

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no fork warnings in notebooks

from tokenizers import BertWordPieceTokenizer  # noqa: E402

__all__ = [
    "SPECIAL_TOKENS",
    "DEFAULT_VOCAB",
    "Tokenizer",
    "PairEncoding",
    "train_wordpiece",
    "load_tokenizer",
    "basic_tokenize",
    "wordpiece",
    "reference_tokenize",
    "read_vocab",
]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DEFAULT_VOCAB = Path(__file__).resolve().parent / "data" / "wordpiece_vocab.txt"
# Characters every vocabulary knows, so typed input (digits, punctuation) splits instead of becoming [UNK].
ALPHABET = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()")


class PairEncoding(NamedTuple):
    """One model input: ``[CLS] A [SEP] B [SEP]`` (B optional).

    ``segment_ids`` are 0 on [CLS], A and the first [SEP], 1 on B and its [SEP]
    (BERT's "segment embeddings"; Hugging Face calls them ``token_type_ids``).
    """

    ids: list[int]
    segment_ids: list[int]
    tokens: list[str]


class Tokenizer:
    """A trained WordPiece tokenizer plus the special ids the model needs.

    A thin wrapper around ``tokenizers.BertWordPieceTokenizer`` (kept as ``.hf``):
    lower-cases, splits on whitespace and punctuation, then cuts words into pieces.
    """

    def __init__(self, hf: BertWordPieceTokenizer):
        self.hf = hf
        ids = [hf.token_to_id(t) for t in SPECIAL_TOKENS]
        if None in ids:  # the course's vocabulary has them at 0..4, BERT's at 0 and 100..103
            missing = [t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids
        self.special_ids = tuple(ids)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def tokenize(self, text: str) -> list[str]:
        """Text -> word pieces, without [CLS]/[SEP]."""
        return self.hf.encode(text, add_special_tokens=False).tokens

    def encode(self, text: str) -> list[int]:
        """Text -> token ids, without [CLS]/[SEP]."""
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]

    def encode_pair(self, a: str, b: str | None = None) -> PairEncoding:
        """``[CLS] a [SEP] b [SEP]`` as ids, segment ids and tokens."""
        return self.build_pair(self.encode(a), self.encode(b) if b is not None else None)

    def build_pair(self, a_ids: Sequence[int], b_ids: Sequence[int] | None = None) -> PairEncoding:
        """Already-tokenized segments -> ``[CLS] A [SEP] B [SEP]`` (what BERT's post-processor does)."""
        ids = [self.cls_id, *a_ids, self.sep_id]
        segment_ids = [0] * len(ids)
        if b_ids is not None:
            ids += [*b_ids, self.sep_id]
            segment_ids += [1] * (len(b_ids) + 1)
        return PairEncoding(ids, segment_ids, self.convert_ids_to_tokens(ids))

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.hf.id_to_token(int(i)) for i in ids]

    def token_to_id(self, token: str) -> int:
        i = self.hf.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary ({self.vocab_size} tokens)")
        return i

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, joining ``##`` pieces back into words and dropping special tokens."""
        return self.hf.decode([int(i) for i in ids])

    def __repr__(self) -> str:
        return f"Tokenizer(WordPiece, vocab_size={self.vocab_size})"


# --------------------------------------------------------------------------- WordPiece by hand
# The same algorithm as the Rust tokenizer above (BERT's BasicTokenizer + WordpieceTokenizer), in plain
# Python, to read and to test against transformers' BertTokenizerFast on real text (tests/test_tokenizer_real.py).

_SPECIAL_PATTERN = "(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")"
MAX_CHARS_PER_WORD = 100  # a longer "word" becomes one [UNK] (BERT's max_input_chars_per_word)


def _is_cjk(cp: int) -> bool:
    """A CJK ideograph (Chinese hanzi, Japanese kanji, Korean hanja): BERT cuts these one by one.
    Hiragana, katakana and Hangul are *not* in these blocks: they stay inside words."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(ch: str) -> bool:
    """ASCII symbols count as punctuation too ("$", "+", "^", "`"), not only Unicode's P* classes."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cf")


def basic_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Clean, space out CJK ideographs, lower-case, strip accents, split on whitespace and punctuation.

    >>> basic_tokenize("Héllo, Wörld! 注意力")
    ['hello', ',', 'world', '!', '注', '意', '力']
    """
    chars = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue  # clean_text: drop NUL, the replacement character and control characters
        if _is_whitespace(ch):
            chars.append(" ")
        elif _is_cjk(cp):
            chars.append(f" {ch} ")  # handle_chinese_chars: every ideograph is a word
        else:
            chars.append(ch)
    words = []
    for word in "".join(chars).split():
        if lowercase:  # strip_accents follows lowercase in BERT's uncased models
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
        piece = ""
        for ch in word:  # every punctuation character is a word of its own
            if _is_punctuation(ch):
                words += [piece, ch] if piece else [ch]
                piece = ""
            else:
                piece += ch
        if piece:
            words.append(piece)
    return words


def wordpiece(word: str, vocab: Container[str], unk: str = "[UNK]", max_chars: int = MAX_CHARS_PER_WORD) -> list[str]:
    """Greedy longest-match-first, left to right; a word with any piece not in ``vocab`` is one ``unk``.

    >>> wordpiece("heavily", {"heav", "##ily", "##i"})
    ['heav', '##ily']
    """
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:  # the longest piece in the vocabulary that starts here
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk]  # no piece fits: the whole word is unknown, not just this part
        pieces.append(piece)
        start = end
    return pieces


def reference_tokenize(text: str, vocab: Container[str], lowercase: bool = True) -> list[str]:
    """Text -> WordPiece tokens, in plain Python (what ``Tokenizer.tokenize`` computes in Rust).

    Special tokens typed in the text ("[SEP]", "[MASK]") are kept whole, before any other step.

    >>> reference_tokenize("The [MASK] falls.", {"the", "falls", "."})
    ['the', '[MASK]', 'falls', '.']
    """
    tokens = []
    for i, part in enumerate(re.split(_SPECIAL_PATTERN, text)):
        if i % 2:  # the captured special tokens sit at odd indices
            tokens.append(part)
        else:
            tokens += [p for word in basic_tokenize(part, lowercase) for p in wordpiece(word, vocab)]
    return tokens


def read_vocab(vocab_file: str | Path) -> list[str]:
    """``vocab.txt``: one token per line, the line number is the id."""
    return Path(vocab_file).read_text(encoding="utf-8").splitlines()


def train_wordpiece(sentences: Iterable[str], vocab_size: int = 1000, min_frequency: int = 2) -> Tokenizer:
    """Train a WordPiece vocabulary on ``sentences`` (in memory, in about a second).

    ``vocab_size`` is an upper bound: on a small corpus training stops early once
    every word of frequency >= ``min_frequency`` is a single token.
    """
    hf = BertWordPieceTokenizer(lowercase=True)
    hf.train_from_iterator(
        sentences,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=ALPHABET,
        limit_alphabet=len(ALPHABET),
        wordpieces_prefix="##",
        show_progress=False,
    )
    return Tokenizer(hf)


def load_tokenizer(vocab_file: str | Path = DEFAULT_VOCAB) -> Tokenizer:
    """The tokenizer of a ``vocab.txt`` file (one token per line, line number = id)."""
    vocab_file = Path(vocab_file)
    if not vocab_file.exists():
        raise FileNotFoundError(f"no vocabulary at {vocab_file}; create it with `python -m course_lib.tokenization`")
    return Tokenizer(BertWordPieceTokenizer(str(vocab_file), lowercase=True))


def save_vocab(tokenizer: Tokenizer, vocab_file: str | Path) -> Path:
    """Write ``vocab.txt``: one token per line, in id order (the format BERT's checkpoints use)."""
    vocab = tokenizer.hf.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    Path(vocab_file).write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return Path(vocab_file)


def main() -> None:
    from course_lib.data.corpus import make_corpus

    tokenizer = train_wordpiece(make_corpus().sentences())
    path = save_vocab(tokenizer, DEFAULT_VOCAB)
    print(f"wrote {tokenizer.vocab_size} tokens to {path}")


if __name__ == "__main__":
    main()

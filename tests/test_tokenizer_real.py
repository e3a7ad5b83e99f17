"""course_lib.tokenization on BERT's real uncased vocabulary equals transformers' BertTokenizerFast.

Both the course's Tokenizer (the Rust WordPiece it wraps) and the plain-Python reference
(basic_tokenize + wordpiece) are compared, on every sentence of the book's prose and on text in
the languages of the course's sources: Japanese, Korean, simplified and traditional Chinese.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from course_lib.pretrained import minilm_tokenizer, model_dir  # noqa: E402
from course_lib.search import book_paragraphs, book_sentences  # noqa: E402
from course_lib.tokenization import basic_tokenize, read_vocab, reference_tokenize, wordpiece  # noqa: E402

# Sentences in the sources' languages, with the things that trip tokenizers: kana and kanji mixed,
# full-width punctuation and letters, Hangul syllables (NFD turns them into jamo), traditional characters.
LANGUAGES = {
    "Japanese": [
        "鳥がナク。ナクは鳴くであって、泣くではない。",
        "雨が激しく降る",
        "注意機構（アテンション）は、入力のどこに注目するかを学習します。",
        "ゼロから作るDeep Learning ❷ ― 自然言語処理編",
        "ＡＢＣ　１２３、ｶﾀｶﾅ。",
    ],
    "Korean": [
        "어텐션은 디코더가 인코더의 모든 상태를 보게 합니다.",
        "비가 세차게 내린다.",
        "트랜스포머는 순환 구조가 없습니다: Query, Key, Value!",
    ],
    "simplified Chinese": [
        "注意力机制让解码器查看编码器的所有状态。",
        "自注意力：查询、键和值。",
        "缩放点积注意力除以根号d_k，防止softmax饱和。",
    ],
    "traditional Chinese": [
        "注意力機制讓解碼器查看編碼器的所有狀態。",
        "論文閱讀：《Attention Is All You Need》，縮放點積注意力。",
        "多頭注意力與位置編碼。",
    ],
    "edge cases": [
        "x" * 101 + " a word longer than 100 characters is one [UNK]",
        "café naïve Ångström İstanbul straße ﬁne",
        "a\x00b\u200bc d\u00a0e\ttab\r\nnew line",
        "“quotes” – dash … £5 ½ 🙂 don't",
        "the [MASK] falls heavily . [SEP] typed special tokens [CLS]",
    ],
}


@pytest.fixture(scope="module")
def tokenizers():
    from transformers import BertTokenizerFast

    folder = model_dir()
    return BertTokenizerFast.from_pretrained(str(folder)), minilm_tokenizer(folder), set(read_vocab(folder / "vocab.txt"))


def _disagreements(texts, tokenizers):
    fast, ours, vocab = tokenizers
    bad = []
    for text in texts:
        expected = fast.tokenize(text)
        for name, got in (("Tokenizer", ours.tokenize(text)), ("reference_tokenize", reference_tokenize(text, vocab))):
            if got != expected:
                bad.append(f"{name} on {text!r}: {got[:20]} != {expected[:20]}")
    return bad


def test_every_sentence_of_the_book(tokenizers):
    sentences = book_sentences(book_paragraphs())
    assert len(sentences) > 500
    bad = _disagreements(sentences, tokenizers)
    assert not bad, f"{len(bad)} disagreements, e.g.\n" + "\n".join(bad[:5])


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_sources_languages(tokenizers, language):
    bad = _disagreements(LANGUAGES[language], tokenizers)
    assert not bad, "\n".join(bad)


def test_the_rules_one_by_one():
    assert basic_tokenize("Héllo, WÖRLD!") == ["hello", ",", "world", "!"]  # lower-case, strip accents, punctuation
    assert basic_tokenize("注意力") == ["注", "意", "力"]  # CJK ideographs stand alone
    assert basic_tokenize("ナク") == ["ナク"]  # katakana does not
    assert basic_tokenize("a$b") == ["a", "$", "b"]  # ASCII symbols are punctuation
    vocab = {"un", "##believ", "##ably", "a"}
    assert wordpiece("unbelievably", vocab) == ["un", "##believ", "##ably"]
    assert wordpiece("unbelievablyx", vocab) == ["[UNK]"]  # one missing piece: the whole word
    assert wordpiece("a" * 101, {"a", "##a"}) == ["[UNK]"]  # too long

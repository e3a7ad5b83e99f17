"""course_lib.search (the book's paragraphs, TF-IDF, hit rates) and the parts of chapter 8's search
that do not need the trained tiny model: the cache of sentence vectors and the real model's hit rate."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import pretrained  # noqa: E402
from course_lib.bert import head_patterns  # noqa: E402
from course_lib.search import (  # noqa: E402
    QUERIES,
    book_paragraphs,
    book_sentences,
    clean_markdown,
    hit_rates,
    query_answers,
    tfidf_vectors,
    top_k,
)


@pytest.fixture(scope="module")
def paragraphs():
    return book_paragraphs()


def test_the_book_is_read_as_prose(paragraphs):
    assert len(paragraphs) > 300
    sources = {p.source for p in paragraphs}
    assert {"01_seq2seq_attention.ipynb", "08_bert.ipynb", "bugs_and_symptoms.md"} <= sources
    for p in paragraphs:
        assert "```" not in p.text and "{glue" not in p.text and not p.text.startswith("|"), p
        assert len(p.text.split()) >= 8
    assert len(book_sentences(paragraphs)) > 500


def test_clean_markdown():
    raw = "**Bold** and *it* with `code`, a [link](http://x) and {glue:text}`ch08_x:.2f` left."
    assert clean_markdown(raw) == "Bold and it with code, a link and left."


def test_every_query_names_its_paragraphs(paragraphs):
    assert len(QUERIES) >= 30
    answers = query_answers(paragraphs)  # raises if a phrase matches no paragraph or several
    assert all(1 <= len(a) <= 3 for a in answers)


def test_tfidf_and_hit_rates():
    docs = ["the cat sat on the mat", "dogs bark at night", "the softmax of the scores"]
    d, q = tfidf_vectors(docs, ["softmax scores", "a barking dog at night"])
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(3))
    scores, idx = top_k(q, d, k=2)
    assert idx[:, 0].tolist() == [2, 1] and (scores[:, 0] > scores[:, 1]).all()
    assert hit_rates(idx, [{2}, {0, 2}], ks=(1,)) == {1: 0.5}
    assert hit_rates(torch.tensor([[3, 1], [0, 2]]), [{1}, {5}], ks=(1, 2)) == {1: 0.0, 2: 0.5}


def test_the_real_model_finds_most_answers(paragraphs):
    model, tokenizer = pretrained.load_minilm(), pretrained.minilm_tokenizer()
    p = pretrained.encode(model, tokenizer, [x.text for x in paragraphs])
    q = pretrained.encode(model, tokenizer, [query for query, _ in QUERIES])
    rates = hit_rates(top_k(q, p)[1], query_answers(paragraphs))
    assert rates[5] >= 0.7 and rates[1] >= 0.4, rates  # measured 0.85 and 0.54


def test_the_cache_encodes_each_text_once(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    model, tokenizer = pretrained.load_minilm(), pretrained.minilm_tokenizer()
    texts = ["attention is a soft lookup", "the rain falls heavily", "attention is a soft lookup"]
    first = pretrained.encode_cached(model, tokenizer, texts)
    calls = []
    real_encode = pretrained.encode
    monkeypatch.setattr(pretrained, "encode", lambda *a, **k: calls.append(a[2]) or real_encode(*a, **k))
    again = pretrained.encode_cached(model, tokenizer, texts + ["a new paragraph"])
    assert calls == [["a new paragraph"]]  # only the text not seen before
    torch.testing.assert_close(again[:3], first)
    torch.testing.assert_close(first, real_encode(model, tokenizer, texts), atol=1e-6, rtol=0)


def test_head_patterns_against_hand_made_attention():
    ids = torch.tensor([[2, 7, 9, 3, 8, 3], [2, 9, 3, 8, 3, 0]])  # [CLS]=2 [SEP]=3 pad=0; 9 is punctuation
    mask = (ids != 0).long()
    B, T = ids.shape
    uniform = (mask[:, None, :].float() / mask.sum(-1)[:, None, None]).expand(B, T, T)
    previous = torch.zeros(B, T, T)
    previous[:, 0, 0] = 1.0
    previous[:, torch.arange(1, T), torch.arange(0, T - 1)] = 1.0  # one-hot on t - 1
    layer = torch.stack([uniform, previous], 1)  # (B, H=2, T, T)
    patterns = head_patterns([([layer], ids, mask)], cls_id=2, sep_id=3, punctuation_ids=[9])
    for name, value in patterns.uniform.items():  # head 0 is uniform: it scores chance exactly
        assert abs(float(patterns.heads[name][0, 0]) - value) < 1e-6, name
    n = int(mask.sum())
    assert abs(float(patterns.heads["previous token"][0, 1]) - (n - 2) / n) < 1e-6  # all but the 2 first tokens
    assert float(patterns.heads["entropy"][0, 1]) < 1e-6

"""Search the book by meaning (chapter 8): its paragraphs, three ways to rank them, and a score.

A query and every paragraph become vectors; the paragraphs are ranked by cosine similarity.
Three ways to make the vectors are compared on the same queries:

    the real pretrained model   course_lib.pretrained.encode (all-MiniLM-L6-v2, mean pooling)
    the chapter's toy BERT      the same mean pooling over its last layer
    TF-IDF                      word counts weighted by rarity (this module, a few lines, no library)

Read top-down:

    book_paragraphs, book_sentences    the prose of the book (chapters' markdown cells and the guides)
    tfidf_vectors                      TF-IDF, L2-normalised
    top_k, hit_rates                   ranking and the share of queries whose right paragraph comes first / in the top k
    QUERIES                            questions with a known right paragraph (a phrase only it contains)

Dimension legend: Q queries, P paragraphs, E embedding width.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

__all__ = [
    "Paragraph",
    "BOOK_ROOT",
    "book_paragraphs",
    "book_sentences",
    "clean_markdown",
    "tfidf_vectors",
    "top_k",
    "hit_rates",
    "QUERIES",
    "find_paragraph",
]

BOOK_ROOT = Path(__file__).resolve().parents[1]  # a clone: chapters/ sits beside course_lib/


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of prose: where it is (file, cell, heading) and its text, markdown removed."""

    source: str  # e.g. "03_scaled_dot_product.ipynb" or "exercises_guide.md"
    cell: int  # markdown cell (0 for a .md file)
    heading: str  # the last heading above it
    text: str


_ROLE = re.compile(r"\{glue:text\}`[^`]*`|\{glue\}`[^`]*`")  # a glued number: its value is not in the source
_DOC = re.compile(r"\{doc\}`([^`<]*?)\s*(?:<[^>]*>)?`")  # {doc}`title <path>` -> title
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")  # [text](url) -> text


def clean_markdown(text: str) -> str:
    """Markdown/MyST -> plain prose: roles, links, emphasis and code marks removed, lines joined."""
    text = _ROLE.sub("", text)
    text = _DOC.sub(lambda m: m.group(1) or "", text)
    text = _LINK.sub(r"\1", text)
    text = re.sub(r"\*\*|__|`", "", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)|(?<=\S)\*(?![\w*])", "", text)  # *emphasis*
    return re.sub(r"\s+", " ", text).strip()


_PROSE_DIRECTIVES = ("{admonition}", "{note}", "{warning}", "{tip}", "{important}", "{hint}", "{caution}")


def _paragraphs_of(markdown: str, heading: str = "") -> tuple[list[tuple[str, str]], str]:
    """(heading, raw paragraph) for the prose of one markdown text, and the last heading seen.

    Code blocks, tables, display maths, HTML and headings are left out; admonitions keep their prose.
    """
    out, block = [], []
    code_fence, prose_fences = None, []

    def flush():
        raw = "\n".join(block).strip()
        block.clear()
        if raw and not raw.startswith(("|", "$$", "<")):
            out.append((heading, raw))

    for line in markdown.splitlines():
        stripped = line.strip()
        if code_fence:  # inside a code block: skip to its closing fence
            if stripped == code_fence:
                code_fence = None
            continue
        fence = re.match(r"^(`{3,}|:{3,})(.*)$", stripped)
        if fence:
            flush()
            marker, rest = fence.groups()
            if prose_fences and marker == prose_fences[-1] and not rest.strip():
                prose_fences.pop()  # the end of an admonition
            elif marker[0] == ":" or rest.startswith(_PROSE_DIRECTIVES):
                prose_fences.append(marker)
            else:
                code_fence = marker
            continue
        if re.match(r"^:\w+:", stripped):  # a directive option such as ":class: dropdown"
            continue
        if stripped.startswith("#"):
            flush()
            heading = stripped.lstrip("#").strip()
        elif not stripped:
            flush()
        else:
            block.append(line)
    flush()
    return out, heading


def book_paragraphs(root: str | Path = BOOK_ROOT, min_words: int = 8) -> list[Paragraph]:
    """Every prose paragraph of the book: the chapters' markdown cells, then the guides (``chapters/*.md``).

    List items and admonition bodies count as paragraphs; code, tables, display maths and
    headings do not. Paragraphs of fewer than ``min_words`` words are left out.
    """
    chapters = Path(root) / "chapters"
    if not chapters.is_dir():
        raise FileNotFoundError(f"no chapters/ folder under {root}: the book's prose is read from a clone of the course")
    found = []
    for path in sorted(chapters.glob("*.ipynb")) + sorted(chapters.glob("*.md")):
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
            texts = [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
        else:
            texts = [(0, path.read_text(encoding="utf-8"))]
        heading = ""
        for cell, markdown in texts:
            paragraphs, heading_after = _paragraphs_of(markdown, heading)
            for heading_, raw in paragraphs:
                text = clean_markdown(raw)
                if len(text.split()) >= min_words:
                    found.append(Paragraph(path.name, cell, heading_, text))
            heading = heading_after
    return found


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(\[*])")


def book_sentences(paragraphs: Sequence[Paragraph], min_words: int = 4) -> list[str]:
    """The paragraphs cut into sentences (at ``.``, ``!`` or ``?`` before a capital), without duplicates."""
    seen, out = set(), []
    for p in paragraphs:
        for s in _SENTENCE_END.split(p.text):
            s = s.strip()
            if len(s.split()) >= min_words and s not in seen:
                seen.add(s)
                out.append(s)
    return out


# ------------------------------------------------------------------------------- TF-IDF

_WORD = re.compile(r"[a-z0-9]+")


def tfidf_vectors(documents: Sequence[str], queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """TF-IDF vectors of ``documents`` and ``queries`` over the documents' vocabulary, L2-normalised.

    tf = 1 + log(count) (sublinear), idf = log((1 + P) / (1 + df)) + 1 (smoothed, as scikit-learn's default).

    Shapes:
        returns (P, W), (Q, W) with W the number of distinct words of the documents
    """
    tokens = [_WORD.findall(d.lower()) for d in documents]
    vocab = {w: i for i, w in enumerate(sorted({w for t in tokens for w in t}))}
    df = Counter(w for t in tokens for w in set(t))
    idf = torch.zeros(len(vocab))
    for w, i in vocab.items():
        idf[i] = math.log((1 + len(documents)) / (1 + df[w])) + 1

    def vectors(texts_tokens):
        m = torch.zeros(len(texts_tokens), len(vocab))
        for row, t in enumerate(texts_tokens):
            for w, n in Counter(t).items():
                if w in vocab:
                    m[row, vocab[w]] = (1 + math.log(n)) * idf[vocab[w]]
        return torch.nn.functional.normalize(m, dim=-1)

    return vectors(tokens), vectors([_WORD.findall(q.lower()) for q in queries])


# ------------------------------------------------------------------------------- ranking


def top_k(query_vectors: torch.Tensor, paragraph_vectors: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities of unit vectors and the ``k`` best paragraphs per query.

    Shapes:
        query_vectors (Q, E), paragraph_vectors (P, E) -> scores (Q, k), indices (Q, k)
    """
    similarity = query_vectors @ paragraph_vectors.T  # (Q, E) @ (E, P) -> (Q, P)
    return similarity.topk(k, dim=-1)


def hit_rates(indices: torch.Tensor, right: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """The share of queries whose right paragraph is among the first k, for each k."""
    right_t = torch.as_tensor(list(right))[:, None]  # (Q, 1)
    return {k: float((indices[:, :k] == right_t).any(-1).float().mean()) for k in ks}


def find_paragraph(paragraphs: Sequence[Paragraph], source: str, phrase: str) -> int:
    """The index of the one paragraph of ``source`` that contains ``phrase`` (case-insensitive)."""
    hits = [i for i, p in enumerate(paragraphs) if p.source.startswith(source) and phrase.lower() in p.text.lower()]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} paragraphs of {source} contain {phrase!r}: a query's answer must be exactly one")
    return hits[0]


# A question a reader might type, and the paragraph that answers it: (query, file prefix, a phrase of
# that paragraph only). Written by reading the chapters; the phrase keeps the answer fixed when prose around it moves.
QUERIES: tuple[tuple[str, str, str], ...] = ()

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
    "query_answers",
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


def hit_rates(indices: torch.Tensor, right: Sequence[set[int]], ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """The share of queries with a right paragraph among their first k, for each k.

    >>> hit_rates(torch.tensor([[3, 1], [0, 2]]), [{1}, {0, 5}], ks=(1, 2))
    {1: 0.5, 2: 1.0}
    """
    hits = {k: sum(bool(set(row[:k].tolist()) & answers) for row, answers in zip(indices, right)) for k in ks}
    return {k: n / len(right) for k, n in hits.items()}


def find_paragraph(paragraphs: Sequence[Paragraph], source: str, phrase: str) -> int:
    """The index of the one paragraph of ``source`` that contains ``phrase`` (case-insensitive)."""
    hits = [i for i, p in enumerate(paragraphs) if p.source.startswith(source) and phrase.lower() in p.text.lower()]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} paragraphs of {source} contain {phrase!r}: a query's answer must be exactly one")
    return hits[0]


# A question a reader might type, and the paragraphs that answer it, each named by its file's prefix and a
# phrase only it contains ("01_|It rains heavily"): the answer stays fixed when the prose around it moves.
# Written by reading the chapters. Where the book answers a question twice (a chapter and the bugs page,
# or two consecutive paragraphs of one argument), both count as right, for every method alike.
QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("why is one fixed-size vector a bottleneck for the decoder", ("01_|the decoder's only view of the source is the encoder's last state",)),
    ("the decoder step for rains looks at one source word", ("01_|It rains heavily",)),
    ("attention computed with an elementwise multiply and a sum instead of a matrix product",
     ("01_|Deep Learning from Scratch 2, we first write", "01_|A sum of elementwise products is an inner product")),
    ("concatenation scoring is the same as the additive perceptron score",
     ("01_|Concat is additive attention in disguise", "01_|checks the \"concat is additive\" claim")),
    ("attention that picks a single encoder state and cannot be trained by backpropagation",
     ("01_|Everything so far is soft attention", "01_|The hard context does not even depend on h")),
    ("a window around a predicted aligned source position with a gaussian",
     ("01_|call attention over all source positions global", "01_|only the positions inside the window do")),
    ("does translation quality drop for longer sentences without attention", ("01_|Cho et al. found the plain encoder-decoder's translations",)),
    ("attention as looking something up in a python dictionary",
     ("02_|A Python dict maps keys to values", "02_|A hard lookup is the special case")),
    ("why a long key vector wins attention even when it points elsewhere",
     ("02_|The last row has the same angle as the second", "02_|The dot product rewards length as well as direction, and pear's key")),
    ("what does the pronoun it refer to, the animal or the street", ("02_|is the animal in the first sentence and the street in the second",)),
    ("a japanese verb written in katakana that could mean to sing or to cry", ("02_|The same mechanism disambiguates words. In Japanese",)),
    ("why do the dot products grow with the dimension of the keys",
     ("03_|Suppose the components of $q$ and $k$ are independent", "03_|The typical size of a score is its standard deviation")),
    ("the gradient of the softmax vanishes when the weights are nearly one-hot",
     ("03_|and if $p$ were exactly one-hot every entry would be 0", "03_|Its gradient shrinks with it",
      "bugs|the softmax saturates into nearly one-hot rows")),
    ("is additive attention slower than dot-product attention on a CPU", ("03_|On this CPU additive attention is",)),
    ("no query has to wait for another, unlike recurrent networks", ("03_|An RNN must compute its state at step",)),
    ("why several heads instead of one weighted average",
     ("04_|One attention head computes one weighted average per query", "04_|Suppose a query needs two things")),
    ("reshape the batch into heads with view and transpose",
     ("04_|Looping over $h$ small matrices is slow and awkward", "04_|(B, T, H, D) → transpose(1, 2)")),
    ("does adding more heads increase the number of parameters", ("04_|parameters, whatever the number of heads",)),
    ("the mask convention of torch MultiheadAttention is inverted",
     ("04_|Mask polarity is opposite", "06_|PyTorch's masks mean the opposite", "bugs|A boolean mask read with the opposite meaning")),
    ("without positions, shuffling the words gives the same outputs",
     ("05_|a sum does not depend on the order of its terms", "05_|Shuffle the words and each word gets the same output")),
    ("a positional encoding table copied from a blog post may contain errors", ("05_|Tables like this one are copied from post to post",)),
    ("moving by a fixed offset is a rotation of each sine cosine pair",
     ("05_|Why sines and cosines? Because then moving by a fixed offset", "05_|Stacking one such block per pair")),
    ("why add the position vector to the embedding instead of concatenating it",
     ("05_|not concatenated to it. Why is a sum not a hopeless mix", "05_|Width and cost. Concatenation would widen")),
    ("learned position embeddings fail beyond the training length", ("05_|The alternative is to learn one vector per position",)),
    ("why not set the masked weights to zero after the softmax",
     ("06_|Why not compute the softmax as usual and then set the weights", "06_|Zeroing after the softmax leaves weights",
      "bugs|Setting the weights of masked keys to 0 after the softmax")),
    ("a query that may attend to no key at all produces NaN",
     ("06_|What if a query may attend to no key at all", "bugs|A query with no key allowed at all")),
    ("padding tokens fill shorter sentences in a batch", ("06_|Sentences have different lengths; a batch is a rectangle",)),
    ("residual connections let the gradient pass through the identity",
     ("07_|The same holds across depth", "07_|A residual connection adds a sublayer's input to its output")),
    ("layer normalisation versus batch normalisation statistics",
     ("07_|LayerNorm treats every token alone", "07_|Both kinds subtract a mean")),
    ("putting the norm before the sublayer instead of after it", ("07_|The paper puts the norm after the residual sum",)),
    ("the learning rate warms up and then decays with the inverse square root",
     ("07_|It rises linearly for", "07_|The paper trains with Adam")),
    ("label smoothing makes the model less sure of the right token",
     ("07_|The paper also trains against smoothed targets", "07_|The loss is smallest when $p = q$")),
    ("greedy decoding versus keeping the k best partial outputs", ("07_|Greedy decoding takes the most probable token",)),
    ("the transformer cannot copy strings longer than the ones it was trained on",
     ("07_|Length generalisation. The Universal Transformer", "07_|The first point is quick to see")),
    ("why does BERT replace only some chosen tokens with the mask token", ("08_|Why not always [MASK]",)),
    ("the next sentence task was dropped by RoBERTa", ("08_|Later work questioned NSP",)),
    ("a mask that means the opposite in two libraries, and the queries attend to what they should ignore",
     ("bugs|Each query attends to exactly the keys it should ignore", "bugs|A boolean mask read with the opposite meaning")),
    ("softmax taken over the wrong dimension so columns sum to one",
     ("bugs|The columns of the weight matrix sum to 1", "bugs|each key gets a distribution over the queries")),
    ("how do I score my notebook the way the grader does before handing it in",
     ("exercises|Score a whole notebook exactly as the grader will", "00_|To score a whole notebook the way the grader will")),
    ("keep the solutions out of the public repository when releasing exercises",
     ("instructors|Never push main itself", "instructors|Each release is one commit on a local branch public")),
    ("grading runs inside a sandbox, install bubblewrap",
     ("instructors|Every notebook runs in a bubblewrap sandbox", "grading|Every notebook runs in a sandbox made with bubblewrap")),
)


def query_answers(paragraphs: Sequence[Paragraph], queries=QUERIES) -> list[set[int]]:
    """For each query, the indices of its right paragraphs (each phrase must name exactly one)."""
    return [{find_paragraph(paragraphs, *answer.split("|", 1)) for answer in answers} for _, answers in queries]

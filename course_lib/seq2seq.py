"""RNN encoder-decoder, without and with attention (chapter 1).

Dimension legend:
    B batch, S source length, T target length, E embedding size,
    C hidden size of the GRUs (encoder and decoder share it), V vocabulary size.

Read top-down:
    1. ``attention_context`` / ``attention_context_matmul``: one decoder state h
       looks at all encoder states hs; the first is the "clarity first" form
       (elementwise product + sum, as in Deep Learning from Scratch 2), the
       second the same numbers as matrix products.
    2. ``Encoder``: a GRU over the source characters -> hs (all states) and
       h_last (the last real state, the only thing a plain decoder sees).
    3. ``Decoder`` (no attention: context = h_last only, Sutskever et al. 2014)
       and ``AttentionDecoder`` (Luong et al. 2015, "global" attention on the
       *current* state h_t, with a pluggable score: dot, general, additive, concat).
    4. ``Seq2Seq``: forward with teacher forcing, and greedy decoding.
    5. ``translate``, ``exact_match_accuracy`` and ``train_seq2seq`` (the shared
       ``course_lib.train.train_epoch`` with test-accuracy checkpoints within each epoch).

Masks: ``src_mask`` is (B, S) bool, True = a real source character (may attend),
False = padding; course_lib's convention (see ``course_lib.masks``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import AdditiveScore, AttentionOutput, ConcatScore, GeneralScore, dot_score

__all__ = [
    "attention_context",
    "attention_context_matmul",
    "SCORES",
    "make_score",
    "EncoderOutput",
    "Encoder",
    "DecoderOutput",
    "Decoder",
    "AttentionDecoder",
    "DecoderStepLayers",
    "Seq2SeqConfig",
    "Seq2Seq",
    "GreedyOutput",
    "translate",
    "exact_match_accuracy",
    "TrainingCurve",
    "train_seq2seq",
]

SCORES = ("dot", "general", "additive", "concat")


# --------------------------------------------------------------------------- 1. attention for one decoder state


def _check_h_hs(h: torch.Tensor, hs: torch.Tensor, mask: torch.Tensor | None) -> None:
    for name, x, dim in (("h", h, 2), ("hs", hs, 3)):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != dim:
            raise ValueError(f"expected h (B, C) and hs (B, S, C), got {name} of shape {tuple(x.shape)}")
    if h.shape[0] != hs.shape[0] or h.shape[1] != hs.shape[2]:
        raise ValueError(
            f"h (B, C) and hs (B, S, C) must share B and C, got h {tuple(h.shape)} and hs {tuple(hs.shape)}: "
            "is hs transposed to (B, C, S)?"
        )
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = may attend), got {getattr(mask, 'dtype', type(mask).__name__)}")
        if tuple(mask.shape) != tuple(hs.shape[:2]):
            raise ValueError(f"mask must have shape (B, S) = {tuple(hs.shape[:2])}, got {tuple(mask.shape)}")


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax over the last axis (the source positions); masked positions get weight exactly 0."""
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # acts as -inf, stays finite
    weights = scores.softmax(dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # a fully masked row: all 0, not uniform
    return weights


def attention_context(
    h: torch.Tensor, hs: torch.Tensor, mask: torch.Tensor | None = None
) -> AttentionOutput:
    """Attention for one decoder state, the "clarity first" way (products, then sums).

    score_s = h . hs_s, a = softmax(score), context = sum_s a_s hs_s.

    Shapes:
        h: (B, C) decoder state   hs: (B, S, C) encoder states
        mask: (B, S) bool, True = may attend (optional)
        returns out (the context vector): (B, C), weights: (B, S)
    """
    _check_h_hs(h, hs, mask)
    # (B, S, C) * (B, 1, C) -> sum over C -> (B, S)
    scores = (hs * h.unsqueeze(1)).sum(dim=-1)
    weights = _masked_softmax(scores, mask)  # (B, S), each row sums to 1
    # (B, S, C) * (B, S, 1) -> sum over S -> (B, C)
    context = (hs * weights.unsqueeze(-1)).sum(dim=1)
    return AttentionOutput(context, weights)


def attention_context_matmul(h: torch.Tensor, hs: torch.Tensor, mask: torch.Tensor | None = None) -> AttentionOutput:
    """The same as ``attention_context``, written as two batched matrix products.

    Shapes:
        h: (B, C)   hs: (B, S, C)   mask: (B, S) bool (optional)
        returns out: (B, C), weights: (B, S)
    """
    _check_h_hs(h, hs, mask)
    scores = (h.unsqueeze(1) @ hs.transpose(1, 2)).squeeze(1)  # (B, 1, C) @ (B, C, S) -> (B, 1, S) -> (B, S)
    weights = _masked_softmax(scores, mask)  # (B, S)
    context = (weights.unsqueeze(1) @ hs).squeeze(1)  # (B, 1, S) @ (B, S, C) -> (B, 1, C) -> (B, C)
    return AttentionOutput(context, weights)


class _DotScore(nn.Module):
    """``dot_score`` as a module, so every score is called the same way."""

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return dot_score(q, k)


def make_score(kind: str, d_hidden: int) -> nn.Module:
    """A score module mapping q (B, T, C), k (B, S, C) -> (B, T, S); ``kind`` in ``SCORES``."""
    if kind == "dot":
        return _DotScore()
    if kind == "general":
        return GeneralScore(d_hidden, d_hidden)
    if kind == "additive":
        return AdditiveScore(d_hidden, d_hidden, d_hidden)
    if kind == "concat":
        return ConcatScore(d_hidden, d_hidden, d_hidden)
    raise ValueError(f"unknown attention score {kind!r}; expected one of {SCORES}")


# --------------------------------------------------------------------------- 2. encoder


class EncoderOutput(NamedTuple):
    hs: torch.Tensor  # (B, S, C) every encoder state (the keys and values of attention)
    h_last: torch.Tensor  # (B, C) the state after the last real character (the plain decoder's only context)
    mask: torch.Tensor  # (B, S) bool, True = a real character


def _check_tokens(tokens, name: str) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise ValueError(f"{name} must be a (B, length) tensor of token ids, got {getattr(tokens, 'shape', type(tokens).__name__)}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {tokens.dtype}")


class Encoder(nn.Module):
    """Embedding + one-layer GRU over the (right-padded) source.

    Because the GRU reads left to right, padding at the end never changes the
    states of the real characters; ``h_last`` is taken at each sequence's last
    real position.

    Shapes:
        src: (B, S) long, right-padded with ``pad_id``
        returns EncoderOutput(hs (B, S, C), h_last (B, C), mask (B, S))
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, d_embed, padding_idx=pad_id)
        self.rnn = nn.GRU(d_embed, d_hidden, batch_first=True)

    def forward(self, src: torch.Tensor) -> EncoderOutput:
        _check_tokens(src, "src")
        if int(src.max()) >= self.embed.num_embeddings or int(src.min()) < 0:
            raise ValueError(f"src holds ids outside [0, {self.embed.num_embeddings}): is it encoded with the source vocabulary?")
        mask = src != self.pad_id  # (B, S)
        lengths = mask.sum(dim=1)  # (B,)
        if bool((lengths == 0).any()):
            raise ValueError("a source sequence is empty (all padding): give it at least one character")
        hs, _ = self.rnn(self.embed(src))  # (B, S, E) -> (B, S, C)
        h_last = hs[torch.arange(src.shape[0]), lengths - 1]  # (B, C): the state at each last real character
        return EncoderOutput(hs, h_last, mask)


# --------------------------------------------------------------------------- 3. decoders


class DecoderOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)
    state: torch.Tensor  # (1, B, C) the GRU state after the last step (to continue decoding)
    weights: torch.Tensor | None  # (B, T, S) attention weights, None without attention


class Decoder(nn.Module):
    """GRU decoder WITHOUT attention: its only view of the source is ``h_last``,
    used as the initial state (the fixed-size bottleneck of Sutskever et al. 2014).

    Shapes:
        tgt_in: (B, T) long (``<bos>`` + target, teacher forcing; or (B, 1) one step)
        state: (1, B, C) to continue decoding, or None to start from ``enc.h_last``
        returns DecoderOutput(logits (B, T, V), state (1, B, C), weights None)
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed)
        self.rnn = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.out = nn.Linear(d_hidden, vocab_size)

    def forward(self, tgt_in: torch.Tensor, enc: EncoderOutput, state: torch.Tensor | None = None) -> DecoderOutput:
        _check_tokens(tgt_in, "tgt_in")
        state = enc.h_last.unsqueeze(0) if state is None else state  # (1, B, C)
        out, state = self.rnn(self.embed(tgt_in), state)  # (B, T, E) -> (B, T, C)
        return DecoderOutput(self.out(out), state, None)  # (B, T, C) -> (B, T, V)


class AttentionDecoder(nn.Module):
    """GRU decoder WITH attention over every encoder state (Luong et al. 2015, global).

    At step t: h_t = GRU(y_{t-1}, h_{t-1}); a_t = softmax(score(h_t, hs));
    c_t = sum_s a_ts hs_s; h~_t = tanh(W_c [c_t; h_t]); logits = W_o h~_t.
    Luong scores with the *current* state h_t (Bahdanau uses the previous one,
    s_{t-1}, and feeds c_t into the GRU); with h_t the GRU does not depend on
    the attention. Under teacher forcing the GRU reads all T inputs in one call
    (still one step after another inside it), then the attention of all T steps
    is one batched product.

    Shapes:
        tgt_in: (B, T) long   state: (1, B, C) or None (start from ``enc.h_last``)
        returns DecoderOutput(logits (B, T, V), state (1, B, C), weights (B, T, S))
    """

    def __init__(
        self, vocab_size: int, d_embed: int, d_hidden: int, score: str = "dot"
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed)
        self.rnn = nn.GRU(d_embed, d_hidden, batch_first=True)
        self.score = make_score(score, d_hidden)
        self.combine = nn.Linear(2 * d_hidden, d_hidden)  # W_c
        self.out = nn.Linear(d_hidden, vocab_size)  # W_o

    def forward(
        self,
        tgt_in: torch.Tensor,
        enc: EncoderOutput,
        state: torch.Tensor | None = None,
    ) -> DecoderOutput:
        _check_tokens(tgt_in, "tgt_in")
        state = enc.h_last.unsqueeze(0) if state is None else state  # (1, B, C)
        # the recurrence: T steps one after another inside the call
        h, state = self.rnn(self.embed(tgt_in), state)  # (B, T, E) -> (B, T, C)
        scores = self.score(h, enc.hs)  # (B, T, C), (B, S, C) -> (B, T, S)
        # padding gets weight 0: mask (B, 1, S) -> weights (B, T, S)
        weights = _masked_softmax(scores, enc.mask.unsqueeze(1))
        context = weights @ enc.hs  # (B, T, S) @ (B, S, C) -> (B, T, C)
        # h~_t = tanh(W_c [c_t; h_t]): (B, T, 2C) -> (B, T, C)
        attentional = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))
        return DecoderOutput(self.out(attentional), state, weights)  # (B, T, V)


class DecoderStepLayers(nn.Module):
    """The layers of ``AttentionDecoder`` for decoding ONE step at a time (GRUCell instead of GRU).

    The assignment's ``attention_decoder_step`` uses them: embed y_{t-1}, one
    ``cell`` step, dot-product attention of h_t over hs, then
    ``out(tanh(combine([context; h_t])))``. ``from_decoder`` copies a trained
    ``AttentionDecoder`` (dot score) so the step-by-step and parallel forms can
    be compared.
    """

    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed)
        self.cell = nn.GRUCell(d_embed, d_hidden)
        self.combine = nn.Linear(2 * d_hidden, d_hidden)
        self.out = nn.Linear(d_hidden, vocab_size)

    @classmethod
    def from_decoder(cls, decoder: "AttentionDecoder") -> "DecoderStepLayers":
        """The same weights as ``decoder`` (a one-layer GRU's weights are a GRUCell's)."""
        layers = cls(decoder.embed.num_embeddings, decoder.embed.embedding_dim, decoder.rnn.hidden_size)
        layers = layers.to(decoder.embed.weight.dtype)
        with torch.no_grad():
            layers.embed.weight.copy_(decoder.embed.weight)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layers.cell, name).copy_(getattr(decoder.rnn, name + "_l0"))
            layers.combine.load_state_dict(decoder.combine.state_dict())
            layers.out.load_state_dict(decoder.out.state_dict())
        return layers


# --------------------------------------------------------------------------- 4. the whole model


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes of a ``Seq2Seq`` model (defaults: the chapter's date task)."""

    src_vocab_size: int  # characters of the human dates + 4 specials
    tgt_vocab_size: int  # characters of ISO dates + 4 specials
    d_embed: int = 32  # characters need few dimensions
    d_hidden: int = 128  # C: the GRU state, and the size of every h, hs, context
    attention: str | None = "dot"  # None = plain decoder; else one of SCORES
    pad_id: int = 0  # padding id of the source (CharVocab's)
    bos_id: int = 1  # first decoder input
    eos_id: int = 2  # decoding may stop once every sequence has produced it

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "d_embed", "d_hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.attention is not None and self.attention not in SCORES:
            raise ValueError(f"attention must be None (no attention) or one of {SCORES}, got {self.attention!r}")


class GreedyOutput(NamedTuple):
    tokens: torch.Tensor  # (B, T') predicted ids, <eos> and after it left as predicted
    weights: torch.Tensor | None  # (B, T', S) attention of each output step, None without attention


class Seq2Seq(nn.Module):
    """Encoder + (attention) decoder.

    Shapes:
        forward(src (B, S), tgt_in (B, T)) -> logits (B, T, V)   (teacher forcing)
        greedy_decode(src (B, S), max_len) -> GreedyOutput(tokens (B, max_len), weights (B, max_len, S))
    """

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(c.src_vocab_size, c.d_embed, c.d_hidden, c.pad_id)
        if c.attention is None:
            self.decoder: nn.Module = Decoder(c.tgt_vocab_size, c.d_embed, c.d_hidden)
        else:
            self.decoder = AttentionDecoder(c.tgt_vocab_size, c.d_embed, c.d_hidden, c.attention)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        _check_tokens(tgt_in, "tgt_in")
        if src.shape[0] != tgt_in.shape[0]:
            raise ValueError(f"src (B, S) and tgt_in (B, T) must have the same B, got {tuple(src.shape)} and {tuple(tgt_in.shape)}")
        return self.decoder(tgt_in, self.encoder(src)).logits

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> GreedyOutput:
        """Feed back the most likely character, one step at a time, starting from ``<bos>``."""
        if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        enc = self.encoder(src)
        token = torch.full((src.shape[0], 1), self.config.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        state, tokens, weights = None, [], []
        for _ in range(max_len):
            step = self.decoder(token, enc, state)  # logits (B, 1, V)
            state = step.state
            token = step.logits.argmax(dim=-1)  # (B, 1)
            tokens.append(token)
            if step.weights is not None:
                weights.append(step.weights)  # (B, 1, S)
            if bool((torch.cat(tokens, dim=1) == self.config.eos_id).any(dim=1).all()):
                break  # every sequence has finished
        return GreedyOutput(torch.cat(tokens, dim=1), torch.cat(weights, dim=1) if weights else None)


# --------------------------------------------------------------------------- 5. evaluation and training
# The optimisation step is the shared one of ``course_lib.train`` (``train_epoch``, which
# takes any model(src, tgt_in) -> logits); here what is specific to decoding strings.


def translate(model: Seq2Seq, src: torch.Tensor, tgt_vocab, max_len: int, batch_size: int = 1000) -> list[str]:
    """Greedy-decode ``src`` (N, S) in batches of ``batch_size`` and return the decoded strings."""
    was_training = model.training
    model.eval()
    out: list[str] = []
    for start in range(0, src.shape[0], batch_size):
        tokens = model.greedy_decode(src[start : start + batch_size], max_len).tokens
        out += tgt_vocab.decode_batch(tokens)
    model.train(was_training)
    return out


def exact_match_accuracy(model: Seq2Seq, src: torch.Tensor, targets: Sequence[str], tgt_vocab, max_len: int) -> float:
    """Fraction of sources whose greedy translation equals the target string exactly."""
    from course_lib.data.dates import exact_match

    return exact_match(translate(model, src, tgt_vocab, max_len), targets)


@dataclass
class TrainingCurve:
    """What ``train_seq2seq`` measured. ``epoch`` is fractional (0.25 = a quarter pass)."""

    epoch: list[float] = field(default_factory=list)  # where each checkpoint was taken
    accuracy: list[float] = field(default_factory=list)  # exact match on the evaluated test examples
    train_loss: list[float] = field(default_factory=list)  # mean training loss since the previous checkpoint
    train_seconds: list[float] = field(default_factory=list)  # cumulative time in training steps (evaluation excluded)
    n_eval: int = 0  # how many test examples each checkpoint decodes

    def first_reaching(self, target: float) -> tuple[float, float] | None:
        """(epoch, training seconds) of the first checkpoint with accuracy >= target, or None."""
        for epoch, acc, seconds in zip(self.epoch, self.accuracy, self.train_seconds):
            if acc >= target:
                return epoch, seconds
        return None


def train_seq2seq(
    model: Seq2Seq,
    task,
    epochs: int = 2,
    batch_size: int = 256,
    lr: float = 1e-2,
    checkpoints_per_epoch: int = 4,
    n_eval: int | None = 1000,
    seed: int = 0,
    desc: str = "training",
    stop_at: float | None = None,
    progress: bool = True,
) -> TrainingCurve:
    """Adam with a one-cycle learning rate (warm up, then anneal to ~0 at the end of ``epochs``),
    teacher forcing, and a test exact-match checkpoint ``checkpoints_per_epoch`` times per epoch.

    ``task`` is a ``course_lib.data.dates.DateTask``; each checkpoint greedily decodes the first
    ``n_eval`` test sources (None = the whole test split). Training stops early once the accuracy
    reaches ``stop_at`` (if given). One tqdm bar counts the optimizer steps.
    """
    from course_lib.train import tqdm, train_epoch  # plain text in the built book

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if not isinstance(checkpoints_per_epoch, int) or checkpoints_per_epoch < 1:
        raise ValueError(f"checkpoints_per_epoch must be a positive int, got {checkpoints_per_epoch!r}")
    loader = task.loader("train", batch_size, seed=seed)
    steps_per_epoch = len(loader)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    src = task.test.src if n_eval is None else task.test.src[:n_eval]
    targets = task.test.targets[: src.shape[0]]
    curve = TrainingCurve(n_eval=src.shape[0])
    bar = tqdm(total=epochs * steps_per_epoch, desc=desc, disable=not progress)
    elapsed = 0.0
    try:
        for epoch in range(epochs):
            batches = list(loader)  # one shuffled pass, cut into equal parts between checkpoints
            per_part = math.ceil(len(batches) / checkpoints_per_epoch)
            for part in range(checkpoints_per_epoch):
                chunk = batches[part * per_part : (part + 1) * per_part]
                if not chunk:
                    continue
                start = time.perf_counter()
                result = train_epoch(model, chunk, optimizer, scheduler, label_smoothing=0.0,
                                     pad_id=model.config.pad_id, progress=bar)  # fmt: skip
                elapsed += time.perf_counter() - start
                accuracy = exact_match_accuracy(model, src, targets, task.tgt_vocab, task.max_tgt_len)
                curve.epoch.append(epoch + min(1.0, (part + 1) * per_part / len(batches)))
                curve.accuracy.append(accuracy)
                curve.train_loss.append(result.loss)
                curve.train_seconds.append(elapsed)
                bar.set_postfix(loss=f"{result.loss:.3f}", exact_match=f"{accuracy:.3f}")
                if stop_at is not None and accuracy >= stop_at:
                    return curve
    finally:
        bar.close()
    return curve

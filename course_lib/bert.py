"""BERT (Devlin et al. 2018): a bidirectional Transformer encoder pretrained as a masked LM (chapter 8).

Dimension legend:
    B batch, T sequence length, C d_model (BERT's H), H heads (BERT's A),
    F d_ff, V vocabulary size, L layers, K number of classes.

Masks are boolean, True = may attend (``course_lib.masks``). ``attention_mask``
arguments follow Hugging Face: (B, T), 1/True on real tokens, 0/False on padding.

Read top-down:

    BertConfig                      every size, with the paper's base() and large()
    BertEmbeddings                  token + segment + learned position, LayerNorm, dropout
    BertModel                       embeddings -> chapter 7's Encoder (post-LN, GELU) -> pooler
    MaskedLMHead                    dense -> GELU -> LayerNorm -> decoder tied to the word embeddings
    NextSentenceHead                [CLS] (pooled) -> 2 logits: IsNext / NotNext
    BertForMaskedLM, BertForPreTraining, BertForSequenceClassification
    mask_tokens, make_nsp_pair      the two pretraining tasks' data
    hf_key_map & co.                the explicit map to and from ``transformers.BertForMaskedLM``

The encoder is ``course_lib.transformer.Encoder`` with ``activation="gelu"``,
``layer_norm_eps=1e-12`` and post-LN: exactly a stack of Hugging Face ``BertLayer``s.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.masks import causal_mask, combine_masks
from course_lib.transformer import Encoder

if TYPE_CHECKING:  # transformers is imported lazily: it is slow to import and only needed for parity
    import transformers

__all__ = [
    "BertConfig",
    "BertEmbeddings",
    "BertPooler",
    "BertModel",
    "BertOutput",
    "MaskedLMHead",
    "NextSentenceHead",
    "BertForMaskedLM",
    "MaskedLMOutput",
    "BertForPreTraining",
    "PreTrainingOutput",
    "BertForCausalLM",
    "BertForSequenceClassification",
    "ClassifierOutput",
    "MaskedTokens",
    "mask_tokens",
    "special_tokens_mask",
    "NspPair",
    "make_nsp_pair",
    "IGNORE_INDEX",
    "hf_key_map",
    "to_hf_config",
    "from_hf_config",
    "load_hf_state_dict",
    "to_hf_state_dict",
    "count_parameters",
    "bert_parameter_count",
    "fill_mask",
    "PATTERNS",
    "HeadPatterns",
    "head_patterns",
]

IGNORE_INDEX = -100  # label of positions the loss skips (torch's cross_entropy default ignore_index)


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class BertConfig:
    """Every size of a BERT model. Defaults are BERT-base (uncased English vocabulary).

    The paper writes L (layers), H (hidden size), A (attention heads); Hugging Face's
    ``transformers.BertConfig`` names are given after each field.
    Variants: ``dataclasses.replace(cfg, n_layers=2)``; ``BertConfig.base()``, ``BertConfig.large()``.
    """

    vocab_size: int = 30522  # WordPiece vocabulary (BERT's English uncased: 30522)            HF vocab_size
    d_model: int = 768  # H: width of every token vector                                       HF hidden_size
    n_layers: int = 12  # L: encoder layers                                                     HF num_hidden_layers
    n_heads: int = 12  # A: attention heads, each d_model // n_heads = 64 wide                  HF num_attention_heads
    d_ff: int = 3072  # FFN hidden width, 4H                                                    HF intermediate_size
    max_len: int = 512  # learned position embeddings: no vector past position 511              HF max_position_embeddings
    n_segments: int = 2  # segment (sentence A / B) embeddings                                  HF type_vocab_size
    dropout: float = 0.1  # on embeddings, sublayer outputs and attention weights                HF *_dropout_prob
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon (torch's default is 1e-5)         HF layer_norm_eps
    pad_id: int = 0  # [PAD]: masked as a key, its embedding row starts at zero                  HF pad_token_id
    init_std: float = 0.02  # weights start as N(0, 0.02^2), biases at 0                          HF initializer_range

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len", "n_segments"):
            _positive_int(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.layer_norm_eps > 0 or not self.init_std > 0:
            raise ValueError(f"layer_norm_eps and init_std must be > 0, got {self.layer_norm_eps}, {self.init_std}")
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, int) or not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id must be a token id in [0, vocab_size={self.vocab_size}), got {self.pad_id!r}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def base(cls, vocab_size: int = 30522, **overrides) -> "BertConfig":
        """BERT-base: L=12, H=768, A=12 (110M parameters)."""
        return cls(**{"vocab_size": vocab_size, "d_model": 768, "n_layers": 12, "n_heads": 12, "d_ff": 3072, **overrides})

    @classmethod
    def large(cls, vocab_size: int = 30522, **overrides) -> "BertConfig":
        """BERT-large: L=24, H=1024, A=16 (340M parameters)."""
        return cls(**{"vocab_size": vocab_size, "d_model": 1024, "n_layers": 24, "n_heads": 16, "d_ff": 4096, **overrides})

    @classmethod
    def tiny(cls, vocab_size: int, **overrides) -> "BertConfig":
        """The chapter's CPU model: L=2, H=128, A=4, sequences up to 128 tokens."""
        return cls(**{"vocab_size": vocab_size, "d_model": 128, "n_layers": 2, "n_heads": 4, "d_ff": 512, "max_len": 128, **overrides})

    def replace(self, **changes) -> "BertConfig":
        return dataclasses.replace(self, **changes)


def _init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: N(0, std^2) weights, zero biases, LayerNorm (1, 0), zero [PAD] row."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- embeddings


class BertEmbeddings(nn.Module):
    """The input representation (paper, Figure 2): the sum of three embeddings, then LayerNorm and dropout.

        x[b, t] = word[input_ids[b, t]] + segment[segment_ids[b, t]] + position[t]

    All three tables are learned. Segment 0 is sentence A (with [CLS] and its [SEP]),
    segment 1 sentence B.

    Shapes:
        input_ids, segment_ids: (B, T) long, T <= max_len
        returns: (B, T, C)
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int = 512,
        n_segments: int = 2,
        dropout: float = 0.1,
        layer_norm_eps: float = 1e-12,
        pad_id: int | None = 0,
    ):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.position_embeddings = nn.Embedding(max_len, d_model)
        self.segment_embeddings = nn.Embedding(n_segments, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, segment_ids: torch.Tensor | None = None) -> torch.Tensor:
        _check_ids(input_ids, "input_ids")
        B, T = input_ids.shape
        max_len = self.position_embeddings.num_embeddings
        if T > max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={max_len}: there is no learned vector for later positions")
        if segment_ids is None:
            segment_ids = torch.zeros_like(input_ids)  # one segment: all A
        elif segment_ids.shape != input_ids.shape:
            raise ValueError(f"segment_ids must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(segment_ids.shape)}")
        positions = torch.arange(T, device=input_ids.device)  # (T,): 0, 1, ..., T-1
        x = self.word_embeddings(input_ids)  # (B, T) -> (B, T, C)
        x = x + self.segment_embeddings(segment_ids)  # (B, T, C) + (B, T, C)
        x = x + self.position_embeddings(positions)  # (B, T, C) + (T, C), broadcast over B
        return self.dropout(self.norm(x))


def _check_ids(ids, name: str) -> None:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, T), got {type(ids).__name__}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")


# --------------------------------------------------------------------------- the encoder model


class BertPooler(nn.Module):
    """pooled = tanh(W h_[CLS] + b): the sentence vector that NSP and classifiers read.

    Shapes:
        hidden: (B, T, C) -> (B, C)
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, T, C) -> (B, C): the [CLS] position


class BertOutput(NamedTuple):
    """``hidden`` (B, T, C): one vector per token; ``pooled`` (B, C) or None without a pooler;
    ``attentions``: one (B, H, T, T) tensor per layer (None entries unless need_weights=True)."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None
    attentions: list[torch.Tensor | None]


def _attention_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_id: int) -> torch.Tensor:
    """(B, T) 1/True = real token  ->  (B, 1, 1, T) bool, True = may attend."""
    if attention_mask is None:
        return (input_ids != pad_id)[:, None, None, :]  # (B, T) -> (B, 1, 1, T)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask must be (B, T) like input_ids {tuple(input_ids.shape)}, 1 on real tokens; "
            f"got {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]  # (B, T) -> (B, 1, 1, T)


class BertModel(nn.Module):
    """Embeddings -> L post-LN encoder layers (GELU FFN) -> optional pooler.

    Bidirectional: no causal mask, every token attends to every other real token.
    ``causal=True`` adds chapter 6's causal mask, so token t sees only tokens 0..t:
    the same network becomes a left-to-right (GPT-style) model, for comparison.
    ``attention_mask`` defaults to ``input_ids != pad_id`` (Hugging Face defaults to all ones).

    Shapes:
        input_ids, segment_ids, attention_mask: (B, T)
        returns BertOutput(hidden (B, T, C), pooled (B, C) | None, attentions [L x (B, H, T, T)])
    """

    def __init__(self, config: BertConfig, pooler: bool = True, causal: bool = False):
        super().__init__()
        c = self.config = config
        self.causal = causal
        self.embeddings = BertEmbeddings(c.vocab_size, c.d_model, c.max_len, c.n_segments, c.dropout, c.layer_norm_eps, c.pad_id)
        self.encoder = Encoder(
            c.n_layers, c.d_model, c.n_heads, c.d_ff, c.dropout, norm_first=False, activation="gelu", layer_norm_eps=c.layer_norm_eps
        )
        self.pooler = BertPooler(c.d_model) if pooler else None
        _init_weights(self, c.init_std)

    def forward(
        self,
        input_ids: torch.Tensor,
        segment_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> BertOutput:
        x = self.embeddings(input_ids, segment_ids)  # (B, T) -> (B, T, C)
        mask = _attention_mask(input_ids, attention_mask, self.config.pad_id)  # (B, 1, 1, T)
        if self.causal:
            mask = combine_masks(mask, causal_mask(input_ids.shape[1], device=input_ids.device))  # (B, 1, T, T)
        hidden, attentions = self.encoder(x, mask=mask, need_weights=need_weights)  # (B, T, C)
        pooled = self.pooler(hidden) if self.pooler is not None else None  # (B, C)
        return BertOutput(hidden, pooled, attentions)


# --------------------------------------------------------------------------- heads


class MaskedLMHead(nn.Module):
    """logits = LayerNorm(GELU(h W_t + b_t)) E^T + b: a score for every vocabulary entry at every position.

    The decoder's weight *is* the word-embedding matrix E (tied, Press & Wolf 2017):
    the same vector is read when a word goes in and scored when a word comes out.
    Only the output bias ``b`` is new.

    Shapes:
        hidden: (B, T, C) -> logits (B, T, V)
    """

    def __init__(self, d_model: int, word_embeddings: nn.Embedding, layer_norm_eps: float = 1e-12):
        super().__init__()
        vocab_size, emb_dim = word_embeddings.weight.shape
        if emb_dim != d_model:
            raise ValueError(f"word embeddings are {emb_dim} wide, the head expects d_model={d_model}")
        self.dense = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.decoder = nn.Linear(d_model, vocab_size, bias=False)
        self.decoder.weight = word_embeddings.weight  # tied: one Parameter, two uses (V, C)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.dense(hidden)))  # (B, T, C), exact erf GELU as in BERT
        return self.decoder(h) + self.bias  # (B, T, C) @ (C, V) -> (B, T, V)


class NextSentenceHead(nn.Module):
    """Two logits from the pooled [CLS] vector: class 0 = B follows A (IsNext), 1 = B is random (NotNext).

    Shapes:
        pooled: (B, C) -> (B, 2)
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.classifier = nn.Linear(d_model, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


class MaskedLMOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None  # mean cross-entropy over the labelled positions
    attentions: list[torch.Tensor | None]


def _mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)  # (B*T, V) vs (B*T,)


class BertForMaskedLM(nn.Module):
    """BERT + the masked-LM head (no pooler): the model ``transformers.BertForMaskedLM`` is.

    ``labels`` (B, T): the original token where a position was chosen for
    prediction, ``IGNORE_INDEX`` (-100) everywhere else (see ``mask_tokens``).

    Shapes:
        input_ids, segment_ids, attention_mask, labels: (B, T)
        returns MaskedLMOutput(logits (B, T, V), loss (), attentions)
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, pooler=False)
        self.mlm = MaskedLMHead(config.d_model, self.bert.embeddings.word_embeddings, config.layer_norm_eps)
        _init_weights(self.mlm.dense, config.init_std)  # not the decoder: it is the (initialised) embedding

    def forward(self, input_ids, segment_ids=None, attention_mask=None, labels=None, need_weights: bool = False) -> MaskedLMOutput:
        out = self.bert(input_ids, segment_ids, attention_mask, need_weights=need_weights)
        logits = self.mlm(out.hidden)  # (B, T, V)
        loss = _mlm_loss(logits, labels) if labels is not None else None
        return MaskedLMOutput(logits, loss, out.attentions)


class BertForCausalLM(nn.Module):
    """The same layers with a causal mask, trained to predict the *next* token (GPT's objective).

    Hugging Face's equivalent is ``BertLMHeadModel`` (``is_decoder=True``); the
    state-dict keys are those of ``BertForMaskedLM``. Only the left context is
    visible, so "[CLS] the [?]" must be guessed before "barks" has been read.

    Shapes:
        input_ids, segment_ids, attention_mask: (B, T)
        returns MaskedLMOutput(logits (B, T, V): position t scores token t+1, loss (), attentions)
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, pooler=False, causal=True)
        self.mlm = MaskedLMHead(config.d_model, self.bert.embeddings.word_embeddings, config.layer_norm_eps)
        _init_weights(self.mlm.dense, config.init_std)

    def forward(self, input_ids, segment_ids=None, attention_mask=None, need_weights: bool = False) -> MaskedLMOutput:
        out = self.bert(input_ids, segment_ids, attention_mask, need_weights=need_weights)
        logits = self.mlm(out.hidden)  # (B, T, V)
        targets = input_ids[:, 1:].masked_fill(input_ids[:, 1:] == self.config.pad_id, IGNORE_INDEX)  # next tokens
        loss = _mlm_loss(logits[:, :-1], targets)  # position t predicts token t+1
        return MaskedLMOutput(logits, loss, out.attentions)


class PreTrainingOutput(NamedTuple):
    loss: torch.Tensor | None  # mlm_loss + nsp_loss, as in the paper
    mlm_logits: torch.Tensor  # (B, T, V)
    nsp_logits: torch.Tensor  # (B, 2)
    mlm_loss: torch.Tensor | None
    nsp_loss: torch.Tensor | None
    attentions: list[torch.Tensor | None]


class BertForPreTraining(nn.Module):
    """BERT with both pretraining heads: masked LM on every position, NSP on [CLS].

    Shapes:
        input_ids, segment_ids, attention_mask, mlm_labels: (B, T); nsp_labels: (B,)
        returns PreTrainingOutput(loss, mlm_logits (B, T, V), nsp_logits (B, 2), ...)
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, pooler=True)
        self.mlm = MaskedLMHead(config.d_model, self.bert.embeddings.word_embeddings, config.layer_norm_eps)
        self.nsp = NextSentenceHead(config.d_model)
        _init_weights(self.mlm.dense, config.init_std)  # not the decoder: it is the (initialised) embedding
        _init_weights(self.nsp, config.init_std)

    def forward(
        self,
        input_ids,
        segment_ids=None,
        attention_mask=None,
        mlm_labels=None,
        nsp_labels=None,
        need_weights: bool = False,
        mlm_positions: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        """``mlm_positions`` (B, T) bool: score only these N positions, as BERT's own code does
        (the V-way softmax on the ~85% of positions without a label is wasted work);
        ``mlm_logits`` is then (N, V), in row-major order of the True entries."""
        out = self.bert(input_ids, segment_ids, attention_mask, need_weights=need_weights)
        nsp_logits = self.nsp(out.pooled)  # (B, 2)
        if mlm_positions is None:
            mlm_logits = self.mlm(out.hidden)  # (B, T, V)
            mlm_loss = _mlm_loss(mlm_logits, mlm_labels) if mlm_labels is not None else None
        else:
            mlm_logits = self.mlm(out.hidden[mlm_positions])  # (B, T, C)[mask] -> (N, C) -> (N, V)
            mlm_loss = F.cross_entropy(mlm_logits, mlm_labels[mlm_positions]) if mlm_labels is not None else None
        nsp_loss = F.cross_entropy(nsp_logits, nsp_labels) if nsp_labels is not None else None
        losses = [x for x in (mlm_loss, nsp_loss) if x is not None]
        loss = sum(losses) if losses else None
        return PreTrainingOutput(loss, mlm_logits, nsp_logits, mlm_loss, nsp_loss, out.attentions)


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor  # (B, K)
    loss: torch.Tensor | None


class BertForSequenceClassification(nn.Module):
    """Fine-tuning for single sentences or sentence pairs: a linear layer on the pooled [CLS] vector.

    Start from pretrained weights with ``model.bert.load_state_dict(pretrained.bert.state_dict())``.

    Shapes:
        input_ids, segment_ids, attention_mask: (B, T); labels: (B,)
        returns ClassifierOutput(logits (B, K), loss ())
    """

    def __init__(self, config: BertConfig, n_classes: int = 2):
        super().__init__()
        _positive_int("n_classes", n_classes)
        self.config = config
        self.bert = BertModel(config, pooler=True)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, n_classes)
        _init_weights(self.classifier, config.init_std)

    def forward(self, input_ids, segment_ids=None, attention_mask=None, labels=None) -> ClassifierOutput:
        pooled = self.bert(input_ids, segment_ids, attention_mask).pooled  # (B, C)
        logits = self.classifier(self.dropout(pooled))  # (B, C) -> (B, K)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ClassifierOutput(logits, loss)


# --------------------------------------------------------------------------- pretraining data


class MaskedTokens(NamedTuple):
    """``inputs``: what the model reads (some tokens replaced); ``labels``: the original
    token at the chosen positions, ``IGNORE_INDEX`` (-100) elsewhere."""

    inputs: torch.Tensor
    labels: torch.Tensor


def special_tokens_mask(input_ids: torch.Tensor, special_ids: Sequence[int]) -> torch.Tensor:
    """True where ``input_ids`` holds one of ``special_ids`` ([PAD], [CLS], [SEP], ...).

    Shapes:
        input_ids: (B, T) -> (B, T) bool
    """
    return torch.isin(input_ids, torch.as_tensor(list(special_ids), device=input_ids.device))


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> MaskedTokens:
    """BERT's masked-LM corruption (paper, sec. 3.1 and appendix C.2).

    Choose each non-special token with probability ``p`` (15%). Of the chosen:
    80% become [MASK], 10% a random token (uniform over the whole vocabulary, as in
    BERT's and Hugging Face's code), 10% stay unchanged. Only chosen positions get a
    label. Why not always [MASK]: [MASK] never occurs when the model is fine-tuned,
    so the model must also learn to represent tokens that look normal.

    Shapes:
        input_ids: (B, T) long   special_mask: (B, T) bool, True = never choose ([PAD], [CLS], [SEP])
        returns MaskedTokens(inputs (B, T), labels (B, T))
    """
    _check_ids(input_ids, "input_ids")
    if special_mask.shape != input_ids.shape or special_mask.dtype != torch.bool:
        raise ValueError(
            f"special_mask must be a bool tensor shaped like input_ids {tuple(input_ids.shape)}, "
            f"got {special_mask.dtype} {tuple(special_mask.shape)}"
        )
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability, got {p}")
    shape, device = input_ids.shape, input_ids.device
    chosen = (torch.rand(shape, generator=generator, device=device) < p) & ~special_mask  # (B, T)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    action = torch.rand(shape, generator=generator, device=device)  # one uniform draw decides 80/10/10
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)  # the last 10%: left unchanged
    random_ids = torch.randint(vocab_size, shape, generator=generator, device=device, dtype=input_ids.dtype)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return MaskedTokens(inputs, labels)


class NspPair(NamedTuple):
    """Two segments of sentence token ids and whether B really follows A (label 0) or not (label 1)."""

    a: list[int]
    b: list[int]
    label: int  # 0 = IsNext, 1 = NotNext (Hugging Face's convention)


def make_nsp_pair(
    documents: Sequence[Sequence[Sequence[int]]],
    rng: random.Random,
    max_tokens: int = 61,
) -> NspPair:
    """One next-sentence-prediction example (paper, sec. 3.1, Task #2).

    Pick a document and a split point; A is one or more consecutive sentences
    before it. With probability 1/2 B is the text that really follows (IsNext),
    otherwise sentences from a random *other* document (NotNext). Segments are
    trimmed from the end so that len(A) + len(B) <= max_tokens (the three special
    tokens [CLS] A [SEP] B [SEP] come on top).

    ``documents[d][s]`` is the list of token ids of sentence s of document d.
    """
    if len(documents) < 2:
        raise ValueError("next-sentence prediction needs at least two documents")
    while True:
        d = rng.randrange(len(documents))
        if len(documents[d]) >= 2:
            break
    doc = documents[d]
    cut = rng.randrange(1, len(doc))  # A ends before sentence `cut`
    a_start = rng.randrange(max(0, cut - 3), cut)  # A: up to 3 sentences
    a = [t for sentence in doc[a_start:cut] for t in sentence]
    n_b = rng.randrange(1, 4)  # B: up to 3 sentences
    if rng.random() < 0.5:
        b = [t for sentence in doc[cut : cut + n_b] for t in sentence]
        label = 0
    else:
        other = rng.randrange(len(documents) - 1)
        other += other >= d  # any document but d
        start = rng.randrange(len(documents[other]))
        b = [t for sentence in documents[other][start : start + n_b] for t in sentence]
        label = 1
    while len(a) + len(b) > max_tokens:  # trim the longer segment, as BERT's truncate_seq_pair does
        (a if len(a) > len(b) else b).pop()
    return NspPair(a, b, label)


# --------------------------------------------------------------------------- Hugging Face interop

# Our name -> Hugging Face's, inside one encoder layer (``bert.encoder.layers.{i}.`` / ``bert.encoder.layer.{i}.``).
LAYER_KEYS = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm",  # Add & Norm after attention
    "ffn.linear1": "intermediate.dense",
    "ffn.linear2": "output.dense",
    "norm2": "output.LayerNorm",  # Add & Norm after the FFN
}
EMBEDDING_KEYS = {
    "word_embeddings.weight": "word_embeddings.weight",
    "position_embeddings.weight": "position_embeddings.weight",
    "segment_embeddings.weight": "token_type_embeddings.weight",
    "norm.weight": "LayerNorm.weight",
    "norm.bias": "LayerNorm.bias",
}
MLM_HEAD_KEYS = {
    "mlm.dense.weight": "cls.predictions.transform.dense.weight",
    "mlm.dense.bias": "cls.predictions.transform.dense.bias",
    "mlm.norm.weight": "cls.predictions.transform.LayerNorm.weight",
    "mlm.norm.bias": "cls.predictions.transform.LayerNorm.bias",
    "mlm.decoder.weight": "cls.predictions.decoder.weight",  # = the word embeddings (tied) in both models
    "mlm.bias": "cls.predictions.bias",  # HF also exposes it as cls.predictions.decoder.bias (tied)
}
POOLER_KEYS = {"bert.pooler.dense.weight": "bert.pooler.dense.weight", "bert.pooler.dense.bias": "bert.pooler.dense.bias"}
NSP_KEYS = {"nsp.classifier.weight": "cls.seq_relationship.weight", "nsp.classifier.bias": "cls.seq_relationship.bias"}


def hf_key_map(n_layers: int, mlm: bool = True, pooler: bool = False, nsp: bool = False) -> dict[str, str]:
    """course_lib state-dict key -> ``transformers`` key, for every parameter.

    Defaults describe ``BertForMaskedLM`` (no pooler); ``pooler=True, nsp=True``
    describe ``BertForPreTraining``. Written out so that it reads as a table:

        bert.embeddings.segment_embeddings.weight   bert.embeddings.token_type_embeddings.weight
        bert.encoder.layers.0.self_attn.q_proj.weight   bert.encoder.layer.0.attention.self.query.weight
        ...
    """
    _positive_int("n_layers", n_layers)
    keys = {f"bert.embeddings.{ours}": f"bert.embeddings.{theirs}" for ours, theirs in EMBEDDING_KEYS.items()}
    for i in range(n_layers):
        for ours, theirs in LAYER_KEYS.items():
            for kind in ("weight", "bias"):
                keys[f"bert.encoder.layers.{i}.{ours}.{kind}"] = f"bert.encoder.layer.{i}.{theirs}.{kind}"
    if pooler:
        keys.update(POOLER_KEYS)
    if mlm:
        keys.update(MLM_HEAD_KEYS)
    if nsp:
        keys.update(NSP_KEYS)
    return keys


def _model_parts(model: nn.Module) -> tuple[int, bool, bool, bool]:
    if not isinstance(model, (BertForMaskedLM, BertForPreTraining, BertForCausalLM)):
        raise TypeError(f"expected a BertForMaskedLM, BertForPreTraining or BertForCausalLM, got {type(model).__name__}")
    return model.config.n_layers, True, model.bert.pooler is not None, isinstance(model, BertForPreTraining)


def load_hf_state_dict(model: nn.Module, hf_state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Copy a ``transformers`` BertForMaskedLM (or BertForPreTraining) state dict into ``model``, strictly.

    Every parameter of ``model`` must be found; Hugging Face keys that are not
    parameters of ours (buffers such as ``position_ids``) are ignored.
    """
    key_map = hf_key_map(*_model_parts(model))
    missing = sorted(theirs for theirs in key_map.values() if theirs not in hf_state_dict)
    if missing:
        raise KeyError(f"the Hugging Face state dict lacks {len(missing)} keys, e.g. {missing[:3]}: wrong number of layers or head?")
    ours = {k: hf_state_dict[theirs] for k, theirs in key_map.items()}
    model.load_state_dict(ours, strict=True)
    return model


def to_hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s weights under ``transformers`` names (with HF's tied alias ``cls.predictions.decoder.bias``)."""
    key_map = hf_key_map(*_model_parts(model))
    state = model.state_dict()
    hf = {theirs: state[ours] for ours, theirs in key_map.items()}
    hf["cls.predictions.decoder.bias"] = state["mlm.bias"]
    return hf


# BertConfig field -> transformers.BertConfig field, used both ways (HF's two dropout rates are one here)
_HF_CONFIG_FIELDS = {
    "vocab_size": "vocab_size",
    "d_model": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "d_ff": "intermediate_size",
    "max_len": "max_position_embeddings",
    "n_segments": "type_vocab_size",
    "dropout": "hidden_dropout_prob",
    "layer_norm_eps": "layer_norm_eps",
    "pad_id": "pad_token_id",
    "init_std": "initializer_range",
}


def to_hf_config(config: BertConfig, **extra) -> "transformers.BertConfig":
    """The equivalent ``transformers.BertConfig`` (eager attention, so weights can be returned)."""
    import transformers

    fields = {theirs: getattr(config, ours) for ours, theirs in _HF_CONFIG_FIELDS.items()}
    return transformers.BertConfig(
        **fields,
        hidden_act="gelu",
        attention_probs_dropout_prob=config.dropout,
        **{"attn_implementation": "eager", **extra},
    )


def from_hf_config(hf_config: "transformers.BertConfig") -> BertConfig:
    """The course_lib config of a ``transformers.BertConfig`` (GELU, absolute positions only)."""
    if hf_config.hidden_act != "gelu":
        raise ValueError(f"course_lib's BERT uses the exact GELU, the config asks for {hf_config.hidden_act!r}")
    if hf_config.hidden_dropout_prob != hf_config.attention_probs_dropout_prob:
        raise ValueError("course_lib uses one dropout rate for hidden states and attention weights")
    fields = {ours: getattr(hf_config, theirs) for ours, theirs in _HF_CONFIG_FIELDS.items()}
    if fields["pad_id"] is None:
        fields["pad_id"] = 0
    return BertConfig(**fields)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct trainable numbers (a tied matrix counts once)."""
    return sum(p.numel() for p in model.parameters())


def bert_parameter_count(config: BertConfig, pooler: bool = True) -> int:
    """The parameter count of ``BertModel(config)`` from the sizes alone (no tensors are built).

    embeddings  (V + max_len + n_segments) C + 2C (LayerNorm)
    per layer   4 (C^2 + C) attention + (C F + F) + (F C + C) FFN + 2 x 2C LayerNorms
    pooler      C^2 + C
    """
    c = config
    C, F_, V = c.d_model, c.d_ff, c.vocab_size
    embeddings = (V + c.max_len + c.n_segments) * C + 2 * C
    layer = 4 * (C * C + C) + (C * F_ + F_) + (F_ * C + C) + 2 * 2 * C
    return embeddings + c.n_layers * layer + (C * C + C if pooler else 0)



# --------------------------------------------------------------------------- reading the heads

PATTERNS = ("[CLS]", "[SEP]", "punctuation", "previous token", "next token", "entropy")


class HeadPatterns(NamedTuple):
    """Per layer and head, the mean over real query tokens of each pattern (Clark et al. 2019, sec. 3):
    the attention weight on [CLS], on [SEP], on punctuation, on the previous and on the next token,
    and the entropy of the weights (nats). ``uniform`` is the same statistic for weights spread evenly
    over the real tokens: the chance level of each column."""

    heads: dict[str, torch.Tensor]  # pattern -> (L, H)
    uniform: dict[str, float]  # pattern -> chance level
    n_queries: int


@torch.no_grad()
def head_patterns(
    batches, cls_id: int, sep_id: int, punctuation_ids: Sequence[int]
) -> HeadPatterns:
    """Measure ``PATTERNS`` for every head over ``batches`` of ``(attentions, input_ids, attention_mask)``.

    Shapes:
        attentions: L x (B, H, T, T); input_ids, attention_mask: (B, T)
    """
    sums: dict[str, torch.Tensor] = {}
    uniform_sums = dict.fromkeys(PATTERNS, 0.0)
    n = 0
    punctuation = torch.as_tensor(list(punctuation_ids))
    for attentions, ids, mask in batches:
        real = mask.bool()  # (B, T)
        B, T = ids.shape
        ones = torch.ones(T, T, dtype=torch.bool)
        keys = {  # (B, T, T): which keys each pattern adds up, per query
            "[CLS]": (ids == cls_id)[:, None, :].expand(B, T, T),
            "[SEP]": (ids == sep_id)[:, None, :].expand(B, T, T),
            "punctuation": torch.isin(ids, punctuation)[:, None, :].expand(B, T, T),
            "previous token": (ones.tril(-1) & ~ones.tril(-2)).expand(B, T, T),
            "next token": (ones.triu(1) & ~ones.triu(2)).expand(B, T, T),
        }
        uniform = real[:, None, :].float() / real.sum(-1)[:, None, None]  # (B, T, T)
        w = torch.stack(attentions, 1)  # (B, L, H, T, T)
        for name, k in keys.items():
            on = (w * k[:, None, None]).sum(-1)  # (B, L, H, T): weight on those keys per query
            sums[name] = sums.get(name, 0) + on.permute(1, 2, 0, 3)[:, :, real].sum(-1)  # (L, H)
            uniform_sums[name] += float((uniform * k).sum(-1)[real].sum())
        entropy = -(w * w.clamp_min(1e-12).log()).sum(-1)  # (B, L, H, T)
        sums["entropy"] = sums.get("entropy", 0) + entropy.permute(1, 2, 0, 3)[:, :, real].sum(-1)
        uniform_sums["entropy"] += float(real.sum(-1).float().log().repeat_interleave(real.sum(-1)).sum())
        n += int(real.sum())
    return HeadPatterns({k: v / n for k, v in sums.items()}, {k: v / n for k, v in uniform_sums.items()}, n)


@torch.no_grad()
def fill_mask(model: nn.Module, tokenizer, text: str, k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` likeliest tokens, with probabilities, for every [MASK] in ``text``.

    ``model`` is a BertForMaskedLM or BertForPreTraining; ``tokenizer`` a
    ``course_lib.tokenization.Tokenizer``. The text is one segment: ``[CLS] text [SEP]``.
    """
    encoding = tokenizer.encode_pair(text)
    ids = torch.tensor([encoding.ids])  # (1, T)
    was_training = model.training
    model.eval()
    out = model(ids)
    model.train(was_training)
    logits = out.mlm_logits if hasattr(out, "mlm_logits") else out.logits  # (1, T, V)
    positions = (ids[0] == tokenizer.mask_id).nonzero().flatten().tolist()
    result = []
    for t in positions:
        probs = logits[0, t].softmax(-1)  # (V,)
        top = probs.topk(k)
        result.append(list(zip(tokenizer.convert_ids_to_tokens(top.indices.tolist()), top.values.tolist())))
    return result

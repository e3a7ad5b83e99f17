"""The ch07_transformer checks pass on right answers and fail, with the expected hint, on planted mistakes."""

import math

import torch
import torch.nn.functional as F

from torch import nn

from course_lib.attention import MultiHeadAttention
from course_lib.checks.ch07_transformer import (
    check_decoder_layer,
    check_decoder_layer_longer_source,
    check_encoder_layer,
    check_encoder_layer_other_sizes,
    check_greedy_decode,
    check_greedy_decode_single,
    check_label_smoothed_loss,
    check_label_smoothed_loss_other_pad,
    check_lrate,
    check_lrate_peak,
)
from course_lib.masks import causal_mask
from course_lib.transformer import FeedForward

from check_cases import fails_with, planted_mistake_tests

# --------------------------------------------------------------------------- (a) encoder layer


def make_encoder_layer(mistake=None):
    class EncoderLayer(nn.Module):
        def __init__(self, d_model, n_heads, d_ff, dropout=0.1):
            super().__init__()
            self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
            self.ffn = FeedForward(d_model, d_ff)
            self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

        def forward(self, x, mask=None):
            m = {"no_mask": None, "inverted_mask": None if mask is None else ~mask,
                 "mask_on_queries": None if mask is None else mask.transpose(-1, -2)}.get(mistake, mask)
            attn = lambda h: self.self_attn(h, h, h, mask=m).out  # noqa: E731
            if mistake == "pre_ln":
                x = x + self.dropout1(attn(self.norm1(x)))
                return x + self.dropout2(self.ffn(self.norm2(x)))
            if mistake == "no_residual":
                x = self.norm1(self.dropout1(attn(x)))
                return self.norm2(self.dropout2(self.ffn(x)))
            if mistake == "norm_inside":
                x = x + self.norm1(self.dropout1(attn(x)))
                return x + self.norm2(self.dropout2(self.ffn(x)))
            if mistake == "detach":
                x = x.detach()
            if mistake == "ffn_from_input":
                h = self.norm1(x + self.dropout1(attn(x)))
                return self.norm2(x + self.dropout2(self.ffn(h)))
            if mistake == "no_norm2":
                x = self.norm1(x + self.dropout1(attn(x)))
                return x + self.dropout2(self.ffn(x))
            x = self.norm1(x + self.dropout1(attn(x)))
            return self.norm2(x + self.dropout2(self.ffn(x)))

    return EncoderLayer


def test_encoder_layer_check_passes_on_the_right_answer(capsys):
    check_encoder_layer(make_encoder_layer())
    check_encoder_layer_other_sizes(make_encoder_layer())
    assert "encoder_layer" in capsys.readouterr().out


class RenamedEncoderLayer(make_encoder_layer()):
    def __init__(self, *args):
        super().__init__(*args)
        self.attention = self.self_attn
        del self.self_attn


ENCODER_MISTAKES = [
    (make_encoder_layer("pre_ln"), "pre-LN"),
    (make_encoder_layer("no_residual"), "residual connections are missing"),
    (make_encoder_layer("norm_inside"), "normalised the sublayer's output before adding"),
    (make_encoder_layer("no_mask"), "the mask is not passed to the self-attention"),
    (make_encoder_layer("inverted_mask"), "mask polarity is inverted"),
    (make_encoder_layer("mask_on_queries"), "applied on the queries"),
    (make_encoder_layer("ffn_from_input"), "the FFN's residual adds the layer's original input"),
    (make_encoder_layer("no_norm2"), "missing its LayerNorm"),
    (make_encoder_layer("detach"), "gradients do not flow"),
    (RenamedEncoderLayer, "attention.q_proj.weight"),
]

CASES = [
    (check_encoder_layer, make_encoder_layer(), ENCODER_MISTAKES),
    (check_encoder_layer_other_sizes, make_encoder_layer(), ENCODER_MISTAKES),
]


def test_encoder_layer_check_catches_renamed_parameters():
    class Renamed(make_encoder_layer()):
        def __init__(self, *args):
            super().__init__(*args)
            self.attention = self.self_attn
            del self.self_attn

    fails_with(check_encoder_layer, Renamed, "expected names", "attention.q_proj.weight")


def test_encoder_layer_check_reports_not_implemented():
    class Todo(make_encoder_layer()):
        def forward(self, x, mask=None):
            raise NotImplementedError()

    fails_with(check_encoder_layer, Todo, "not implemented yet")


# --------------------------------------------------------------------------- (b) decoder layer


def make_decoder_layer(mistake=None):
    class DecoderLayer(nn.Module):
        def __init__(self, d_model, n_heads, d_ff, dropout=0.1):
            super().__init__()
            self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
            self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
            self.ffn = FeedForward(d_model, d_ff)
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

        def forward(self, x, memory, memory_mask=None):
            T = x.shape[1]
            causal = {None: causal_mask(T), "no_causal": None, "inverted_causal": ~causal_mask(T) | torch.eye(T, dtype=torch.bool),
                      "causal_off_by_one": torch.ones(T, T, dtype=torch.bool).tril(1)}.get(mistake, causal_mask(T))
            if mistake == "inverted_memory_mask":
                memory_mask = ~memory_mask
            if mistake == "pre_ln":
                h = self.norm1(x)
                x = x + self.self_attn(h, h, h, mask=causal).out
                h = self.norm2(x)
                x = x + self.cross_attn(h, memory, memory, mask=memory_mask).out
                return x + self.ffn(self.norm3(x))
            x = self.norm1(x + self.dropout1(self.self_attn(x, x, x, mask=causal).out))
            if mistake == "kv_from_decoder":
                attended = self.cross_attn(x, x, x).out
            elif mistake == "query_from_memory":
                attended = self.cross_attn(memory, x, x).out
                x = memory
            elif mistake == "no_memory_mask":
                attended = self.cross_attn(x, memory, memory).out
            else:
                attended = self.cross_attn(x, memory, memory, mask=memory_mask).out
            x = self.norm2(x + self.dropout2(attended))
            return self.norm3(x + self.dropout3(self.ffn(x)))

    return DecoderLayer


def test_decoder_layer_check_passes_on_the_right_answer():
    check_decoder_layer(make_decoder_layer())
    check_decoder_layer_longer_source(make_decoder_layer())


DECODER_MISTAKES = [
    (make_decoder_layer("no_causal"), "sees future positions"),
    (make_decoder_layer("inverted_causal"), "upside down"),
    (make_decoder_layer("causal_off_by_one"), "causal mask is off by one"),
    (make_decoder_layer("kv_from_decoder"), "decoder states as keys and values"),
    (make_decoder_layer("query_from_memory"), "query is the memory"),
    (make_decoder_layer("no_memory_mask"), "memory_mask"),
    (make_decoder_layer("inverted_memory_mask"), "memory mask polarity is inverted"),
    (make_decoder_layer("pre_ln"), "pre-LN"),
]

CASES += [
    (check_decoder_layer, make_decoder_layer(), DECODER_MISTAKES),
    (check_decoder_layer_longer_source, make_decoder_layer(), DECODER_MISTAKES),
]


# --------------------------------------------------------------------------- (c) schedule


def lrate(step, d_model, warmup_steps):
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def test_lrate_checks_pass_on_the_right_answer():
    check_lrate(lrate)
    check_lrate_peak(lrate)


def lrate_decay_sqrt(step, d_model, warmup_steps):  # step ** 0.5 where the paper has step ** -0.5
    return d_model ** -0.5 * min(step ** 0.5, step * warmup_steps ** -1.5)


def lrate_no_warmup(step, d_model, warmup_steps):
    return d_model ** -0.5 * step ** -0.5


def lrate_sqrt_d(step, d_model, warmup_steps):
    return math.sqrt(d_model) * min(1 / math.sqrt(step), step / warmup_steps ** 1.5)


LRATE_MISTAKES = [
    (lambda s, d, w: lrate(s + 1, d, w), "peak comes one step early"),
    (lambda s, d, w: lrate(max(1, s - 1), d, w), "peak comes one step late"),
    (lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5), "use min"),
    (lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5), "power -1.5"),
    (lambda s, d, w: min(s**-0.5, s * w**-1.5), "d_model^-0.5 is missing"),
    (lrate_decay_sqrt, "keeps rising linearly"),
    (lrate_no_warmup, "the warm-up is missing"),
    (lrate_sqrt_d, "not d_model^0.5"),
    (lambda s, d, w: torch.tensor(lrate(s, d, w)) * 2, "times the paper's"),
]

CASES += [
    (check_lrate, lrate, LRATE_MISTAKES),
    (check_lrate_peak, lrate, LRATE_MISTAKES[1:]),
]


def test_lrate_peak_check_catches_an_off_by_one():
    fails_with(check_lrate_peak, lambda s, d, w: lrate(s + 1, d, w), "should peak at step 37", "peaks at step 36")
    fails_with(check_lrate_peak, lambda s, d, w: lrate(max(1, s - 1), d, w), "peaks at step 38")


# --------------------------------------------------------------------------- (d) label smoothing


def label_smoothed_loss(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    per_token = (1 - eps) * nll + eps * (-logp.mean(-1))
    keep = target != pad_id
    return (per_token * keep).sum() / keep.sum()


def test_label_smoothing_checks_pass_on_the_right_answer():
    check_label_smoothed_loss(label_smoothed_loss)
    check_label_smoothed_loss_other_pad(label_smoothed_loss)
    check_label_smoothed_loss(lambda lg, t, e, p: F.cross_entropy(lg.flatten(0, 1), t.flatten(), label_smoothing=e, ignore_index=p))


def _pads_counted(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    return ((1 - eps) * -logp.gather(-1, target[..., None])[..., 0] + eps * -logp.mean(-1)).mean()


def _over_wrong_classes(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    V = logits.shape[-1]
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = target != pad_id
    return (((1 - eps) * nll + eps * (-logp.sum(-1) - nll) / (V - 1)) * keep).sum() / keep.sum()


def _without_pad_class(logits, target, eps, pad_id):  # the Annotated Transformer's convention
    logp = logits.log_softmax(-1)
    V = logits.shape[-1]
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = target != pad_id
    return (((1 - eps) * nll + eps * (-logp.sum(-1) - nll + logp[..., pad_id]) / (V - 2)) * keep).sum() / keep.sum()


def _summed(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    return (((1 - eps) * nll + eps * -logp.mean(-1)) * (target != pad_id)).sum()


def _hard_coded_pad(logits, target, eps, pad_id):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), label_smoothing=eps, ignore_index=0)


def _uniform_summed(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = target != pad_id
    return (((1 - eps) * nll + eps * -logp.sum(-1)) * keep).sum() / keep.sum()


def _nll_not_weighted(logits, target, eps, pad_id):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    keep = target != pad_id
    return ((nll + eps * -logp.mean(-1)) * keep).sum() / keep.sum()


def _over_all_positions(logits, target, eps, pad_id):
    loss = F.cross_entropy(logits.transpose(1, 2), target, label_smoothing=eps, ignore_index=pad_id, reduction="sum")
    return loss / target.numel()


SMOOTHING_MISTAKES = [
    (_over_all_positions, "pads included"),
    (_pads_counted, "padded target positions are included"),
    (_over_wrong_classes, "V - 1 wrong classes"),
    (_without_pad_class, "left the pad class out"),
    (lambda lg, t, e, p: label_smoothed_loss(lg, t, 0.0, p), "plain cross-entropy"),
    (_summed, "you summed over the tokens"),
    (_uniform_summed, "not their sum"),
    (_nll_not_weighted, "weighted by (1 - eps)"),
    (lambda lg, t, e, p: label_smoothed_loss(lg, t, e, p).detach(), "no gradient"),
    (lambda lg, t, e, p: label_smoothed_loss(lg, t, e, p).reshape(1).expand(3), "should be a scalar"),
]

CASES += [
    (check_label_smoothed_loss, label_smoothed_loss, SMOOTHING_MISTAKES),
    (check_label_smoothed_loss_other_pad, label_smoothed_loss, SMOOTHING_MISTAKES + [(_hard_coded_pad, "use the pad_id argument")]),
]


# --------------------------------------------------------------------------- (e) greedy decoding


def make_greedy(mistake=None):
    def greedy_decode(model, src, bos_id, eos_id, max_len):
        memory = model.encode(src).out
        start = {"start_eos": eos_id, "start_pad": 0}.get(mistake, bos_id)
        tokens = torch.full((src.shape[0], 1), start, dtype=torch.long)
        done = torch.zeros(src.shape[0], dtype=torch.bool)
        for _ in range(max_len - 1 if mistake == "budget_minus_one" else max_len):
            seen = tokens[:, -1:] if mistake == "last_token_only" else tokens
            hidden = model.decode(seen, memory, src).out
            pos = 0 if mistake == "first_position" else -1
            scores = hidden[:, pos] if mistake == "no_out_proj" else model.out_proj(hidden[:, pos])
            next_id = scores.argmax(-1)
            if mistake != "no_pad_after_eos":
                next_id = next_id.masked_fill(done, model.config.pad_id)
            tokens = torch.cat([tokens, next_id[:, None]], 1)
            done |= next_id == eos_id
            if mistake != "never_stop" and bool(done.all()):
                break
        return tokens[:, 1:] if mistake == "drop_bos" else tokens

    return greedy_decode


def test_greedy_checks_pass_on_the_right_answer():
    check_greedy_decode(make_greedy())
    check_greedy_decode_single(make_greedy())
    check_greedy_decode(make_greedy("never_stop"))  # trailing padding columns are accepted


def test_greedy_check_inputs_exercise_eos():
    """The planted model ends rows at different steps, and at least one row never ends."""
    from course_lib.checks.ch07_transformer import GreedyDecodeCheck, _ScriptedModel
    from course_lib.transformer import greedy_decode

    inputs = GreedyDecodeCheck().make_inputs()
    out = greedy_decode(_ScriptedModel(inputs["tables"]), inputs["src"], 1, 2, inputs["max_len"])
    ends = [(row[1:] == 2).nonzero()[0].item() if (row[1:] == 2).any() else None for row in out]
    assert None in ends and len({e for e in ends if e is not None}) >= 2, ends


def greedy_budget_plus_one(model, src, bos_id, eos_id, max_len):
    return make_greedy()(model, src, bos_id, eos_id, max_len + 1)


GREEDY_MISTAKES = [
    (make_greedy("start_eos"), "start token 1"),
    (make_greedy("start_pad"), "start token 1"),
    (make_greedy("first_position"), "take the logits of the *last* position"),
    (make_greedy("drop_bos"), "should start with the start token"),
    (make_greedy("no_out_proj"), "the output projection is missing"),
    (make_greedy("last_token_only"), "re-read the whole prefix"),
    (make_greedy("budget_minus_one"), "off by one"),
]

CASES += [
    (check_greedy_decode, make_greedy(), GREEDY_MISTAKES + [
        (make_greedy("no_pad_after_eos"), "fill the rest of that row with pad_id"),
        (greedy_budget_plus_one, "at most max_len=8"),
    ]),
    (check_greedy_decode_single, make_greedy(), GREEDY_MISTAKES),
]

(
    test_check_passes_on_the_right_answer,
    test_check_fails_with_a_hint,
    test_each_check_has_enough_planted_mistakes,
) = planted_mistake_tests(CASES)


def test_checks_registered_and_named():
    from course_lib.checks import REGISTRY

    for name in ("encoder_layer", "decoder_layer", "lrate", "label_smoothed_loss", "greedy_decode", "lrate_peak"):
        assert name in REGISTRY
    assert math.isfinite(lrate(1, 512, 4000))

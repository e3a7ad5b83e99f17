"""The ch07_transformer checks pass on right answers and fail, with the expected hint, on planted mistakes."""

import math

import pytest
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
from course_lib.masks import causal_mask, combine_masks
from course_lib.transformer import FeedForward

from check_cases import fails_with


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
            m = None if mistake == "no_mask" else mask
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
            x = self.norm1(x + self.dropout1(attn(x)))
            return self.norm2(x + self.dropout2(self.ffn(x)))

    return EncoderLayer


def test_encoder_layer_check_passes_on_the_right_answer(capsys):
    check_encoder_layer(make_encoder_layer())
    check_encoder_layer_other_sizes(make_encoder_layer())
    assert "encoder_layer" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        ("pre_ln", "pre-LN"),
        ("no_residual", "residual connections are missing"),
        ("norm_inside", "normalised the sublayer's output before adding"),
        ("no_mask", "pass the mask to the self-attention"),
        ("detach", "gradients do not flow"),
    ],
)
def test_encoder_layer_check_catches(mistake, fragment):
    fails_with(check_encoder_layer, make_encoder_layer(mistake), fragment)


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
            causal = {None: causal_mask(T), "no_causal": None, "inverted_causal": ~causal_mask(T) | torch.eye(T, dtype=torch.bool)}.get(
                mistake, causal_mask(T)
            )
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


@pytest.mark.parametrize(
    "mistake, fragments",
    [
        ("no_causal", ["changed the outputs at earlier positions", "causal mask"]),
        ("inverted_causal", ["changed the outputs at earlier positions", "upside down"]),
        ("kv_from_decoder", ["decoder states as keys and values"]),
        ("query_from_memory", ["expected shape (3, 5, 12)", "query is the memory"]),
        ("no_memory_mask", ["padded positions of memory", "memory_mask"]),
        ("pre_ln", ["pre-LN"]),
    ],
)
def test_decoder_layer_check_catches(mistake, fragments):
    fails_with(check_decoder_layer, make_decoder_layer(mistake), *fragments)


# --------------------------------------------------------------------------- (c) schedule


def lrate(step, d_model, warmup_steps):
    return d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def test_lrate_checks_pass_on_the_right_answer():
    check_lrate(lrate)
    check_lrate_peak(lrate)


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (lambda s, d, w: lrate(s + 1, d, w), "peak comes one step early"),
        (lambda s, d, w: d**-0.5 * max(s**-0.5, s * w**-1.5), "use min"),
        (lambda s, d, w: d**-0.5 * min(s**-0.5, s * w**-0.5), "power -1.5"),
        (lambda s, d, w: min(s**-0.5, s * w**-1.5), "d_model^-0.5 is missing"),
        (lambda s, d, w: torch.tensor(lrate(s, d, w)) * 2, "expected"),
    ],
)
def test_lrate_check_catches(wrong, fragment):
    fails_with(check_lrate, wrong, fragment)


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


@pytest.mark.parametrize(
    "wrong, fragment",
    [
        (_pads_counted, "padded target positions are included"),
        (_over_wrong_classes, "V - 1 wrong classes"),
        (_without_pad_class, "left the pad class out"),
        (lambda lg, t, e, p: label_smoothed_loss(lg, t, 0.0, p), "plain cross-entropy"),
        (lambda lg, t, e, p: label_smoothed_loss(lg, t, e, p).detach(), "no gradient"),
        (lambda lg, t, e, p: label_smoothed_loss(lg, t, e, p).reshape(1).expand(3), "should be a scalar"),
    ],
)
def test_label_smoothing_check_catches(wrong, fragment):
    fails_with(check_label_smoothed_loss, wrong, fragment)


# --------------------------------------------------------------------------- (e) greedy decoding


def make_greedy(mistake=None):
    def greedy_decode(model, src, bos_id, eos_id, max_len):
        memory = model.encode(src).out
        start = {"start_eos": eos_id, "start_pad": 0}.get(mistake, bos_id)
        tokens = torch.full((src.shape[0], 1), start, dtype=torch.long)
        done = torch.zeros(src.shape[0], dtype=torch.bool)
        for _ in range(max_len):
            hidden = model.decode(tokens, memory, src).out
            pos = 0 if mistake == "first_position" else -1
            next_id = model.out_proj(hidden[:, pos]).argmax(-1)
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


@pytest.mark.parametrize(
    "mistake, fragment",
    [
        ("start_eos", "start token 1"),
        ("start_pad", "start token 1"),
        ("first_position", "take the logits of the *last* position"),
        ("no_pad_after_eos", "fill the rest of that row with pad_id"),
        ("drop_bos", "should start with the start token"),
    ],
)
def test_greedy_check_catches(mistake, fragment):
    fails_with(check_greedy_decode, make_greedy(mistake), fragment)


def test_checks_registered_and_named():
    from course_lib.checks import REGISTRY

    for name in ("encoder_layer", "decoder_layer", "lrate", "label_smoothed_loss", "greedy_decode", "lrate_peak"):
        assert name in REGISTRY
    assert math.isfinite(lrate(1, 512, 4000))

"""course_lib.seq2seq: attention for one decoder state, encoder, decoders, greedy decoding."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.attention import AdditiveScore, scaled_dot_product_attention
from course_lib.seq2seq import (
    SCORES,
    AttentionDecoder,
    Decoder,
    Encoder,
    Seq2Seq,
    Seq2SeqConfig,
    attention_context,
    attention_context_matmul,
    make_score,
    exact_match_accuracy,
    translate,
)

B, S, T, C, E, V_SRC, V_TGT = 3, 7, 5, 12, 6, 20, 15


def padded_src(lengths=(7, 4, 2), pad_id=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V_SRC, (len(lengths), max(lengths)), generator=g)
    for b, n in enumerate(lengths):
        src[b, n:] = pad_id
    return src


def small_model(attention="dot", seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(V_SRC, V_TGT, d_embed=E, d_hidden=C, attention=attention))


# --------------------------------------------------------------------------- attention for one state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clarity_first_and_matmul_forms_agree(dtype):
    h, hs = torch.randn(B, C, dtype=dtype), torch.randn(B, S, C, dtype=dtype)
    mask = torch.arange(S)[None, :] < torch.tensor([7, 4, 2])[:, None]
    for m in (None, mask):
        a = attention_context(h, hs, m)
        b = attention_context_matmul(h, hs, m)
        assert a.out.shape == (B, C) and a.weights.shape == (B, S)
        torch.testing.assert_close(a.out, b.out)
        torch.testing.assert_close(a.weights, b.weights)
        torch.testing.assert_close(a.weights.sum(-1), torch.ones(B, dtype=dtype))


def test_attention_context_equals_unscaled_sdpa():
    """The chapter-1 attention is chapter 3's with one query and no 1/sqrt(d) scale."""
    h, hs = torch.randn(B, C, dtype=torch.float64), torch.randn(B, S, C, dtype=torch.float64)
    ref = scaled_dot_product_attention(h.unsqueeze(1) * C**0.5, hs, hs)  # undo the scale
    got = attention_context(h, hs)
    torch.testing.assert_close(got.out, ref.out.squeeze(1))
    torch.testing.assert_close(got.weights, ref.weights.squeeze(1))


def test_attention_context_masks_padding():
    h, hs = torch.randn(B, C), torch.randn(B, S, C)
    mask = torch.arange(S)[None, :] < torch.tensor([7, 4, 2])[:, None]
    out, weights = attention_context(h, hs, mask)
    assert (weights[~mask] == 0).all()
    changed = hs.clone()
    changed[~mask] = 100.0  # whatever sits at padded positions must not matter
    torch.testing.assert_close(attention_context(h, changed, mask).out, out)


def test_attention_context_bad_inputs():
    h, hs = torch.randn(B, C), torch.randn(B, S, C)
    with pytest.raises(ValueError, match="transposed"):
        attention_context(h, hs.transpose(1, 2))
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        attention_context(h.unsqueeze(1), hs)
    with pytest.raises(TypeError, match="bool"):
        attention_context(h, hs, torch.ones(B, S))
    with pytest.raises(ValueError, match="mask must have shape"):
        attention_context_matmul(h, hs, torch.ones(B, S + 1, dtype=torch.bool))
    with pytest.raises(TypeError, match="floating-point"):
        attention_context(torch.ones(B, C, dtype=torch.long), hs)


# --------------------------------------------------------------------------- encoder and decoders


def test_encoder_shapes_and_last_state_ignores_padding():
    torch.manual_seed(0)
    enc = Encoder(V_SRC, E, C)
    src = padded_src()
    out = enc(src)
    assert out.hs.shape == (B, S, C) and out.h_last.shape == (B, C) and out.mask.shape == (B, S)
    assert out.mask.sum(1).tolist() == [7, 4, 2]
    # h_last of the second sequence equals the state after its 4th character, computed without padding
    alone = enc(src[1:2, :4])
    torch.testing.assert_close(out.h_last[1], alone.h_last[0])
    torch.testing.assert_close(out.hs[1, :4], alone.hs[0])


@pytest.mark.parametrize("score", SCORES)
def test_attention_decoder_shapes_and_masking(score):
    torch.manual_seed(0)
    enc, dec = Encoder(V_SRC, E, C), AttentionDecoder(V_TGT, E, C, score=score)
    src = padded_src()
    tgt_in = torch.randint(0, V_TGT, (B, T))
    enc_out = enc(src)
    out = dec(tgt_in, enc_out)
    assert out.logits.shape == (B, T, V_TGT) and out.weights.shape == (B, T, S) and out.state.shape == (1, B, C)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(B, T))
    assert (out.weights.masked_select(~enc_out.mask[:, None, :].expand(B, T, S)) == 0).all()
    # changing the source after each sequence's end changes nothing
    other = src.clone()
    other[src == 0] = 0  # still padding...
    noisy = enc_out._replace(hs=enc_out.hs.masked_fill(~enc_out.mask[..., None], 50.0))
    torch.testing.assert_close(dec(tgt_in, noisy).logits, out.logits)


def test_make_score_uses_course_lib_modules():
    assert isinstance(make_score("additive", C), AdditiveScore)
    with pytest.raises(ValueError, match="unknown attention score"):
        make_score("cosine", C)


def test_plain_decoder_sees_only_h_last():
    torch.manual_seed(0)
    enc, dec = Encoder(V_SRC, E, C), Decoder(V_TGT, E, C)
    enc_out = enc(padded_src())
    tgt_in = torch.randint(0, V_TGT, (B, T))
    out = dec(tgt_in, enc_out)
    assert out.logits.shape == (B, T, V_TGT) and out.weights is None
    scrambled = enc_out._replace(hs=torch.randn_like(enc_out.hs))
    torch.testing.assert_close(dec(tgt_in, scrambled).logits, out.logits)


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("attention", [None, "dot", "general", "additive"])
def test_greedy_decode_matches_teacher_forcing_on_its_own_output(attention):
    model = small_model(attention).eval()
    src = padded_src()
    tokens, weights = model.greedy_decode(src, max_len=6)
    assert tokens.shape[0] == B and tokens.shape[1] <= 6
    # feeding <bos> + its own predictions with teacher forcing must give the same argmaxes
    tgt_in = torch.cat([torch.full((B, 1), model.config.bos_id), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        logits = model(src, tgt_in)
    assert torch.equal(logits.argmax(-1), tokens)
    if attention is None:
        assert weights is None
    else:
        assert weights.shape == (B, tokens.shape[1], S)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, tokens.shape[1]))


def test_model_forward_and_bad_inputs():
    model = small_model("dot")
    src, tgt_in = padded_src(), torch.randint(0, V_TGT, (B, T))
    assert model(src, tgt_in).shape == (B, T, V_TGT)
    with pytest.raises(ValueError, match="same B"):
        model(src, tgt_in[:2])
    with pytest.raises(TypeError, match="integer token ids"):
        model(src.float(), tgt_in)
    with pytest.raises(ValueError, match="empty"):
        model(torch.zeros(2, 4, dtype=torch.long), tgt_in[:2])
    with pytest.raises(ValueError, match="outside"):
        model(src + 100, tgt_in)
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(src, 0)
    with pytest.raises(ValueError, match="attention must be None"):
        Seq2SeqConfig(V_SRC, V_TGT, attention="cosine")
    with pytest.raises(ValueError, match="d_hidden"):
        Seq2SeqConfig(V_SRC, V_TGT, d_hidden=0)


def test_a_few_steps_of_training_learn_the_date_task():
    """Smoke test: on a small slice of the real task, the loss falls and decoding runs end to end."""
    from course_lib.data.dates import load_date_task
    from course_lib.train import fit

    torch.manual_seed(0)
    task = load_date_task(n_train=256, n_test=32, seed=0)
    model = Seq2Seq(Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), d_embed=8, d_hidden=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and immune to a busy machine
    try:
        history = fit(model, task.loader("train", 64, bucket=True), opt, epochs=3, label_smoothing=0.0, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert history.train_loss[-1] < history.train_loss[0]
    acc = exact_match_accuracy(model, task.test.src, task.test.targets, task.tgt_vocab, task.max_tgt_len)
    assert 0.0 <= acc <= 1.0
    assert len(translate(model, task.test.src[:5], task.tgt_vocab, 4)) == 5


def test_step_layers_from_decoder_match_the_parallel_decoder():
    """Decoding one step at a time with a GRUCell equals the teacher-forced parallel decoder."""
    from course_lib.seq2seq import DecoderStepLayers

    torch.manual_seed(0)
    enc, dec = Encoder(V_SRC, E, C), AttentionDecoder(V_TGT, E, C, score="dot")
    enc_out = enc(padded_src())
    tgt_in = torch.randint(0, V_TGT, (B, T))
    ref = dec(tgt_in, enc_out)
    layers = DecoderStepLayers.from_decoder(dec)
    h = enc_out.h_last
    for t in range(T):
        h = layers.cell(layers.embed(tgt_in[:, t]), h)
        context, weights = attention_context(h, enc_out.hs, enc_out.mask)
        logits = layers.out(torch.tanh(layers.combine(torch.cat([context, h], dim=-1))))
        torch.testing.assert_close(logits, ref.logits[:, t])
        torch.testing.assert_close(weights, ref.weights[:, t])


def test_train_seq2seq_curve_and_early_stop():
    from course_lib.data.dates import load_date_task
    from course_lib.seq2seq import train_seq2seq

    task = load_date_task(n_train=256, n_test=32, seed=0)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), d_embed=8, d_hidden=16))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        curve = train_seq2seq(model, task, epochs=2, batch_size=64, checkpoints_per_epoch=2, n_eval=None, progress=False)
        assert curve.epoch == [0.5, 1.0, 1.5, 2.0] and curve.n_eval == 32
        assert all(0.0 <= a <= 1.0 for a in curve.accuracy)
        assert curve.train_seconds == sorted(curve.train_seconds)
        assert curve.first_reaching(2.0) is None
        stopped = train_seq2seq(model, task, epochs=2, batch_size=64, checkpoints_per_epoch=2, stop_at=0.0, progress=False)
        assert stopped.epoch == [0.5] and stopped.first_reaching(0.0) == (0.5, stopped.train_seconds[0])
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="epochs"):
        train_seq2seq(model, task, epochs=0)

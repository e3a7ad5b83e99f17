"""course_lib.train: the schedule, the loss, the loop; and train/decode agreement on start tokens."""

import math

import pytest
import torch
from torch import nn

from course_lib.train import (
    History,
    evaluate,
    fit,
    label_smoothed_cross_entropy,
    paper_adam,
    seed_everything,
    transformer_lr_schedule,
    transformer_lrate,
)
from course_lib.transformer import Transformer, TransformerConfig, beam_search, greedy_decode

V, PAD = 11, 0


# --------------------------------------------------------------------------- schedule


def test_lrate_formula_peak_and_decay():
    d_model, warmup = 512, 4000
    rates = [transformer_lrate(s, d_model, warmup) for s in range(1, 20001)]
    peak_step = max(range(len(rates)), key=rates.__getitem__) + 1
    assert peak_step == warmup
    assert rates[warmup - 1] == pytest.approx((d_model * warmup) ** -0.5)  # 7.0e-4 for the base model
    assert rates[warmup - 1] == pytest.approx(6.987712429686844e-4)
    assert rates[0] == pytest.approx(d_model**-0.5 * warmup**-1.5)  # linear warmup from ~0
    assert rates[4 * warmup - 1] == pytest.approx(rates[warmup - 1] / 2)  # 1/sqrt(step) decay
    assert transformer_lrate(10, 64, 100, scale=2.0) == pytest.approx(2 * transformer_lrate(10, 64, 100))
    with pytest.raises(ValueError, match="from 1"):
        transformer_lrate(0, d_model, warmup)


@pytest.mark.parametrize("base_lr", [1.0, 1e-3])
def test_lambda_lr_applies_the_paper_rate_per_update(base_lr):
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=base_lr)
    sched = transformer_lr_schedule(opt, d_model=32, warmup_steps=5)
    used = []
    for _ in range(12):
        used.append(opt.param_groups[0]["lr"])  # the lr the next update will use
        opt.step()
        sched.step()
    expected = [transformer_lrate(s, 32, 5) for s in range(1, 13)]
    assert used == pytest.approx(expected)
    assert used.index(max(used)) + 1 == 5, "update number warmup_steps uses the peak rate"


def test_cooldown_ends_linearly_at_the_last_step():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = transformer_lr_schedule(opt, d_model=16, warmup_steps=4, total_steps=20, cooldown_steps=5)
    used = []
    for _ in range(20):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    paper = [transformer_lrate(s, 16, 4) for s in range(1, 21)]
    assert used[:15] == pytest.approx(paper[:15])
    assert used[15:] == pytest.approx([paper[15 + k] * (5 - k) / 5 for k in range(5)])
    with pytest.raises(ValueError, match="total_steps"):
        transformer_lr_schedule(opt, 16, 4, cooldown_steps=5)


def test_paper_adam():
    opt = paper_adam([nn.Parameter(torch.zeros(1))])
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9


# --------------------------------------------------------------------------- loss


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch(eps):
    logits = torch.randn(3, 5, V, dtype=torch.float64, requires_grad=True)
    target = torch.randint(1, V, (3, 5))
    target[0, 3:] = PAD
    target[2, 1:] = PAD
    ours = label_smoothed_cross_entropy(logits, target, eps, PAD)
    ref = nn.CrossEntropyLoss(label_smoothing=eps, ignore_index=PAD)(logits.flatten(0, 1), target.flatten())
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_ref,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g_ours, g_ref)
    assert (g_ours[2, 1:] == 0).all(), "padded targets get no gradient"


def test_label_smoothing_optimum_is_the_smoothed_target():
    """Minimising the smoothed loss drives p(true) to 1 - eps + eps / V, not to 1: the model is less confident."""
    eps = 0.1
    logits = torch.zeros(1, V, requires_grad=True)
    target = torch.tensor([3])
    opt = torch.optim.SGD([logits], lr=5.0)
    for _ in range(500):
        opt.zero_grad()
        label_smoothed_cross_entropy(logits, target, eps, pad_id=None).backward()
        opt.step()
    p = logits.softmax(-1)[0]
    assert p[3].item() == pytest.approx(1 - eps + eps / V, abs=1e-3)
    assert p[0].item() == pytest.approx(eps / V, abs=1e-3)


# --------------------------------------------------------------------------- seeding and the loop


def test_seed_everything_is_deterministic():
    g1 = seed_everything(3)
    a = torch.randn(4), torch.randint(0, 9, (3,), generator=g1)
    g2 = seed_everything(3)
    b = torch.randn(4), torch.randint(0, 9, (3,), generator=g2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


BOS, EOS = 1, 2


def copy_batches(n_batches, batch_size=32, length=6, seed=0):
    """Copy task: src = a random string, tgt_in = [bos, *src], tgt_out = [*src, eos]."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        body = torch.randint(3, V, (batch_size, length), generator=g)
        bos = torch.full((batch_size, 1), BOS)
        eos = torch.full((batch_size, 1), EOS)
        batches.append((body, torch.cat([bos, body], 1), torch.cat([body, eos], 1)))
    return batches


EPOCH_BUDGET = 40


@pytest.fixture(scope="module")
def trained_copy_model():
    """A tiny Transformer trained for a few seconds to copy 6-token strings.

    One thread: the tensors are tiny, so a second thread only adds contention (on a busy 2-core
    machine it made this fixture minutes slower), and the result no longer depends on the thread
    count. The peak learning rate is the paper's schedule x 1.0 (x 2.0 got stuck at 61% for one
    seed in ten and needed 35-75 epochs for two others). Training stops as soon as greedy decoding
    copies all 32 strings of test[0]; measured over seeds 0-9 (1 thread) and 0-5 (2 threads):
    after 3-8 epochs, teacher-forced token accuracy 0.989-1.0 on test (issue 12 table).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seed_everything(0)
        cfg = TransformerConfig(
            src_vocab_size=V, tgt_vocab_size=V, d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=1,
            dropout=0.0, max_len=16, pad_id=PAD,
        )  # fmt: skip
        model = Transformer(cfg)
        opt = paper_adam(model.parameters())
        sched = transformer_lr_schedule(opt, cfg.d_model, warmup_steps=50, scale=1.0)
        train, test = copy_batches(40), copy_batches(2, seed=1)

        def exact(m):
            src = test[0][0]
            out = greedy_decode(m, src, start_id=BOS, eos_id=EOS, max_new_tokens=8)
            return {"exact_match": float((out[:, 1:8] == test[0][2]).all(-1).float().mean())}

        history = fit(model, train, opt, epochs=EPOCH_BUDGET, scheduler=sched, label_smoothing=0.0, pad_id=PAD, eval_fn=exact,
                      stop_when=lambda m: m["exact_match"] == 1.0, progress=False)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return model, history, test


def test_fit_returns_a_history_and_learns(trained_copy_model):
    model, history, test = trained_copy_model
    assert isinstance(history, History)
    n = len(history.epoch)
    assert len(history.train_loss) == len(history.train_time) == len(history.step) == len(history.metrics["exact_match"]) == n
    assert history.step[-1] == 40 * n and history.train_time == sorted(history.train_time)
    assert history.train_loss[-1] < history.train_loss[0]
    # The stop rule fired (every string of test[0] copied) well inside the budget: measured 3-8 epochs.
    assert n <= EPOCH_BUDGET // 2, f"the copy task should be solved within {EPOCH_BUDGET // 2} epochs, got {history.metrics}"
    # Teacher-forced token accuracy on both test batches (test[1] is never used to stop): measured
    # 0.989-1.0 over seeds and threads; 0.9933 on an AVX-512 CPU. Never exactly 1.0 by fiat.
    assert evaluate(model, test)["accuracy"] >= 0.97


def test_decoding_starts_with_the_training_start_token(trained_copy_model):
    """The known tutorial bug: targets trained as [bos, y1, ...] but decoding started from another
    token (or from y1). Here the start token of the training inputs is the one decoding uses,
    so greedy decoding reproduces the targets; a wrong start token breaks the copy."""
    model, _, test = trained_copy_model
    src, tgt_in, tgt_out = test[0]
    assert (tgt_in[:, 0] == BOS).all()
    out = greedy_decode(model, src, start_id=int(tgt_in[0, 0]), eos_id=EOS, max_new_tokens=8)
    assert (out[:, 0] == tgt_in[:, 0]).all()
    # Exact by construction, not by luck: training stopped when this same greedy decoding of
    # test[0] (same model, same process) copied every string.
    torch.testing.assert_close(out[:, 1:], tgt_out)  # ... the copy, then eos
    beam = beam_search(model, src[:4], start_id=BOS, eos_id=EOS, max_new_tokens=8, beam_size=3)
    assert (beam[:, 0] == BOS).all()
    copied = int((beam[:, 1:] == tgt_out[:4]).all(-1).sum()) if beam.shape[1] == out.shape[1] else 0
    assert copied >= 3, f"beam search should copy (nearly) every string, copied {copied} of 4"  # measured: 4 of 4
    wrong = greedy_decode(model, src, start_id=EOS, eos_id=EOS, max_new_tokens=8)  # a start token never trained on
    assert not torch.equal(wrong[:, 1:], tgt_out)


def test_fit_checkpoints_every_n_steps():
    seed_everything(0)
    model = Transformer(TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=8, n_heads=2, d_ff=8, n_encoder_layers=1, n_decoder_layers=1, dropout=0.0))
    calls = []
    history = fit(model, copy_batches(10, batch_size=4), paper_adam(model.parameters()), epochs=2, eval_every=4,
                  eval_fn=lambda m: calls.append(1) or {"n": len(calls)}, progress=False)  # fmt: skip
    assert history.step == [4, 8, 10, 14, 18, 20]
    assert history.epoch == pytest.approx([0.4, 0.8, 1.0, 1.4, 1.8, 2.0])
    assert history.metrics["n"] == [1, 2, 3, 4, 5, 6]
    stopped = fit(model, copy_batches(10, batch_size=4), paper_adam(model.parameters()), epochs=3, eval_every=3,
                  eval_fn=lambda m: {"x": 1.0}, stop_when=lambda m: True, progress=False)  # fmt: skip
    assert stopped.step == [3]


def test_trim_padding_cuts_all_pad_columns_only():
    from course_lib.train import TrimPadding

    src = torch.tensor([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]])
    tgt = torch.tensor([[1, 3], [1, 4]])
    (got,) = list(TrimPadding([(src, tgt, tgt)], pad_id=0))
    assert got[0].tolist() == [[5, 6], [7, 0]] and got[1] is tgt
    assert len(TrimPadding([(src, tgt, tgt)] * 3)) == 3


def test_fit_validates():
    with pytest.raises(ValueError, match="epochs"):
        fit(nn.Linear(1, 1), [], torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), epochs=0)


def test_lrate_is_finite_for_many_steps():
    assert all(math.isfinite(transformer_lrate(s, 512)) for s in (1, 10**6))

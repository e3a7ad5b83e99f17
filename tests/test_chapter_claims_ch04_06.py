"""The qualitative claims that the prose of chapters 4-6 makes about their experiments.

Each experiment is re-run here with the chapter's recipe and seeds (the chapters print the numbers;
these tests make sure the sentences around them stay true).
"""

import pytest
import torch
import torch.nn.functional as F

from course_lib.data.synthetic import IGNORE, letter_digit_task
from course_lib.toy_models import AttentionOnlyModel, ToyConfig, fit


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ chapter 4: heads specialise

T_TASK = 12


def train_task_model(n_heads, steps=400, seed=0):
    """Chapter 4's recipe, cell `train`."""
    no_self = ~torch.eye(T_TASK, dtype=torch.bool)

    def task_loss(model, batch):
        logits = model(batch.tokens, no_self).logits
        prev_loss = F.cross_entropy(logits[..., :10].reshape(-1, 10), batch.prev_target.reshape(-1))
        match_loss = F.cross_entropy(logits[..., 10:].reshape(-1, 10), batch.match_target.reshape(-1))
        return prev_loss + match_loss

    torch.manual_seed(seed)
    model = AttentionOnlyModel(ToyConfig(vocab_sizes=(16, 10), n_classes=20, d_model=32, n_heads=n_heads, max_len=T_TASK))
    data = torch.Generator().manual_seed(seed + 1)
    fit(model, (letter_digit_task(128, T_TASK, seed=data) for _ in range(steps)), task_loss, lr=3e-3)
    test = letter_digit_task(2000, T_TASK, seed=123)
    with torch.no_grad():
        out = model(test.tokens, no_self)
    has_prev = test.prev_target != IGNORE
    prev_acc = (out.logits[..., :10].argmax(-1) == test.prev_target)[has_prev].float().mean().item()
    match_acc = (out.logits[..., 10:].argmax(-1) == test.match_target).float().mean().item()
    w = out.weights[0]
    N, H, T, _ = w.shape
    t = torch.arange(1, T)
    on_prev = w[:, :, t, t - 1].mean(dim=(0, 2))
    on_match = w.gather(-1, test.partner[:, None, :, None].expand(N, H, T, 1)).mean(dim=(0, 2, 3))
    return prev_acc, match_acc, on_prev, on_match


def test_ch04_heads_specialise_and_one_head_cannot_do_both():
    prev_acc, match_acc, on_prev, on_match = train_task_model(4)
    assert prev_acc > 0.95 and match_acc > 0.95
    prev_heads = [(p >= 2 * m and p > 0.25) for p, m in zip(on_prev.tolist(), on_match.tolist())]
    match_heads = [(m >= 2 * p and m > 0.25) for p, m in zip(on_prev.tolist(), on_match.tolist())]
    assert any(prev_heads) and any(match_heads), (on_prev, on_match)
    prev_acc, match_acc, _, _ = train_task_model(1)
    assert min(prev_acc, match_acc) < 0.3, "one head of the same size should fail one of the two lookups"


# ------------------------------------------------------------------ chapter 5: learned vs sinusoidal

def train_copy_model(positional, steps=600, seed=0, train_max=16):
    """Chapter 5's recipe, cell `experiment`."""
    from course_lib.data.synthetic import copy_back_task
    from course_lib.masks import causal_mask

    mask_64 = causal_mask(64)

    def copy_loss(model, batch):
        T = batch.tokens.shape[1]
        return F.cross_entropy(model(batch.tokens, mask_64[:T, :T]).logits.reshape(-1, 10), batch.target.reshape(-1))

    torch.manual_seed(seed)
    model = AttentionOnlyModel(ToyConfig(vocab_sizes=(10,), n_classes=10, d_model=8, n_heads=1, max_len=64, positional=positional))
    data = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(4, train_max + 1, (steps,), generator=data).tolist()
    fit(model, (copy_back_task(128, n, seed=data) for n in lengths), copy_loss, lr=1e-2)
    batch = copy_back_task(1000, 32, seed=99)
    with torch.no_grad():
        pred = model(batch.tokens, mask_64[:32, :32]).logits.argmax(-1)
    return (pred == batch.target).float().mean(0)


def test_ch05_learned_fails_beyond_trained_length_sinusoidal_degrades_later():
    acc = {p: train_copy_model(p) for p in ("sinusoidal", "learned", "none")}
    in_range = {p: a[1:16].mean().item() for p, a in acc.items()}
    just_beyond = {p: a[16:20].mean().item() for p, a in acc.items()}
    assert in_range["sinusoidal"] > 0.95 and in_range["learned"] > 0.95, in_range  # comparable in range
    assert in_range["none"] < 0.6, in_range  # positions are needed
    assert just_beyond["learned"] < 0.3, just_beyond  # at chance from the first unseen position
    assert just_beyond["sinusoidal"] > just_beyond["learned"] + 0.3, just_beyond  # keeps working a little
    assert acc["sinusoidal"][24:].mean().item() < 0.8  # ... and then degrades too ("not reliably")


# ------------------------------------------------------------------ chapter 6: the causal guarantee is exact

def test_ch06_causal_outputs_are_bit_for_bit_independent_of_the_future():
    from course_lib.data.synthetic import TINY_CORPUS, WordVocab
    from course_lib.masks import causal_mask

    vocab = WordVocab.from_sentences(TINY_CORPUS)
    torch.manual_seed(0)
    lm = AttentionOnlyModel(ToyConfig(vocab_sizes=(len(vocab),), n_classes=len(vocab), d_model=32, n_heads=2, n_layers=2, max_len=16)).eval()
    a = torch.tensor([vocab.encode("I am a cat")])
    b = torch.tensor([vocab.encode("I am a student")])
    with torch.no_grad():
        la, lb = lm(a, causal_mask(6)).logits, lm(b, causal_mask(6)).logits
        ua, ub = lm(a).logits, lm(b).logits
    assert torch.equal(la[:, :4], lb[:, :4])  # "bit-for-bit the same"
    assert not torch.allclose(la[:, 4], lb[:, 4])
    assert all(not torch.allclose(ua[:, t], ub[:, t]) for t in range(4))  # without the mask every position changes


# ------------------------------------------------------------------ chapter 4: the inline per-head loop equals course_lib

def test_ch04_per_head_loop_equals_multi_head_attention():
    """Chapter 4's `multi_head_loop` (cell `inline_vs_lib`): the formula head by head."""
    from course_lib.attention import MultiHeadAttention, scaled_dot_product_attention

    mha = MultiHeadAttention(12, 3).double().eval()
    query, memory = torch.randn(3, 5, 12, dtype=torch.float64), torch.randn(3, 7, 12, dtype=torch.float64)
    D = mha.d_head
    heads = []
    for i in range(mha.n_heads):
        rows = slice(i * D, (i + 1) * D)
        q_i = query @ mha.q_proj.weight[rows].T + mha.q_proj.bias[rows]
        k_i = memory @ mha.k_proj.weight[rows].T + mha.k_proj.bias[rows]
        v_i = memory @ mha.v_proj.weight[rows].T + mha.v_proj.bias[rows]
        heads.append(scaled_dot_product_attention(q_i, k_i, v_i).out)
    looped = mha.out_proj(torch.cat(heads, dim=-1))
    with torch.no_grad():
        torch.testing.assert_close(looped.detach(), mha(query, memory, memory).out)

"""The chapter 4-6 toy model and synthetic tasks."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.data.synthetic import (
    IGNORE,
    TINY_CORPUS,
    WordVocab,
    copy_back_task,
    letter_digit_labels,
    letter_digit_task,
)
from course_lib.masks import causal_mask
from course_lib.toy_models import AttentionOnlyModel, ToyConfig, fit


def test_letter_digit_task_structure():
    batch = letter_digit_task(50, 12, n_letters=16, seed=3)
    letters, digits = batch.tokens[..., 0], batch.tokens[..., 1]
    assert batch.tokens.shape == (50, 12, 2)
    for n in range(50):
        counts = torch.bincount(letters[n], minlength=16)
        assert set(counts[counts > 0].tolist()) == {2}, "every letter occurs exactly twice"
        for t in range(12):
            p = int(batch.partner[n, t])
            assert p != t and letters[n, p] == letters[n, t]
            assert batch.match_target[n, t] == digits[n, p]
    assert (batch.prev_target[:, 0] == IGNORE).all()
    torch.testing.assert_close(batch.prev_target[:, 1:], digits[:, :-1])
    assert letter_digit_labels(batch.tokens[0])[0] == "abcdefghijklmnop"[int(letters[0, 0])] + str(int(digits[0, 0]))
    torch.testing.assert_close(letter_digit_task(4, 8, seed=1).tokens, letter_digit_task(4, 8, seed=1).tokens)


def test_copy_back_task():
    batch = copy_back_task(5, 9, vocab_size=7, shift=2, seed=0)
    assert (batch.target[:, :2] == IGNORE).all()
    torch.testing.assert_close(batch.target[:, 2:], batch.tokens[:, :-2])
    with pytest.raises(ValueError, match="shift"):
        copy_back_task(2, 3, shift=3)


def test_word_vocab_roundtrip():
    vocab = WordVocab.from_sentences(TINY_CORPUS)
    ids = vocab.encode("I am a cat", length=8)
    assert ids[0] == vocab.BOS and ids[5] == vocab.EOS and ids[6:] == [vocab.PAD] * 2
    assert vocab.decode(ids[1:5]) == ["I", "am", "a", "cat"]
    assert vocab.batch(TINY_CORPUS).shape == (len(TINY_CORPUS), max(len(s.split()) for s in TINY_CORPUS) + 2)
    with pytest.raises(KeyError, match="zebra"):
        vocab.encode("a zebra")


@pytest.mark.parametrize("positional", ["sinusoidal", "learned", "none"])
def test_model_shapes_and_causality(positional):
    cfg = ToyConfig(vocab_sizes=(11, 5), n_classes=7, d_model=12, n_heads=3, n_layers=2, max_len=9, positional=positional)
    model = AttentionOnlyModel(cfg).eval()
    tokens = torch.stack([torch.randint(0, 11, (3, 9)), torch.randint(0, 5, (3, 9))], dim=-1)
    out = model(tokens, causal_mask(9))
    assert out.logits.shape == (3, 9, 7) and len(out.weights) == 2 and out.weights[0].shape == (3, 3, 9, 9)
    changed = tokens.clone()
    changed[:, 6:] = 0
    torch.testing.assert_close(model(changed, causal_mask(9)).logits[:, :6], out.logits[:, :6])


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ToyConfig(d_model=10, n_heads=3)
    with pytest.raises(ValueError, match="positional"):
        ToyConfig(positional="rotary")
    with pytest.raises(ValueError, match="F=2"):
        AttentionOnlyModel(ToyConfig(vocab_sizes=(3, 4)))(torch.zeros(2, 5, 3, dtype=torch.long))


def test_fit_learns_copy_back_quickly():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add contention
    try:
        _fit_copy_back()
    finally:
        torch.set_num_threads(threads)


def _fit_copy_back():
    torch.manual_seed(0)
    model = AttentionOnlyModel(ToyConfig(vocab_sizes=(6,), n_classes=6, d_model=16, n_heads=2, max_len=8))
    g = torch.Generator().manual_seed(0)
    batches = (copy_back_task(64, 8, vocab_size=6, seed=g) for _ in range(150))
    losses = fit(model, batches, lambda m, b: F.cross_entropy(m(b.tokens).logits.reshape(-1, 6), b.target.reshape(-1)), lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]

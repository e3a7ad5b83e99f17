"""course_lib.book.demos: the exported ONNX graphs (run by onnxruntime in Python) equal PyTorch.

No browser here (tests/test_book_models.py runs the same graphs in Chromium): the seq2seq's
encoder + one decoder step, looped greedily exactly as the page's JavaScript does, against
``Seq2Seq.greedy_decode``; the BERT MLM graph against ``fill_mask`` and the model's attentions.
Each comparison also runs on a model with one weight changed, and must fail there.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from course_lib.bert import BertConfig, BertForPreTraining, fill_mask
from course_lib.book import demos as bd
from course_lib.data.dates import load_date_task
from course_lib.demo_inputs import EMPTY_DATE, NOT_TRAINED, NOT_TRAINED_SENTENCE
from course_lib.seq2seq import Seq2Seq, Seq2SeqConfig
from course_lib.tokenization import load_tokenizer

ATOL = 1e-4

DATES = [
    "Sat, 4 Jul 1976", "4th of july 1976", "Jan 1 2001", "12.3.45", "1994/09/27", "27-SEP-94",
    "TUESDAY, SEPTEMBER 27, 1994", "september 27, 1994", "9/27/94", "the 1st of january 2000",
    "7", "x", "  padded  ", "19760704", ",,,", "July 4, 1976 ☀", "éàü", "😀" * 100, "1976 " * 40,
    "Wed, 31 Dec 2099", "a/b/c", "0",
]
SENTENCES = [
    "the rain falls [MASK] .", "the [MASK] barks .", "paris is a city in [MASK] .", "[MASK]", "[MASK] [MASK] [MASK]",
    "The Rain Falls [MASK] .", "café [MASK] naïve", "雨 が [MASK] 降る", "paris,[MASK]!", "the zebra [MASK] .",
    "[MASK][MASK]", "[UNK] [CLS] [MASK] [SEP]", "x" * 120 + " [MASK]", "tom has a red kite . he gives the kite to mia . now mia has the red [MASK] .",
    "after monday comes [MASK] .", "two plus three is [MASK] .", "a [MASK] b [MASK] c", "[MASK] .", "(the) [MASK]-sky", "'[MASK]'",
]


@pytest.fixture(scope="module")
def task():
    return load_date_task(n_train=300, n_test=50, seed=0)


@pytest.fixture(scope="module")
def translator(task):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), d_embed=16, d_hidden=32))
    with torch.no_grad():  # larger weights than at initialisation: decisive argmaxes, sharper attention
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def bert(tokenizer):
    torch.manual_seed(0)
    return BertForPreTraining(BertConfig.tiny(tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=4, d_ff=64, init_std=0.3)).eval()


def onnx_greedy(folder, ids: list[int]):
    """The page's loop (course_lib/book/web/demos.js, dates.run) with onnxruntime: steps and weights."""
    meta = json.loads((folder / "meta.json").read_text())
    encoder = ort.InferenceSession(str(folder / "encoder.onnx"))
    step = ort.InferenceSession(str(folder / "decoder_step.onnx"))
    hs, h_last = encoder.run(None, {"src": np.array([ids], dtype=np.int64)})
    state, token, steps, weights = h_last[None], meta["bos_id"], [], []
    for _ in range(meta["max_steps"]):
        logits, state, w = step.run(None, {"token": np.array([[token]], dtype=np.int64), "state": state, "hs": hs})
        token = int(logits[0].argmax())
        steps.append(token)
        weights.append(w[0])
        if token == meta["eos_id"]:
            break
    return steps, np.stack(weights)


def torch_greedy(model, task, ids: list[int]):
    out = model.greedy_decode(torch.tensor([ids]), max_len=task.max_tgt_len)
    return out.tokens[0].tolist(), out.weights[0].numpy()


def max_date_diff(folder, model, task, texts) -> float:
    worst = 0.0
    for text in texts:
        typed = bd.prepare_date_input(text, task.src_vocab, bd.date_max_chars(task))
        steps, weights = onnx_greedy(folder, typed.ids)
        ref_steps, ref_weights = torch_greedy(model, task, typed.ids)
        if steps != ref_steps:
            return float("inf")
        worst = max(worst, float(np.abs(weights - ref_weights).max()))
    return worst


def test_date_translator_onnx_equals_pytorch(translator, task, tmp_path):
    folder = bd.export_date_translator(translator, task, tmp_path / "dates")
    texts = [t for t in DATES if t.strip()]
    assert len(texts) >= 20
    worst = max_date_diff(folder, translator, task, texts)
    assert worst <= ATOL, f"onnxruntime vs PyTorch: max |attention weight difference| {worst:.2e} (or a different decoded string)"
    # the model rebuilt from model.pt (what the browser tests use) is the exported one
    reloaded = bd.load_date_translator(folder)
    for a, b in zip(reloaded.state_dict().values(), translator.state_dict().values()):
        assert torch.equal(a, b)


def test_date_comparison_fails_on_a_changed_model(translator, task, tmp_path):
    folder = bd.export_date_translator(translator, task, tmp_path / "dates")
    changed = bd.load_date_translator(folder)
    with torch.no_grad():
        changed.decoder.combine.weight[0, 0] += 0.5  # one weight
        changed.encoder.embed.weight[10:20] += 0.05
    assert max_date_diff(folder, changed, task, DATES[:10]) > ATOL


def test_date_export_refuses_a_model_without_dot_attention(task, tmp_path):
    plain = Seq2Seq(Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), attention=None))
    with pytest.raises(ValueError, match="dot attention"):
        bd.export_date_translator(plain, task, tmp_path / "plain")


def test_prepare_date_input_rules(task):
    S = bd.date_max_chars(task)
    assert bd.prepare_date_input("   ", task.src_vocab, S) == ("", [], [EMPTY_DATE])
    cut = bd.prepare_date_input("😀" * (S + 5), task.src_vocab, S)
    assert len(cut.text) == S and cut.ids == [task.src_vocab.unk_id] * S
    assert cut.messages[0] == f"too long: {S + 5} characters; the model reads the first {S}"
    assert cut.messages[1] == NOT_TRAINED and "😀" in cut.messages[2]  # out of distribution: said why (course_lib.ood)
    ok = bd.prepare_date_input(" 4 jul 1976\t", task.src_vocab, S)  # "d mon yyyy", one of the training formats
    assert ok == ("4 jul 1976", task.src_vocab.encode("4 jul 1976"), [])
    with pytest.raises(TypeError, match="str"):
        bd.prepare_date_input(None, task.src_vocab, S)


def onnx_fill_mask(folder, ids):
    session = ort.InferenceSession(str(folder / "bert_mlm.onnx"))
    return session.run(None, {"input_ids": np.array([ids], dtype=np.int64)})


def fill_mask_diffs(folder, model, tokenizer, sentences):
    """(max |prob diff| over the top 5 of every [MASK], max |attention diff|, number of token lists that differ)."""
    prob_diff = attention_diff = 0.0
    mismatched = 0
    for text in sentences:
        checked = bd.fill_mask_input(text, tokenizer, model.config.max_len)
        assert checked.error is None, (text, checked.error)
        probs, attentions = onnx_fill_mask(folder, checked.ids)
        reference = fill_mask(model, tokenizer, text, k=5)
        masks = [t for t, i in enumerate(checked.ids) if i == tokenizer.mask_id]
        for t, ref in zip(masks, reference):
            order = np.argsort(-probs[0, t], kind="stable")[:5]
            tokens = tokenizer.convert_ids_to_tokens(order.tolist())
            mismatched += tokens != [tok for tok, _ in ref]
            prob_diff = max(prob_diff, max(abs(float(probs[0, t, i]) - p) for i, (_, p) in zip(order, ref)))
        with torch.no_grad():
            out = model(torch.tensor([checked.ids]), need_weights=True)
        ref_att = torch.stack(out.attentions, dim=1).numpy()  # (1, L, H, T, T)
        attention_diff = max(attention_diff, float(np.abs(attentions - ref_att).max()))
    return prob_diff, attention_diff, mismatched


def test_fill_mask_onnx_equals_pytorch(bert, tokenizer, tmp_path):
    folder = bd.export_fill_mask(bert, tokenizer, tmp_path / "fill_mask")
    assert len(SENTENCES) >= 20
    prob_diff, attention_diff, mismatched = fill_mask_diffs(folder, bert, tokenizer, SENTENCES)
    assert mismatched == 0
    assert prob_diff <= ATOL and attention_diff <= ATOL, (prob_diff, attention_diff)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["vocab"] == tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
    assert bd.load_fill_mask(folder).state_dict().keys() == bert.state_dict().keys()


def test_fill_mask_comparison_fails_on_a_changed_model(bert, tokenizer, tmp_path):
    folder = bd.export_fill_mask(bert, tokenizer, tmp_path / "fill_mask")
    changed = bd.load_fill_mask(folder)
    with torch.no_grad():
        changed.bert.embeddings.position_embeddings.weight[1] += 0.5 * torch.randn(changed.config.d_model)  # not a constant: LayerNorm removes those
    prob_diff, attention_diff, _ = fill_mask_diffs(folder, changed, tokenizer, SENTENCES[:5])
    assert prob_diff > ATOL and attention_diff > ATOL


def test_fill_mask_input_rules(tokenizer):
    assert bd.fill_mask_input("   ", tokenizer, 128).error.startswith("type a sentence with [MASK]")
    assert bd.fill_mask_input("the [mask] barks", tokenizer, 128).error.startswith("no [MASK] in the sentence")
    long = bd.fill_mask_input("a " * 130 + "[MASK]", tokenizer, 128)
    assert long.error == "too long: 133 tokens with [CLS] and [SEP]; the model has positions for 128"
    ok = bd.fill_mask_input("the zebra [MASK] .", tokenizer, 128)
    assert ok.error is None and ok.ids[0] == tokenizer.cls_id and ok.ids[-1] == tokenizer.sep_id
    unk = bd.fill_mask_input("雨 [MASK]", tokenizer, 128)
    assert unk.notes == [NOT_TRAINED_SENTENCE, "1 word(s) outside the vocabulary read as [UNK]"]

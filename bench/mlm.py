"""Masked-LM pretraining: course_lib's BERT vs transformers.BertForMaskedLM, in one run.

    python bench/mlm.py [--model tiny] [--batch-size 64] [--repeats 10] [--steps 200]

1. Throughput: one optimizer step (forward with labels, backward, AdamW) on the same
   batch, same configuration and same starting weights (copied through the key map);
   median tokens/s of each and the ratio course_lib / transformers (1.0 is parity,
   above 1 course_lib is faster). Timed in alternation so that load from other
   processes hits both alike.
2. Accuracy after a fixed budget: both models, from the same weights, train
   ``--steps`` steps with the same masked-LM batches (no NSP), then report masked-token
   accuracy on held-out stories next to the unigram baseline.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

from course_lib.bert import IGNORE_INDEX, BertForMaskedLM, load_hf_state_dict, to_hf_config  # noqa: E402
from course_lib.data.corpus import make_corpus  # noqa: E402
from course_lib.pretrain import PretrainArgs, PretrainingData, lr_at, make_optimizer, unigram_baseline  # noqa: E402
from course_lib.tokenization import load_tokenizer  # noqa: E402

from _timing import median_times  # noqa: E402  (bench/ is on sys.path when run as python bench/x.py)


def mlm_step(model, optimizer, batch, hf: bool) -> None:
    if hf:
        loss = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, token_type_ids=batch.segment_ids, labels=batch.mlm_labels).loss
    else:
        loss = model(batch.input_ids, batch.segment_ids, batch.attention_mask, labels=batch.mlm_labels).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@torch.no_grad()
def accuracy(model, data: PretrainingData, hf: bool, n_batches: int = 8, seed: int = 12345) -> float:
    model.eval()
    correct = total = 0
    for i in range(n_batches):
        b = data.batch(i, 64, nsp=False, seed=seed)
        if hf:
            logits = model(input_ids=b.input_ids, attention_mask=b.attention_mask, token_type_ids=b.segment_ids).logits
        else:
            logits = model(b.input_ids, b.segment_ids, b.attention_mask).logits
        chosen = b.mlm_labels != IGNORE_INDEX
        correct += int((logits.argmax(-1)[chosen] == b.mlm_labels[chosen]).sum())
        total += int(chosen.sum())
    model.train()
    return correct / total


def pair(config, attn: str):
    torch.manual_seed(0)
    ours = BertForMaskedLM(config)
    hf = transformers.BertForMaskedLM(to_hf_config(config, attn_implementation=attn))
    load_hf_state_dict(ours, hf.state_dict())
    return ours.train(), hf.train()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--steps", type=int, default=200, help="training budget for the accuracy comparison")
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args()
    tokenizer = load_tokenizer()
    data = PretrainingData(make_corpus(4000), tokenizer, max_len=64)
    heldout = PretrainingData(make_corpus(500, "heldout"), tokenizer, max_len=64)
    config = PretrainArgs(model=args.model, dropout=0.1).bert_config(tokenizer.vocab_size)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads; "
          f"L={config.n_layers} H={config.d_model} A={config.n_heads} V={config.vocab_size}, batch {args.batch_size}")  # fmt: skip

    # 1. throughput
    batch = data.batch(1, args.batch_size, nsp=False)
    n_tokens = int(batch.attention_mask.sum())
    print(f"\n{'attention in transformers':<28}{'course_lib tok/s':>18}{'transformers tok/s':>20}{'ratio':>8}")
    for attn in ("sdpa", "eager"):
        ours, hf = pair(config, attn)
        opt_ours, opt_hf = make_optimizer(ours, 1e-4, 0.01), make_optimizer(hf, 1e-4, 0.01)
        t_ours, t_hf = median_times([lambda: mlm_step(ours, opt_ours, batch, hf=False),
                                     lambda: mlm_step(hf, opt_hf, batch, hf=True)], args.repeats)  # fmt: skip
        tps_ours, tps_hf = n_tokens / t_ours, n_tokens / t_hf
        print(f"{attn:<28}{tps_ours:>18,.0f}{tps_hf:>20,.0f}{tps_ours / tps_hf:>8.2f}")

    # 2. accuracy after a fixed budget, same weights, same batches
    ours, hf = pair(config, "sdpa")
    opts = {False: make_optimizer(ours, args.lr, 0.01), True: make_optimizer(hf, args.lr, 0.01)}
    warmup = max(1, args.steps // 10)
    for model, is_hf in ((ours, False), (hf, True)):
        torch.manual_seed(1)  # the same dropout stream for both
        start = time.perf_counter()
        for step in range(1, args.steps + 1):
            for g in opts[is_hf].param_groups:
                g["lr"] = lr_at(step, args.lr, warmup, args.steps)
            mlm_step(model, opts[is_hf], data.batch(step, args.batch_size, nsp=False), hf=is_hf)
        model.seconds = time.perf_counter() - start
    token, base = unigram_baseline(data, heldout)
    print(f"\nheld-out masked-token accuracy after {args.steps} steps of batch {args.batch_size} (lr {args.lr}):")
    print(f"  course_lib   {accuracy(ours, heldout, False):.3f}   ({ours.seconds:.0f} s)")
    print(f"  transformers {accuracy(hf, heldout, True):.3f}   ({hf.seconds:.0f} s)")
    print(f"  unigram baseline (always {token!r}) {base:.3f}")


if __name__ == "__main__":
    main()

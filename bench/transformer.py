"""course_lib's Transformer vs torch.nn.Transformer (training throughput), and vs chapter 1's RNN (time to 99%).

    python bench/transformer.py [--repeats 15] [--threads 1] [--skip-dates]

1. Throughput: training steps (forward, label-smoothed loss, backward, Adam step) of
   ``course_lib.transformer.Transformer`` and of ``torch.nn.Transformer`` wrapped with the
   *same* embeddings, positions and output layer, with the same configuration and
   batches, timed in alternation (so other processes' load hits both alike). Reported
   in target tokens per second and as a ratio (course_lib / torch; 1.0 is parity,
   higher is faster). Both run in training mode with dropout 0.1, so torch takes its
   regular (not inference fast-path) kernels, like ours.
2. Date task: wall time of training to 99% exact match on 1,000 test dates, for the
   chapter's Transformer recipe (checked every 50 steps) and for chapter 1's RNN with
   attention (its own recipe, checked 4 times per epoch, every 44 steps), and the ratio.
   Evaluation time is excluded; each run stops at the first checkpoint reaching 99%.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from course_lib.train import TrimPadding, fit, label_smoothed_cross_entropy, paper_adam, seed_everything, transformer_lr_schedule
from course_lib.transformer import Transformer, TransformerConfig, greedy_decode

from _timing import median_times  # bench/ is on sys.path when run as python bench/x.py


class TorchTransformer(nn.Module):
    """torch.nn.Transformer inside course_lib's embeddings, positions and output layer."""

    def __init__(self, ours: Transformer):
        super().__init__()
        c = ours.config
        self.ours = ours  # only its embeddings, positions and out_proj are used
        self.core = nn.Transformer(c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff, c.dropout,
                                   batch_first=True, norm_first=c.norm_first)  # fmt: skip
        self.core.encoder.norm = self.core.decoder.norm = None  # post-LN: no extra final norms, like ours

    def forward(self, src, tgt_in):
        o, pad = self.ours, self.ours.config.pad_id
        T = tgt_in.shape[1]
        hidden = self.core(
            o.embed(src, o.src_embed), o.embed(tgt_in, o.tgt_embed),
            tgt_mask=nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.bool),  # True = ignore
            src_key_padding_mask=src == pad, tgt_key_padding_mask=tgt_in == pad, memory_key_padding_mask=src == pad,
        )  # fmt: skip
        return o.out_proj(hidden)


def train_step(model: nn.Module, batch, optimizer) -> callable:
    src, tgt_in, tgt_out = batch

    def step():
        loss = label_smoothed_cross_entropy(model(src, tgt_in), tgt_out, 0.1, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def throughput(repeats: int) -> None:
    print(f"\n1. training throughput, float32, dropout 0.1, median of {repeats} steps each, in alternation")
    print(f"{'configuration':<48}{'course_lib tok/s':>17}{'torch tok/s':>13}{'ratio':>7}")
    g = torch.Generator().manual_seed(0)
    for d_model, n_heads, d_ff, layers, B, S, T in [(64, 4, 128, 2, 128, 29, 11), (256, 8, 1024, 3, 32, 64, 64), (512, 8, 2048, 2, 16, 64, 64)]:
        V = 1000
        cfg = TransformerConfig(src_vocab_size=V, tgt_vocab_size=V, d_model=d_model, n_heads=n_heads, d_ff=d_ff,
                                n_encoder_layers=layers, n_decoder_layers=layers, dropout=0.1, max_len=128)  # fmt: skip
        torch.manual_seed(0)
        ours = Transformer(cfg).train()
        theirs = TorchTransformer(Transformer(cfg)).train()
        src = torch.randint(4, V, (B, S), generator=g)
        src[: B // 2, S * 2 // 3 :] = 0  # half the batch padded
        tgt = torch.randint(4, V, (B, T + 1), generator=g)
        tgt[:, 0] = 1
        batch = (src, tgt[:, :-1], tgt[:, 1:])
        t_ours, t_theirs = median_times([train_step(ours, batch, paper_adam(ours.parameters(), lr=1e-4)),
                                         train_step(theirs, batch, paper_adam(theirs.parameters(), lr=1e-4))], repeats)  # fmt: skip
        tokens = B * T
        name = f"d={d_model} h={n_heads} ff={d_ff} N={layers} B={B} S={S} T={T}"
        print(f"{name:<48}{tokens / t_ours:>17,.0f}{tokens / t_theirs:>13,.0f}{t_theirs / t_ours:>7.2f}")


def dates() -> None:
    from course_lib.data.dates import exact_match, load_date_task
    from course_lib.seq2seq import Seq2Seq, Seq2SeqConfig, train_seq2seq

    print("\n2. date task: seconds of training to 99% exact match on 1,000 test dates (checked every 50 steps / 4 times per epoch)")
    task = load_date_task(n_train=45_000, n_test=5_000, seed=0)
    tgt_vocab = task.tgt_vocab
    n_eval = 1000

    def eval_fn(m):
        out = greedy_decode(m, task.test.src[:n_eval], tgt_vocab.bos_id, tgt_vocab.eos_id, task.max_tgt_len)
        return {"exact_match": exact_match(tgt_vocab.decode_batch(out), task.test.targets[:n_eval])}

    # the chapter's recipe (chapters/07_transformer.ipynb): one pass in batches of 64, warm-up 200, x1.5, cool-down 300
    seed_everything(0)
    cfg = TransformerConfig(src_vocab_size=len(task.src_vocab), tgt_vocab_size=len(tgt_vocab), d_model=64, n_heads=4, d_ff=128,
                            n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=64, pad_id=0)  # fmt: skip
    model = Transformer(cfg)
    loader = TrimPadding(task.loader("train", 64, seed=0))
    optimizer = paper_adam(model.parameters())
    scheduler = transformer_lr_schedule(optimizer, cfg.d_model, 200, 1.5, total_steps=len(loader), cooldown_steps=300)
    history = fit(model, loader, optimizer, 1, scheduler, label_smoothing=0.1, eval_fn=eval_fn, eval_every=50,
                  stop_when=lambda m: m["exact_match"] >= 0.99, desc="Transformer")  # fmt: skip
    t_transformer = next((t for t, a in zip(history.train_time, history.metrics["exact_match"]) if a >= 0.99), math.nan)

    # chapter 1's RNN with attention, chapter 1's recipe
    torch.manual_seed(0)
    rnn = Seq2Seq(Seq2SeqConfig(len(task.src_vocab), len(tgt_vocab), d_embed=32, d_hidden=64, attention="dot"))
    curve = train_seq2seq(rnn, task, epochs=2, batch_size=256, lr=1e-2, checkpoints_per_epoch=4, n_eval=n_eval, seed=0,
                          desc="RNN + attention", stop_at=0.99)  # fmt: skip
    hit = curve.first_reaching(0.99)
    t_rnn = hit[1] if hit else math.nan
    print(f"  Transformer      : {t_transformer:6.1f} s ({history.step[-1]} steps, best {max(history.metrics['exact_match']):.3f})")
    print(f"  RNN + attention  : {t_rnn:6.1f} s ({curve.epoch[-1]:.2f} epochs, best {max(curve.accuracy):.3f}; nan = not reached within 2 epochs)")
    print(f"  ratio Transformer / RNN time: {t_transformer / t_rnn:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the chapter uses 1)")
    parser.add_argument("--skip-dates", action="store_true", help="only the throughput comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mha.set_fastpath_enabled(False)  # only used in eval mode anyway; keep both on the same maths
    print(f"bench/transformer.py: torch {torch.__version__}, {args.threads} thread(s)")
    throughput(args.repeats)
    if not args.skip_dates:
        dates()


if __name__ == "__main__":
    main()

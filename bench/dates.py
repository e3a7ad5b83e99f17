"""How fast does chapter 1's attention model learn the date task? Wall time and epochs to 99% and 99.9%.

    python bench/dates.py [--epochs 2 4] [--threads 1]

For each epoch budget, trains the chapter's model (GRU encoder, Luong dot-product
attention decoder) with the chapter's settings and a one-cycle learning rate spread
over that budget, decodes the WHOLE test split greedily four times per epoch, and
reports the first checkpoint reaching 99% and 99.9% exact match: its epoch and the
training seconds so far (evaluation excluded). A budget is a hard cap: a target not
reached within it is reported as such, so the script always terminates.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from course_lib.data.dates import load_date_task
from course_lib.seq2seq import Seq2Seq, Seq2SeqConfig, train_seq2seq

# The chapter's settings (chapters/01_seq2seq_attention.ipynb).
SETTINGS = dict(d_embed=32, d_hidden=64, attention="dot", batch_size=256, lr=1e-2, seed=0)
TARGETS = (0.99, 0.999)


def run(epochs: int) -> None:
    task = load_date_task(seed=0)
    torch.manual_seed(SETTINGS["seed"])
    config = Seq2SeqConfig(len(task.src_vocab), len(task.tgt_vocab), SETTINGS["d_embed"], SETTINGS["d_hidden"], SETTINGS["attention"])
    model = Seq2Seq(config)
    start, cpu_start = time.perf_counter(), time.process_time()
    curve = train_seq2seq(
        model, task, epochs=epochs, batch_size=SETTINGS["batch_size"], lr=SETTINGS["lr"],
        checkpoints_per_epoch=4, n_eval=None, seed=SETTINGS["seed"], desc=f"budget {epochs} epochs",
    )  # fmt: skip
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"\nbudget {epochs} epochs (one-cycle lr over the budget), {len(task.train)} train / {len(task.test)} test examples")
    print(f"  checkpoints (epoch: exact match on all {curve.n_eval} test dates): "
          + ", ".join(f"{e:.2f}: {a:.4f}" for e, a in zip(curve.epoch, curve.accuracy)))  # fmt: skip
    for target in TARGETS:
        hit = curve.first_reaching(target)
        if hit is None:
            print(f"  {target:.1%}: not reached within {epochs} epochs (best {max(curve.accuracy):.4f})")
        else:
            print(f"  {target:.1%}: reached at epoch {hit[0]:.2f} after {hit[1]:.1f} s of training")
    print(f"  total wall time {wall:.1f} s (training {curve.train_seconds[-1]:.1f} s, the rest is decoding the test split)")
    print(f"  process CPU time {cpu:.1f} s (with one thread, close to the wall time on an idle machine; "
          f"a much larger wall time means the machine was busy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 4], help="epoch budgets to run (2 is the chapter's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the chapter uses 1: the matrices are tiny)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"bench/dates.py: torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in SETTINGS.items()) + ", one-cycle lr (15% warm-up), teacher forcing")
    for epochs in args.epochs:
        run(epochs)


if __name__ == "__main__":
    main()

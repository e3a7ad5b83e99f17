"""Pretrain a BERT on the generated corpus: masked LM + next-sentence prediction (chapter 8).

One process:

    python -m course_lib.pretrain --model tiny --steps 600 --batch-size 64 --out-dir runs/bert

Several processes (PyTorch's DistributedDataParallel; gloo works on CPUs):

    torchrun --standalone --nproc_per_node=2 -m course_lib.pretrain --steps 600 --batch-size 64 --out-dir runs/bert

Continue a run that stopped: add ``--resume`` (same ``--out-dir``).

How the work is split. Every step has one *global batch* of ``--batch-size``
examples, a pure function of ``(--seed, step)``: each process builds it and keeps
its own slice of ``batch_size / world_size`` rows. Each process scales its loss
so that DDP's average of the gradients is the gradient of the global batch's
mean loss. So N processes take the same steps as one (up to float rounding), and
resuming at step s continues exactly as if the run had not stopped.

A checkpoint (``<out-dir>/checkpoint.pt``) holds the model, the optimizer (Adam's
moments), the step, every process's random-number state (dropout), the
arguments and the loss history.

Dimension legend: B batch, T sequence length, V vocabulary size.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from course_lib.bert import (
    IGNORE_INDEX,
    BertConfig,
    BertForPreTraining,
    make_nsp_pair,
    mask_tokens,
    special_tokens_mask,
)
from course_lib.data.corpus import Corpus, make_corpus
from course_lib.tokenization import Tokenizer, load_tokenizer
from course_lib.train import tqdm  # plain text in the built book

__all__ = [
    "MODEL_SIZES",
    "PretrainArgs",
    "Batch",
    "PretrainingData",
    "lr_at",
    "PretrainResult",
    "pretrain",
    "masked_accuracy",
    "unigram_baseline",
    "load_checkpoint",
    "main",
]

# Named sizes: (n_layers, d_model, n_heads, d_ff). "tiny" is the chapter's.
MODEL_SIZES = {
    "micro": (2, 32, 4, 64),  # tests: seconds
    "tiny": (2, 128, 4, 512),  # the chapter: minutes on 2 cores
    "mini": (4, 256, 4, 1024),  # a bigger CPU run
    "small": (4, 512, 8, 2048),
    "base": (12, 768, 12, 3072),  # BERT-base
    "large": (24, 1024, 16, 4096),  # BERT-large
}


@dataclass(frozen=True)
class PretrainArgs:
    """Everything a run depends on (the command line's options)."""

    out_dir: str | None = None  # where checkpoint.pt and vocab.txt go (None: keep nothing on disk)
    n_docs: int = 4000  # corpus size: generated stories (~11 sentences, ~70 tokens each)
    model: str = "tiny"  # a key of MODEL_SIZES
    n_layers: int | None = None  # override the size's L
    d_model: int | None = None  # override the size's H
    n_heads: int | None = None  # override the size's A
    d_ff: int | None = None  # override the size's FFN width
    max_len: int = 64  # tokens per example, [CLS] A [SEP] B [SEP] included
    dropout: float = 0.1
    steps: int = 600  # optimizer steps
    batch_size: int = 64  # global batch (all processes together)
    lr: float = 1e-3  # peak learning rate (BERT-base used 1e-4; tiny models like more)
    warmup: int = 60  # steps of linear warm-up, then linear decay to 0 (as in BERT)
    weight_decay: float = 0.01
    nsp: bool = True  # train next-sentence prediction as well as the masked LM
    seed: int = 0
    save_every: int = 0  # also checkpoint every N steps (0: only at the end)
    log_every: int = 10  # record the loss every N steps
    resume: bool = False

    def __post_init__(self):
        if self.model not in MODEL_SIZES:
            raise ValueError(f"model must be one of {list(MODEL_SIZES)}, got {self.model!r}")
        for name in ("n_docs", "steps", "batch_size", "max_len", "warmup", "log_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.max_len < 8:
            raise ValueError(f"max_len must leave room for two segments and 3 special tokens, got {self.max_len}")

    def bert_config(self, vocab_size: int, pad_id: int = 0) -> BertConfig:
        L, C, A, F_ = MODEL_SIZES[self.model]
        return BertConfig(
            vocab_size=vocab_size,
            n_layers=self.n_layers or L,
            d_model=self.d_model or C,
            n_heads=self.n_heads or A,
            d_ff=self.d_ff or F_,
            max_len=max(self.max_len, 128),  # room to try longer inputs later
            dropout=self.dropout,
            pad_id=pad_id,
        )


# --------------------------------------------------------------------------- data


class Batch(NamedTuple):
    """One batch of pretraining examples ``[CLS] A [SEP] B [SEP] [PAD] ...``.

    Shapes: input_ids, segment_ids, attention_mask, mlm_labels (B, T); nsp_labels (B,)
    """

    input_ids: torch.Tensor  # after masking: what the model reads
    segment_ids: torch.Tensor  # 0 for [CLS] A [SEP], 1 for B [SEP] (and padding)
    attention_mask: torch.Tensor  # 1 on real tokens, 0 on padding
    mlm_labels: torch.Tensor  # the original token where chosen, -100 elsewhere
    nsp_labels: torch.Tensor  # 0 IsNext, 1 NotNext

    def slice(self, start: int, stop: int) -> "Batch":
        return Batch(*(x[start:stop] for x in self))


class PretrainingData:
    """Tokenized documents and a deterministic batch for every step.

    ``batch(step, B)`` depends only on ``(seed, step, B)``: the same on every
    process, after a restart, and in every run with the same arguments.
    """

    def __init__(self, corpus: Corpus, tokenizer: Tokenizer, max_len: int = 64, seed: int = 0):
        self.tokenizer, self.max_len, self.seed = tokenizer, max_len, seed
        sentences = list(corpus.sentences())
        ids = tokenizer.encode_batch(sentences)
        self.documents: list[list[list[int]]] = []
        i = 0
        for doc in corpus.documents:
            self.documents.append(ids[i : i + len(doc)])
            i += len(doc)

    def n_tokens(self) -> int:
        return sum(len(s) for doc in self.documents for s in doc)

    def batch(self, step: int, batch_size: int, nsp: bool = True, seed: int | None = None, p: float = 0.15) -> Batch:
        """The global batch of ``step``: NSP pairs, framed, padded, then a share ``p`` masked.

        ``seed`` replaces the data seed, e.g. to draw evaluation batches from a stream
        that training never uses. ``nsp=False`` glues A and B into one segment;
        ``p=0`` leaves every token in place (for a left-to-right model).
        """
        seed = self.seed if seed is None else seed
        rng = random.Random(f"batch-{seed}-{step}")
        pairs = [make_nsp_pair(self.documents, rng, self.max_len - 3) for _ in range(batch_size)]
        if not nsp:  # a single segment per example: A and B glued together, no NSP label needed
            pairs = [pair._replace(a=pair.a + pair.b, b=[], label=0) for pair in pairs]
        encoded = [self.tokenizer.build_pair(pair.a, pair.b if nsp else None) for pair in pairs]
        T = max(len(e.ids) for e in encoded)
        pad = self.tokenizer.pad_id
        input_ids = torch.full((batch_size, T), pad, dtype=torch.long)
        segment_ids = torch.zeros(batch_size, T, dtype=torch.long)
        for row, e in enumerate(encoded):
            input_ids[row, : len(e.ids)] = torch.tensor(e.ids)
            segment_ids[row, : len(e.ids)] = torch.tensor(e.segment_ids)
        attention_mask = (input_ids != pad).long()
        generator = torch.Generator().manual_seed(1_000_003 * seed + step)
        special = special_tokens_mask(input_ids, self.tokenizer.special_ids)
        masked = mask_tokens(input_ids, special, self.tokenizer.mask_id, self.tokenizer.vocab_size, p=p, generator=generator)
        nsp_labels = torch.tensor([pair.label for pair in pairs], dtype=torch.long)
        return Batch(masked.inputs, segment_ids, attention_mask, masked.labels, nsp_labels)


# --------------------------------------------------------------------------- optimisation


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """BERT's schedule: linear warm-up to ``peak`` over ``warmup`` steps, then linear decay to 0 at ``total``.

    ``step`` counts from 1 (the first update).
    """
    if step <= warmup:
        return peak * step / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as in BERT: no weight decay on biases and LayerNorm parameters."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6)


def _shard_loss(model: nn.Module, shard: Batch, n_labels_global: int, batch_global: int, world: int, nsp: bool):
    """This process's share of the global-batch loss, scaled so that DDP's *average* of the
    gradients equals the gradient of the global mean (tokens and examples weigh the same
    wherever they landed)."""
    labelled = shard.mlm_labels != IGNORE_INDEX  # (B, T): only these positions are scored
    out = model(shard.input_ids, shard.segment_ids, shard.attention_mask, mlm_positions=labelled)
    mlm_sum = F.cross_entropy(out.mlm_logits, shard.mlm_labels[labelled], reduction="sum")  # (N, V) vs (N,)
    loss = mlm_sum * world / max(1, n_labels_global)
    nsp_sum = F.cross_entropy(out.nsp_logits, shard.nsp_labels, reduction="sum")
    if nsp:
        loss = loss + nsp_sum * world / batch_global
    else:
        loss = loss + 0.0 * nsp_sum  # keeps the NSP head in the graph (DDP expects every parameter to get a gradient)
    return loss, mlm_sum.detach(), nsp_sum.detach()


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def masked_accuracy(model: nn.Module, data: PretrainingData, n_batches: int = 8, batch_size: int = 64, seed: int = 12345) -> float:
    """Share of the masked-LM positions (chosen 15%, 80/10/10 corrupted) whose original token
    is the model's top prediction, on batches drawn with ``seed`` (fixed: comparable across models)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for i in range(n_batches):
        b = _eval_batch(data, i, batch_size, seed)
        logits = _mlm_logits(model, b)
        chosen = b.mlm_labels != IGNORE_INDEX
        correct += int((logits.argmax(-1)[chosen] == b.mlm_labels[chosen]).sum())
        total += int(chosen.sum())
    model.train(was_training)
    return correct / max(1, total)


def _eval_batch(data: PretrainingData, i: int, batch_size: int, seed: int) -> Batch:
    return data.batch(i, batch_size, seed=seed)  # a separate stream of batches, never used for training


def _mlm_logits(model: nn.Module, b: Batch) -> torch.Tensor:
    out = model(b.input_ids, b.segment_ids, b.attention_mask)
    return out.mlm_logits if hasattr(out, "mlm_logits") else out.logits


def unigram_baseline(train: PretrainingData, heldout: PretrainingData, n_batches: int = 8, batch_size: int = 64, seed: int = 12345) -> tuple[str, float]:
    """Always guess the most frequent (non-special) training token: its accuracy on the same
    held-out masked positions as ``masked_accuracy``. Returns (token, accuracy)."""
    counts = torch.zeros(train.tokenizer.vocab_size, dtype=torch.long)
    for doc in train.documents:
        for sentence in doc:
            counts += torch.bincount(torch.tensor(sentence, dtype=torch.long), minlength=len(counts))
    counts[list(train.tokenizer.special_ids)] = 0
    best = int(counts.argmax())
    correct = total = 0
    for i in range(n_batches):
        labels = _eval_batch(heldout, i, batch_size, seed).mlm_labels
        chosen = labels != IGNORE_INDEX
        correct += int((labels[chosen] == best).sum())
        total += int(chosen.sum())
    return train.tokenizer.convert_ids_to_tokens([best])[0], correct / max(1, total)


# --------------------------------------------------------------------------- the loop


@dataclass
class PretrainResult:
    model: BertForPreTraining
    tokenizer: Tokenizer
    history: list[dict]  # one dict per log step: step, loss, mlm_loss, nsp_loss, lr
    seconds: float  # wall time of the steps run in this call
    tokens_seen: int  # real (non-padding) tokens processed in this call, all processes together
    targets_seen: int = 0  # masked-LM targets (chosen positions) scored in this call, all processes


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the gloo process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pretrain(
    args: PretrainArgs,
    data: PretrainingData | None = None,
    progress: bool = True,
    on_log: Callable[[dict], None] | None = None,
) -> PretrainResult:
    """Run (or resume) a pretraining job; returns the trained model and its loss history.

    Works in one process (a notebook) or in each process started by torchrun.
    """
    rank, world = _distributed()
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the number of processes {world}")
    tokenizer = data.tokenizer if data is not None else load_tokenizer()
    if data is None:
        data = PretrainingData(make_corpus(args.n_docs, "train", seed=args.seed), tokenizer, args.max_len, args.seed)
    torch.manual_seed(args.seed + rank)  # dropout differs per process, like on separate machines
    config = args.bert_config(tokenizer.vocab_size, tokenizer.pad_id)
    model = BertForPreTraining(config)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    history: list[dict] = []
    start = 0
    out_dir = Path(args.out_dir) if args.out_dir else None
    if args.resume:
        if out_dir is None or not (out_dir / "checkpoint.pt").exists():
            raise FileNotFoundError(f"--resume: no checkpoint.pt in {out_dir}")
        ckpt = torch.load(out_dir / "checkpoint.pt", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, history = ckpt["step"], list(ckpt["history"])
        if len(ckpt["rng"]) == world:
            torch.set_rng_state(ckpt["rng"][rank])
    ddp_model = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()
    per_rank = args.batch_size // world
    bar = tqdm(range(start + 1, args.steps + 1), desc="pretraining", disable=not progress or rank != 0, initial=start, total=args.steps)
    t0, tokens, targets = time.perf_counter(), 0, 0
    for step in bar:
        lr = lr_at(step, args.lr, args.warmup, args.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data.batch(step, args.batch_size, nsp=args.nsp)  # the global batch, identical everywhere
        shard = batch.slice(rank * per_rank, (rank + 1) * per_rank)
        n_labels = int((batch.mlm_labels != IGNORE_INDEX).sum())
        loss, mlm_sum, nsp_sum = _shard_loss(ddp_model, shard, n_labels, args.batch_size, world, args.nsp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients across processes here
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += int(batch.attention_mask.sum())
        targets += n_labels
        if step % args.log_every == 0 or step == args.steps:
            sums = torch.stack([mlm_sum, nsp_sum])
            if world > 1:
                dist.all_reduce(sums)  # every process's share, for the log only
            record = {
                "step": step,
                "mlm_loss": float(sums[0]) / max(1, n_labels),
                "nsp_loss": float(sums[1]) / args.batch_size,
                "lr": lr,
            }
            record["loss"] = record["mlm_loss"] + (record["nsp_loss"] if args.nsp else 0.0)
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            if on_log is not None and rank == 0:
                on_log(record)
        if out_dir is not None and (step == args.steps or (args.save_every and step % args.save_every == 0)):
            _save_checkpoint(out_dir, model, optimizer, step, history, args, tokenizer, rank, world)
    seconds = time.perf_counter() - t0
    bar.close()
    return PretrainResult(model, tokenizer, history, seconds, tokens, targets)


def _save_checkpoint(out_dir: Path, model, optimizer, step, history, args, tokenizer, rank, world) -> None:
    states = [torch.get_rng_state()]
    if world > 1:
        states = [torch.empty_like(states[0]) for _ in range(world)]
        dist.all_gather(states, torch.get_rng_state())  # every process's dropout stream, to resume exactly
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": states,
            "history": history,
            "args": dataclasses.asdict(args),
            "config": dataclasses.asdict(model.config),
        }
        tmp = out_dir / "checkpoint.pt.tmp"
        torch.save(ckpt, tmp)
        tmp.replace(out_dir / "checkpoint.pt")  # atomic: a crash never leaves half a checkpoint
        from course_lib.tokenization import save_vocab

        save_vocab(tokenizer, out_dir / "vocab.txt")
    if world > 1:
        dist.barrier()


def load_checkpoint(path: str | Path) -> tuple[BertForPreTraining, dict]:
    """The model saved in a checkpoint (a file or a run folder), in eval mode, and the checkpoint dict."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    model = BertForPreTraining(BertConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[PretrainArgs, bool]:
    defaults = PretrainArgs()
    p = argparse.ArgumentParser(prog="python -m course_lib.pretrain", description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", default=None, help="folder for checkpoint.pt and vocab.txt")
    p.add_argument("--n-docs", type=int, default=defaults.n_docs, help="corpus size in generated stories")
    p.add_argument("--model", default=defaults.model, choices=list(MODEL_SIZES), help="named model size")
    p.add_argument("--n-layers", type=int, default=None)
    p.add_argument("--d-model", type=int, default=None)
    p.add_argument("--n-heads", type=int, default=None)
    p.add_argument("--d-ff", type=int, default=None)
    p.add_argument("--max-len", type=int, default=defaults.max_len, help="tokens per example")
    p.add_argument("--dropout", type=float, default=defaults.dropout)
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="global batch, over all processes")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=defaults.warmup)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--no-nsp", dest="nsp", action="store_false", help="masked LM only")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--save-every", type=int, default=defaults.save_every)
    p.add_argument("--log-every", type=int, default=defaults.log_every)
    p.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pt")
    p.add_argument("--eval", action="store_true", help="print held-out masked-token accuracy at the end")
    ns = vars(p.parse_args(argv))
    do_eval = ns.pop("eval")
    return PretrainArgs(**ns), do_eval


def main(argv: Sequence[str] | None = None) -> int:
    args, do_eval = parse_args(argv)
    result = pretrain(args)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        last = result.history[-1] if result.history else {}
        print(
            f"step {last.get('step', args.steps)}: loss {last.get('loss', float('nan')):.4f}; "
            f"{result.tokens_seen / max(result.seconds, 1e-9):,.0f} tokens/s"
        )
        if do_eval:
            heldout = PretrainingData(make_corpus(500, "heldout", seed=args.seed), result.tokenizer, args.max_len)
            print(f"held-out masked-token accuracy: {masked_accuracy(result.model, heldout):.3f}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

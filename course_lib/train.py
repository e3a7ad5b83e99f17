"""Training utilities: the paper's schedule and loss, a loop with a progress bar (chapter 7; reused later).

Dimension legend: B batch, T target length, V vocabulary size.

    seed_everything                 one seed for Python, NumPy and torch
    transformer_lrate               lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)   (sec. 5.3)
    transformer_lr_schedule         the same as a torch LambdaLR, for any optimizer
    paper_adam                      Adam with the paper's beta1 = 0.9, beta2 = 0.98, eps = 1e-9
    label_smoothed_cross_entropy    cross-entropy against (1 - eps) one-hot + eps uniform, padding ignored
    train_epoch, evaluate, fit      the loop: teacher forcing, gradient clipping, a tqdm bar, a History

A model here is anything with ``model(src, tgt_in) -> logits (B, T, V)`` and
batches are ``(src, tgt_in, tgt_out)`` triples, so the chapter-1 RNN and the
Transformer train with the same loop.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

import numpy as np
import torch
from torch import nn

from course_lib.runtime import building_book

# Plain-text bars in the built book: a widget bar would make the page load the 3.6 MB widget manager.
if building_book():
    from tqdm import tqdm as _text_tqdm

    class tqdm(_text_tqdm):
        """The plain-text bar, refreshed every 5 s at most (unless told otherwise): in the built
        page every refresh is a line of the cell's output (ch07 had ~480 such lines at 0.1 s)."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("mininterval", 5.0)
            super().__init__(*args, **kwargs)

else:
    from tqdm.auto import tqdm

__all__ = [
    "seed_everything",
    "transformer_lrate",
    "transformer_lr_schedule",
    "paper_adam",
    "label_smoothed_cross_entropy",
    "TrimPadding",
    "History",
    "EpochResult",
    "train_epoch",
    "evaluate",
    "fit",
]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (src (B, S), tgt_in (B, T), tgt_out (B, T))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch; return a torch.Generator seeded the same way
    (for DataLoaders and samplers, whose shuffling should not depend on earlier draws)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- learning rate


def transformer_lrate(step: int, d_model: int, warmup_steps: int = 4000, scale: float = 1.0) -> float:
    """The paper's learning rate at optimizer step ``step`` (1, 2, ...), sec. 5.3:

        lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)

    It rises linearly for ``warmup_steps`` steps, peaks at step = warmup_steps with
    scale * (d_model * warmup_steps)^-0.5, then decays like 1 / sqrt(step).
    ``scale`` (1 in the paper) lets a small model on a short run use larger steps.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise ValueError(f"step counts optimizer updates from 1, got {step!r} (step 0 would divide by zero)")
    if warmup_steps < 1 or d_model < 1:
        raise ValueError(f"warmup_steps and d_model must be positive, got {warmup_steps} and {d_model}")
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)


def transformer_lr_schedule(
    optimizer: torch.optim.Optimizer,
    d_model: int,
    warmup_steps: int = 4000,
    scale: float = 1.0,
    total_steps: int | None = None,
    cooldown_steps: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """``transformer_lrate`` as a LambdaLR: call ``scheduler.step()`` after every ``optimizer.step()``.

    LambdaLR multiplies each group's initial lr by ``f(i)``, i = 0 for the first
    update; here ``f(i) = transformer_lrate(i + 1) / initial_lr``, so update number
    i + 1 uses exactly the paper's rate whatever lr the optimizer was built with
    (the peak is update number ``warmup_steps``).

    Optional, not in the paper: a linear cool-down to 0 over the last
    ``cooldown_steps`` of a run of ``total_steps`` updates. The paper's 1/sqrt(step)
    decay is slow; a run of a few hundred steps ends with the rate still high, and
    the last few errors of a small task only go once it is annealed.
    """
    if cooldown_steps and (total_steps is None or not 0 < cooldown_steps <= total_steps):
        raise ValueError(f"cooldown_steps={cooldown_steps} needs total_steps >= cooldown_steps, got total_steps={total_steps}")

    def factor(step: int) -> float:
        rate = transformer_lrate(step, d_model, warmup_steps, scale)
        if cooldown_steps and step > total_steps - cooldown_steps:
            rate *= max(0.0, (total_steps - step + 1) / cooldown_steps)  # 1 at the start of the cool-down, 1/cooldown at the end
        return rate

    lambdas = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        if not base > 0:
            raise ValueError(f"the optimizer's lr must be > 0 (it is divided out), got {base}")
        lambdas.append(lambda i, base=base: factor(i + 1) / base)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def paper_adam(params: Iterable[nn.Parameter], lr: float = 1.0) -> torch.optim.Adam:
    """Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9 (sec. 5.3); the lr is set by the schedule."""
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.98), eps=1e-9)


# --------------------------------------------------------------------------- loss


def label_smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.1, pad_id: int | None = 0) -> torch.Tensor:
    """Mean cross-entropy against the smoothed target q = (1 - eps) one_hot(y) + eps / V (sec. 5.4).

    Per token: (1 - eps) * (-log p_y) + eps * mean_v(-log p_v). The eps / V mass
    goes to every class, the true one and padding included (as in
    ``torch.nn.CrossEntropyLoss(label_smoothing=eps, ignore_index=pad_id)``, which
    this equals); positions whose *target* is ``pad_id`` are left out of the mean.
    With eps = 0 it is plain cross-entropy.

    Shapes:
        logits: (..., V)   target: (...) token ids   returns a scalar
    """
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"expected logits (..., V) and target (...) with the same leading dims, got {tuple(logits.shape)} and {tuple(target.shape)}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    log_probs = logits.log_softmax(dim=-1)  # (..., V)
    nll = -log_probs.gather(-1, target.clamp_min(0)[..., None])[..., 0]  # (...): -log p(true token)
    uniform = -log_probs.mean(dim=-1)  # (...): cross-entropy against the uniform distribution
    loss = (1.0 - eps) * nll + eps * uniform
    keep = torch.ones_like(target, dtype=torch.bool) if pad_id is None else target != pad_id
    return (loss * keep).sum() / keep.sum().clamp_min(1)  # mean over real tokens


# --------------------------------------------------------------------------- the loop


class TrimPadding:
    """Wrap a re-iterable of (src, tgt_in, tgt_out) batches; cut each batch's source to its longest row.

    Datasets pad every source to the longest in the whole split; a batch of short
    dates need not pay for attention over columns that are padding in every row.
    The model's output is unchanged (padded keys are masked anyway), only faster.
    """

    def __init__(self, batches: Iterable[Batch], pad_id: int = 0):
        self.batches, self.pad_id = batches, pad_id

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]

    def __iter__(self):
        for src, tgt_in, tgt_out in self.batches:
            longest = int((src != self.pad_id).sum(dim=1).max())  # right padding: real tokens come first
            yield src[:, :longest], tgt_in, tgt_out


@dataclass
class History:
    """One entry per checkpoint (each epoch, or every ``eval_every`` steps): what ``fit`` measured, ready to plot.

    ``train_time`` is cumulative seconds spent in training steps (evaluation
    excluded), so curves of different models compare on the same clock;
    ``metrics`` holds whatever ``eval_fn`` returned (e.g. "exact_match").
    """

    epoch: list[float] = field(default_factory=list)  # passes over the data so far (0.25 = a quarter)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean since the previous checkpoint
    train_accuracy: list[float] = field(default_factory=list)  # teacher-forced next-token accuracy, idem
    train_time: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def last(self, name: str) -> float:
        return self.metrics[name][-1]


def _token_accuracy(logits: torch.Tensor, target: torch.Tensor, pad_id: int | None) -> tuple[int, int]:
    keep = torch.ones_like(target, dtype=torch.bool) if pad_id is None else target != pad_id
    correct = ((logits.argmax(dim=-1) == target) & keep).sum()
    return int(correct), int(keep.sum())


class EpochResult(NamedTuple):
    loss: float  # mean label-smoothed loss per target token
    accuracy: float  # teacher-forced next-token accuracy
    steps: int  # optimizer updates made


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    label_smoothing: float = 0.1,
    pad_id: int | None = 0,
    clip_norm: float | None = 1.0,
    progress: tqdm | None = None,
) -> EpochResult:
    """One pass of teacher-forced training; returns the mean loss per token, token accuracy and steps.

    Each step: logits = model(src, tgt_in), label-smoothed loss against tgt_out,
    backward, clip the gradient norm to ``clip_norm``, optimizer step, scheduler step.
    """
    model.train()
    loss_sum, correct, count, steps = 0.0, 0, 0, 0
    for src, tgt_in, tgt_out in batches:
        logits = model(src, tgt_in)  # (B, T, V)
        loss = label_smoothed_cross_entropy(logits, tgt_out, label_smoothing, pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        hits, n = _token_accuracy(logits.detach(), tgt_out, pad_id)
        loss_sum, correct, count, steps = loss_sum + loss.item() * n, correct + hits, count + n, steps + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return EpochResult(loss_sum / max(count, 1), correct / max(count, 1), steps)


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], *, label_smoothing: float = 0.0, pad_id: int | None = 0) -> dict[str, float]:
    """Teacher-forced loss and next-token accuracy over ``batches`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for src, tgt_in, tgt_out in batches:
        logits = model(src, tgt_in)
        hits, n = _token_accuracy(logits, tgt_out, pad_id)
        loss_sum += label_smoothed_cross_entropy(logits, tgt_out, label_smoothing, pad_id).item() * n
        correct, count = correct + hits, count + n
    model.train(was_training)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1)}


def fit(
    model: nn.Module,
    train_batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    label_smoothing: float = 0.1,
    pad_id: int | None = 0,
    clip_norm: float | None = 1.0,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    desc: str = "training",
    progress: bool = True,
) -> History:
    """Train for ``epochs`` passes over ``train_batches`` (re-iterated each epoch) with one tqdm bar.

    A checkpoint closes every ``eval_every`` optimizer steps (default: once per
    epoch) and at the end of each epoch: it appends one entry to the History, with
    ``eval_fn(model)``'s metrics (e.g. ``{"exact_match": 0.97}``) if given. Training
    stops early once ``stop_when(metrics)`` is true. ``History.train_time`` leaves
    evaluation out; ``History.epoch`` is fractional (0.25 = a quarter pass).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1):
        raise ValueError(f"eval_every must be a positive int (optimizer steps) or None, got {eval_every!r}")
    try:
        steps_per_epoch = len(train_batches)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    history = History()
    bar = tqdm(total=None if steps_per_epoch is None else epochs * steps_per_epoch, desc=desc, disable=not progress)
    elapsed, steps = 0.0, 0
    try:
        for epoch in range(epochs):
            batches = list(train_batches)  # one (shuffled) pass, cut into chunks between checkpoints
            chunk_size = eval_every or max(1, len(batches))
            for first in range(0, len(batches), chunk_size):
                chunk = batches[first : first + chunk_size]
                start = time.perf_counter()
                loss, accuracy, n_steps = train_epoch(
                    model, chunk, optimizer, scheduler,
                    label_smoothing=label_smoothing, pad_id=pad_id, clip_norm=clip_norm, progress=bar,
                )  # fmt: skip
                elapsed += time.perf_counter() - start
                steps += n_steps
                history.epoch.append(epoch + (first + len(chunk)) / len(batches))
                history.step.append(steps)
                history.train_loss.append(loss)
                history.train_accuracy.append(accuracy)
                history.train_time.append(elapsed)
                history.lr.append(optimizer.param_groups[0]["lr"])
                metrics = eval_fn(model) if eval_fn is not None else {}
                for name, value in metrics.items():
                    history.metrics.setdefault(name, []).append(float(value))
                bar.set_postfix({"loss": f"{loss:.3f}", **{k: f"{v:.3f}" for k, v in metrics.items()}})
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training diverged: the loss is {loss} (try a smaller lr scale or more warmup)")
                if stop_when is not None and stop_when(metrics):
                    return history
    finally:
        bar.close()
    return history

"""Training a GPT: the loss, a learning-rate schedule and the training loop.

Read top to bottom:

1. the loss of one batch and of a whole loader, and perplexity;
2. the learning-rate schedule (linear warm-up, then cosine decay) as a pure function;
3. `train`, the loop itself: AdamW, gradient clipping, evaluation in eval mode, checkpoints
   and a progress callback. Launched with `torchrun`, the same loop runs data-parallel
   (labcode/distributed.py).

Checkpoints that resume a run exactly are in labcode/checkpoint.py; the blog's tiny GPT and
its command line in labcode/tiny_gpt.py; the experiments of the training posts in labcode/labs/.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from labcode.checkpoint import BatchStream, load_checkpoint, save_checkpoint
from labcode.device import autocast, maybe_compile
from labcode.distributed import (
    barrier,
    data_parallel,
    mean_across_ranks,
    setup_distributed,
    shard_batch,
)


# -- 1. loss and perplexity ----------------------------------------------------------

def calc_loss_batch(input_batch, target_batch, model, device) -> torch.Tensor:
    """Mean cross-entropy of predicting each next token of one batch.

    The model gives a score for every vocabulary entry at every position; cross-entropy
    compares them with the token that actually came next.
    """
    input_batch = input_batch.to(device)    # (B, T) token ids
    target_batch = target_batch.to(device)  # (B, T) the same ids shifted left by one
    logits = model(input_batch)             # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), target_batch.flatten())  # (B*T, V) vs (B*T,)


@torch.no_grad()
def calc_loss_loader(loader, model, device, num_batches: int | None = None) -> float:
    """Average batch loss over the first `num_batches` batches of `loader` (all when None).

    Returns nan for an empty loader. The model's train/eval mode is left to the caller.
    """
    if len(loader) == 0:
        return float("nan")
    num_batches = len(loader) if num_batches is None else min(num_batches, len(loader))
    total = 0.0
    for i, (input_batch, target_batch) in enumerate(loader):
        if i >= num_batches:
            break
        total += calc_loss_batch(input_batch, target_batch, model, device).item()
    return total / num_batches


def perplexity(loss: float) -> float:
    """exp(mean cross-entropy): the number of tokens the model is, in effect, choosing among."""
    return math.exp(loss)


# -- 2. learning-rate schedule -------------------------------------------------------

def lr_at(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0,
          min_lr: float = 0.0) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine decay.

    Warm-up climbs from peak_lr/warmup_steps to peak_lr over `warmup_steps` steps (early
    gradients are large and noisy, so we start gently); then the rate follows half a cosine
    from peak_lr down to min_lr at `total_steps`, and stays there.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak_lr - min_lr)


# -- 3. the training loop ------------------------------------------------------------

def make_optimizer(model, lr: float, weight_decay: float, betas=(0.9, 0.95)):
    """AdamW, decaying only matrices (weights of linear and embedding layers).

    Biases and LayerNorm scales are vectors; shrinking them toward zero does not regularise
    anything useful, so they get no weight decay (as in GPT-2 and nanoGPT).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = all(p.is_cuda for p in params)  # one kernel for the whole update on GPU
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


@torch.no_grad()
def evaluate(model, loaders: dict, device, num_batches: int | None) -> dict:
    """Mean loss over the first `num_batches` batches of each loader, in eval mode (no dropout).

    Measuring training and validation text the same way is what makes them comparable:
    the loss of the batch just trained on has dropout on, and is one batch.
    """
    model.eval()
    with autocast(device):
        losses = {name: None if loader is None else calc_loss_loader(loader, model, device,
                                                                     num_batches)
                  for name, loader in loaders.items()}
    model.train()
    return losses


@dataclass
class TrainHistory:
    """Everything `train` measured: one entry per step, and one per evaluation."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)   # the batch's, dropout on
    lr: list[float] = field(default_factory=list)
    tokens_seen: list[int] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval_train_loss: list[float | None] = field(default_factory=list)  # eval mode, fixed batches
    eval_val_loss: list[float] = field(default_factory=list)           # eval mode

    def add_step(self, step: int, loss: float, lr: float, tokens: int) -> None:
        self.step.append(step)
        self.train_loss.append(loss)
        self.lr.append(lr)
        self.tokens_seen.append((self.tokens_seen[-1] if self.tokens_seen else 0) + tokens)

    def add_eval(self, step: int, losses: dict) -> None:
        self.eval_step.append(step)
        self.eval_train_loss.append(losses["train"])
        self.eval_val_loss.append(losses["val"])


@dataclass
class TrainProgress:
    """What a progress callback is told after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    eta_s: float
    val_loss: float | None = None  # set on the steps where validation ran


class ProgressClock:
    """Turns the history into speed and time left, for the progress callback."""

    def __init__(self, history: TrainHistory, first_step: int):
        self.first_step, self.started = first_step, time.perf_counter()
        self.tokens_at_start = history.tokens_seen[-1] if history.tokens_seen else 0

    def report(self, history: TrainHistory, total_steps: int) -> TrainProgress:
        step, elapsed = history.step[-1], time.perf_counter() - self.started
        evaluated = history.eval_step and history.eval_step[-1] == step
        return TrainProgress(
            step=step, total_steps=total_steps, loss=history.train_loss[-1],
            tokens_per_s=(history.tokens_seen[-1] - self.tokens_at_start) / elapsed,
            eta_s=elapsed / (step - self.first_step) * (total_steps - step),
            val_loss=history.eval_val_loss[-1] if evaluated else None)


def train(model, train_loader, val_loader=None, *, steps: int | None = None,
          epochs: int | None = None, lr: float = 3e-4, weight_decay: float = 0.1,
          betas=(0.9, 0.95), warmup_steps: int = 0, min_lr: float | None = None,
          grad_clip: float | None = 1.0, eval_every: int = 50, eval_batches: int | None = 5,
          train_eval_loader=None, checkpoint_path=None, checkpoint_every: int | None = None,
          resume: bool = False, stop_after: int | None = None, device="cpu",
          compile: bool = False,
          callback: Callable[[TrainProgress], None] | None = None) -> TrainHistory:
    """Train `model` on `train_loader` for `steps` optimizer steps (or `epochs` passes).

    - AdamW with the `lr_at` schedule (warm-up, cosine decay to `min_lr`, default lr/10)
      and gradients clipped to norm `grad_clip`;
    - every `eval_every` steps and at the end, `evaluate`: the eval-mode loss of
      `eval_batches` batches of `val_loader` and, when given, of `train_eval_loader`
      (a fixed, ordered set of training batches);
    - with `checkpoint_path`, a checkpoint every `checkpoint_every` steps and at the end;
      `resume=True` continues from it exactly (same weights, same batches, same randomness);
    - `stop_after` ends this run after that many steps, the schedule still spanning `steps`;
    - `callback(TrainProgress)` after every step (on rank 0 only when data-parallel);
    - under `torchrun`, DistributedDataParallel: every rank trains on its slice of each
      batch (batch size divisible by the world size);
    - bf16 autocast on CUDA (labcode.device.autocast); `compile=True` uses torch.compile.

    Returns the `TrainHistory`, including the steps of an earlier run that was resumed.
    """
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    device, info = setup_distributed(device)  # joins torchrun's process group, if any
    total_steps = steps if steps is not None else epochs * len(train_loader)
    min_lr = lr / 10 if min_lr is None else min_lr

    raw_model = model.to(device)
    optimizer = make_optimizer(raw_model, lr, weight_decay, betas)
    stream, history, step = BatchStream(train_loader), TrainHistory(), 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        step = load_checkpoint(checkpoint_path, raw_model, optimizer, stream, history)
    net = data_parallel(maybe_compile(raw_model, compile), device, info)
    last_step = total_steps if stop_after is None else min(total_steps, step + stop_after)
    clock = ProgressClock(history, first_step=step)

    raw_model.train()
    while step < last_step:
        lr_now = lr_at(step, total_steps, lr, warmup_steps, min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr_now

        inputs, targets = next(stream)                                  # (B, T) global batch
        inputs, targets = shard_batch(inputs, info), shard_batch(targets, info)  # this rank's
        with autocast(device):
            loss = calc_loss_batch(inputs, targets, net, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()                                                 # DDP averages grads here
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
        optimizer.step()
        step += 1

        history.add_step(step, mean_across_ranks(loss.item(), info), lr_now,
                         tokens=inputs.numel() * info.world_size)
        if val_loader is not None and (step % eval_every == 0 or step == total_steps):
            history.add_eval(step, evaluate(raw_model, {"train": train_eval_loader,
                                                        "val": val_loader}, device, eval_batches))

        if callback is not None and info.is_main:
            callback(clock.report(history, total_steps))
        if checkpoint_path is not None and (
                step == last_step or (checkpoint_every and step % checkpoint_every == 0)):
            if info.is_main:
                save_checkpoint(checkpoint_path, raw_model, optimizer, step, stream, history)
            barrier(info)  # no rank runs ahead while rank 0 writes
    raw_model.eval()
    return history

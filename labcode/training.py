"""Training a GPT: the loss, a learning-rate schedule and the training loop.

Read top to bottom:

1. the loss of one batch and of a whole loader, and perplexity;
2. the learning-rate schedule (linear warm-up, then cosine decay) as a pure function;
3. `train`, the loop itself: AdamW, gradient clipping, evaluation in eval mode, checkpoints
   and a progress callback. Launched with `torchrun`, the same loop runs data-parallel
   (labcode/distributed.py).

Checkpoints that resume a run exactly are in labcode/checkpoint.py; the blog's tiny GPT,
its labs and its command line in labcode/tiny_gpt.py.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from labcode.checkpoint import BatchStream, load_checkpoint, save_atomically, save_checkpoint
from labcode.device import autocast, maybe_compile
from labcode.distributed import (
    barrier,
    data_parallel,
    mean_across_ranks,
    setup_distributed,
    shard_batch,
)
from labcode.figures import WIDTH, house_style


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


# === Lab entry points: the functions the posts run ==================================

def lr_schedule_plot(steps: int = 1000, warmup_steps: int = 100, peak_lr: float = 6e-4,
                     min_lr: float = 6e-5) -> dict:
    """Plot `lr_at` over a run: the warm-up ramp, then the cosine down to min_lr."""
    import matplotlib.pyplot as plt

    lrs = [lr_at(s, steps, peak_lr, warmup_steps, min_lr) for s in range(steps)]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    ax.plot(range(steps), lrs)
    ax.axvline(warmup_steps, color="grey", linestyle=":", label=f"end of warm-up ({warmup_steps})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Linear warm-up, then cosine decay")
    ax.legend()
    house_style(fig)
    peak_step = min(warmup_steps, steps - 1)
    for step in (0, peak_step, steps - 1):
        print(f"step {step:>4}: learning rate {lrs[step]:.2e}")
    return {"first_lr": lrs[0], "peak_lr": max(lrs), "peak_step": lrs.index(max(lrs)),
            "last_lr": lrs[-1], "steps": steps, "warmup_steps": warmup_steps}


# -- the training loop's extras, one lab each (post "The training loop's extras") ------

class ByteTokens:
    """The simplest tokenizer: one token per UTF-8 byte, a vocabulary of 256."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def tiny_byte_setup(corpus: str, chars: int, context_length: int = 32, batch_size: int = 8,
                    drop_rate: float = 0.0):
    """A shuffled loader over the first `chars` characters of `corpus` as bytes, and a config
    for a 2-layer GPT of width 64 over them."""
    from labcode.data import create_dataloader, read_text
    from labcode.model import GPTConfig

    text = read_text(corpus)[:chars]
    loader = create_dataloader(text, batch_size=batch_size, max_length=context_length,
                               stride=context_length, shuffle=True, seed=123,
                               tokenizer=ByteTokens())
    cfg = GPTConfig(vocab_size=256, context_length=context_length, emb_dim=64, n_heads=4,
                    n_layers=2, drop_rate=drop_rate, qkv_bias=False)
    return loader, cfg


def warmup_or_not(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 60,
                  peak_lrs: tuple = (1e-2, 1e-1), warmup_steps: int = 10,
                  device: str = "cpu") -> dict:
    """The same model from the same start, trained with a warm-up and without, at two peaks.

    No gradient clipping in any run, so the warm-up is the only thing between a large
    learning rate and the first updates.
    """
    import matplotlib.pyplot as plt
    from labcode.model import GPTModel
    from labcode.tiny_gpt import one_cpu_thread

    _, cfg = tiny_byte_setup(corpus, chars)
    fig, axes = plt.subplots(len(peak_lrs), 1, figsize=(WIDTH, 2.8 * len(peak_lrs) + 0.4), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    out, early = {}, slice(0, 2 * warmup_steps)
    # a table narrow enough for a phone: worst loss of the first 2W steps, mean of the last 10
    print(f"{'peak lr':>7}  {'warm-up':>7}  {'worst, steps 1-' + str(2 * warmup_steps):>17}  {'mean, last 10':>13}")
    for ax, peak_lr in zip(axes, peak_lrs):
        for key, warm in (("warm", warmup_steps), ("cold", 0)):
            loader, _ = tiny_byte_setup(corpus, chars)  # the same batches in the same order
            torch.manual_seed(0)                        # and the same initial weights
            with one_cpu_thread(device):
                losses = train(GPTModel(cfg), loader, steps=steps, lr=peak_lr, warmup_steps=warm,
                               grad_clip=None, device=device).train_loss
            ax.plot(range(1, steps + 1), losses,
                    label=f"{warm} warm-up steps" if warm else "no warm-up")
            result = {"worst_early": max(losses[early]), "final": sum(losses[-10:]) / 10,
                      "worst_step": losses.index(max(losses[1:])) + 1}
            out[f"{key}_{peak_lr:g}"] = result
            print(f"{peak_lr:7g}  {warm:7d}  {result['worst_early']:17.3f}  {result['final']:13.3f}")
        ax.set_title(f"peak learning rate {peak_lr:g}")
        ax.set_ylabel("training loss (one batch)")
    axes[-1].set_xlabel("optimizer step")
    axes[0].legend()
    fig.suptitle("The same runs with and without warm-up")
    house_style(fig)
    out["first_loss"] = losses[0]
    return out


def gradient_norms(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 80,
                   lr: float = 3e-3, warmup_steps: int = 8, clip: float = 1.0,
                   device: str = "cpu") -> dict:
    """The global gradient norm at every step, before clipping, against the clip line.

    The loop is `train`'s, written out so that it can keep what `clip_grad_norm_` returns:
    the norm of all gradients taken together, measured before it scales them down.
    """
    import matplotlib.pyplot as plt
    from labcode.model import GPTModel
    from labcode.tiny_gpt import one_cpu_thread

    loader, cfg = tiny_byte_setup(corpus, chars)
    torch.manual_seed(0)
    model = GPTModel(cfg).to(device).train()
    optimizer = make_optimizer(model, lr, weight_decay=0.1)
    stream, norms = BatchStream(loader), []
    with one_cpu_thread(device):  # a model this small runs best on one thread
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup_steps, lr / 10)
            inputs, targets = next(stream)
            loss = calc_loss_batch(inputs, targets, model, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # norm BEFORE clipping
            norms.append(norm.item())
            optimizer.step()
    clipped = [n > clip for n in norms]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    ax.plot(range(1, steps + 1), norms, label="gradient norm before clipping")
    ax.axhline(clip, color="grey", linestyle="--", label=f"clip at {clip:g}")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("global gradient norm")
    ax.set_title("Gradient norm at every step, before clipping")
    ax.legend()
    house_style(fig)
    later = sorted(norms[steps // 2:])
    out = {"first_norm": norms[0], "max_norm": max(norms), "max_step": norms.index(max(norms)) + 1,
           "median_second_half": later[len(later) // 2], "clipped_steps": sum(clipped),
           "clipped_first_10": sum(clipped[:10]), "steps": steps,
           "last_clipped_step": max((i + 1 for i, c in enumerate(clipped) if c), default=0)}
    print(f"clipped on {out['clipped_steps']} of {steps} steps ({out['clipped_first_10']} of the first 10)")
    print(f"last clipped step: {out['last_clipped_step']}")
    return out


def weight_decay_groups(emb_dim: int = 64, n_layers: int = 2) -> dict:
    """Which parameters `make_optimizer` decays: every tensor of a small GPT, by kind."""
    from labcode.model import GPTConfig, GPTModel

    model = GPTModel(GPTConfig(vocab_size=256, context_length=32, emb_dim=emb_dim, n_heads=4,
                               n_layers=n_layers, qkv_bias=True))
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    rows = [{"parameter": name, "shape": "x".join(map(str, p.shape)),
             "weight_decay": decay_of[id(p)], "numbers": p.numel()}
            for name, p in model.named_parameters()
            if not name.startswith("trf_blocks.") or name.startswith("trf_blocks.0.")]
    counts = {"decayed": [0, 0], "not_decayed": [0, 0]}
    for p in model.parameters():
        c = counts["decayed" if decay_of[id(p)] > 0 else "not_decayed"]
        c[0], c[1] = c[0] + 1, c[1] + p.numel()
    total = sum(p.numel() for p in model.parameters())
    print(f"{counts['decayed'][0]} tensors decay ({counts['decayed'][1]:,} numbers)")
    print(f"{counts['not_decayed'][0]} do not ({counts['not_decayed'][1]:,} numbers)")
    return {"rows": rows, "decayed_tensors": counts["decayed"][0],
            "decayed_numbers": counts["decayed"][1],
            "plain_tensors": counts["not_decayed"][0], "plain_numbers": counts["not_decayed"][1],
            "plain_share": counts["not_decayed"][1] / total, "total_numbers": total}


def exact_resume(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 40,
                 lr: float = 3e-3, checkpoint: str = ".cache/labs/resume-demo.pt",
                 device: str = "cpu") -> dict:
    """Train `steps` steps in one go; then half, save, resume into a new model, the other half.

    Dropout is on and the loader shuffles, so the random state matters as much as the weights.
    A third run resumes from a checkpoint whose optimizer state (AdamW's moments) was dropped.
    """
    from labcode.model import GPTModel
    from labcode.tiny_gpt import one_cpu_thread

    _, cfg = tiny_byte_setup(corpus, chars, drop_rate=0.1)
    settings = dict(steps=steps, lr=lr, warmup_steps=steps // 10, grad_clip=1.0, device=device)

    def fresh_model(seed):
        torch.manual_seed(seed)
        return GPTModel(cfg)

    def loader():  # a new loader each run: its shuffle generator starts from the same seed
        return tiny_byte_setup(corpus, chars, drop_rate=0.1)[0]

    def max_diff(a, b):
        return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))

    with one_cpu_thread(device):  # a model this small runs best on one thread
        whole = fresh_model(0)
        whole_history = train(whole, loader(), **settings)

        Path(checkpoint).unlink(missing_ok=True)
        train(fresh_model(0), loader(), checkpoint_path=checkpoint, stop_after=steps // 2, **settings)
        resumed = fresh_model(1)  # other initial weights: the checkpoint must overwrite them all
        resumed_history = train(resumed, loader(), checkpoint_path=checkpoint, resume=True,
                                **settings)

        Path(checkpoint).unlink()
        train(fresh_model(0), loader(), checkpoint_path=checkpoint, stop_after=steps // 2, **settings)
        state = torch.load(checkpoint, weights_only=False)
        state["optimizer"]["state"] = {}  # forget AdamW's running moments
        save_atomically(state, checkpoint)
        forgetful = fresh_model(1)
        forgetful_history = train(forgetful, loader(), checkpoint_path=checkpoint, resume=True,
                                  **settings)

    out = {"steps": steps, "half": steps // 2,
           "whole_final_loss": whole_history.train_loss[-1],
           "resumed_final_loss": resumed_history.train_loss[-1],
           "resumed_max_weight_diff": max_diff(whole, resumed),
           "identical_losses": whole_history.train_loss == resumed_history.train_loss,
           "forgetful_final_loss": forgetful_history.train_loss[-1],
           "forgetful_max_weight_diff": max_diff(whole, forgetful)}
    # max weight diff: the largest |difference| of any weight from the run in one go
    print(f"{'':<17}  {'final loss':>10}  {'max weight diff':>15}")
    print(f"{'in one go':<17}  {out['whole_final_loss']:10.6f}")
    print(f"{'saved, resumed':<17}  {out['resumed_final_loss']:10.6f}  {out['resumed_max_weight_diff']:15.3g}")
    print(f"{'resumed, no AdamW':<17}  {out['forgetful_final_loss']:10.6f}  "
          f"{out['forgetful_max_weight_diff']:15.3g}")
    return out


if __name__ == "__main__":  # `python -m labcode.training` is the tiny GPT's command line
    from labcode.tiny_gpt import main

    main()

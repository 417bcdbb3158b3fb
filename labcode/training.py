"""Training a GPT: loss, a learning-rate schedule, a training loop that resumes exactly, and DDP.

Read top to bottom:

1. the loss of one batch and of a whole loader, and perplexity;
2. the learning-rate schedule (linear warm-up, then cosine decay) as a pure function;
3. a stream of batches that knows where it is, so a checkpoint can return to the same batch;
4. checkpoints: weights, optimizer, step, RNG states and data position;
5. `train`, the loop itself (AdamW, clipping, evaluation, checkpoints, progress callback),
   which also runs data-parallel when launched with `torchrun` (see labcode/distributed.py);
6. the lab entry points the blog posts call, and a command line:

    torchrun --nproc_per_node 2 -m labcode.training --text content/data/corpus.txt --steps 50
"""
from __future__ import annotations

import math
import os
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from labcode.device import autocast, maybe_compile
from labcode.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    mean_across_ranks,
    shard_batch,
)


# ---------------------------------------------------------------------------------------------
# 1. Loss and perplexity
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 2. Learning-rate schedule
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 3. A stream of batches with a position
# ---------------------------------------------------------------------------------------------

def _loader_rng_state(loader) -> dict:
    """The random states that decide a DataLoader's shuffle order when it is iterated."""
    sampler_gen = getattr(loader.sampler, "generator", None)
    return {
        "torch": torch.get_rng_state(),  # used when the loader has no generator of its own
        "loader": loader.generator.get_state() if loader.generator is not None else None,
        "sampler": sampler_gen.get_state() if sampler_gen is not None else None,
    }


def _set_loader_rng_state(loader, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["loader"] is not None:
        loader.generator.set_state(state["loader"])
    if state["sampler"] is not None:
        loader.sampler.generator.set_state(state["sampler"])


class BatchStream:
    """Endless batches from a DataLoader, epoch after epoch, that can return to any position.

    A position is (epoch, batches already taken in it) plus the random state at the start of
    that epoch, which fixed its shuffle order. To go back: restore that state, start the epoch
    again and skip the batches already used.
    """

    def __init__(self, loader):
        self.loader = loader
        self.epoch = 0
        self.index = 0            # batches taken from the current epoch
        self._epoch_rng = None    # random state when the current epoch began
        self._iterator = None

    def _start_epoch(self) -> None:
        if hasattr(self.loader.sampler, "set_epoch"):  # DistributedSampler reshuffles per epoch
            self.loader.sampler.set_epoch(self.epoch)
        self._epoch_rng = _loader_rng_state(self.loader)
        self._iterator = iter(self.loader)

    def __next__(self):
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self.index == 0:
                raise ValueError("the training loader yields no batches (text too short?)")
            self.epoch, self.index, self._iterator = self.epoch + 1, 0, None
            return next(self)
        self.index += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "epoch_rng": self._epoch_rng,
                "rng_now": _loader_rng_state(self.loader)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index, self._iterator = state["epoch"], state["index"], None
        if state["epoch_rng"] is not None:  # None: saved before the first batch
            self._replay_epoch(state["epoch_rng"])
        _set_loader_rng_state(self.loader, state["rng_now"])

    def _replay_epoch(self, epoch_rng: dict) -> None:
        _set_loader_rng_state(self.loader, epoch_rng)
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(self.epoch)
        self._epoch_rng = epoch_rng
        self._iterator = iter(self.loader)
        for _ in range(self.index):  # skip what was already trained on
            next(self._iterator)


# ---------------------------------------------------------------------------------------------
# 4. Progress, history and checkpoints
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainProgress:
    """What a progress callback is told after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    tokens_per_s: float
    eta_s: float
    val_loss: float | None = None  # set on the steps where validation ran


@dataclass
class TrainHistory:
    """Everything `train` measured: one entry per step, and one per evaluation."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    tokens_seen: list[int] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _rng_states() -> dict:
    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
    }


def _set_rng_states(states: dict) -> None:
    import numpy as np

    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


def save_checkpoint(path, model, optimizer, step: int, stream: BatchStream,
                    history: TrainHistory) -> None:
    """Write everything needed to continue training exactly where it stopped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,                   # the schedule is a function of the step: lr_at(step)
        "data": stream.state_dict(),
        "rng": _rng_states(),
        "history": asdict(history),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path, model, optimizer, stream: BatchStream,
                    history: TrainHistory) -> int:
    """Restore a `save_checkpoint` file into these objects; returns the step to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    stream.load_state_dict(state["data"])  # before the RNG: replaying the epoch draws from it
    _set_rng_states(state["rng"])
    for name, values in state["history"].items():
        setattr(history, name, list(values))
    return state["step"]


# ---------------------------------------------------------------------------------------------
# 5. The training loop
# ---------------------------------------------------------------------------------------------

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


def train(model, train_loader, val_loader=None, *, steps: int | None = None,
          epochs: int | None = None, lr: float = 3e-4, weight_decay: float = 0.1,
          betas=(0.9, 0.95), warmup_steps: int = 0, min_lr: float | None = None,
          grad_clip: float | None = 1.0, eval_every: int = 50, eval_batches: int | None = 5,
          checkpoint_path=None, checkpoint_every: int | None = None, resume: bool = False,
          stop_after: int | None = None, device="cpu", compile: bool = False,
          callback: Callable[[TrainProgress], None] | None = None) -> TrainHistory:
    """Train `model` on `train_loader` for `steps` optimizer steps (or `epochs` passes).

    - AdamW with the `lr_at` schedule (warm-up, cosine decay to `min_lr`, default lr/10)
      and gradients clipped to norm `grad_clip`;
    - every `eval_every` steps and at the end, the mean loss of `eval_batches` validation batches;
    - with `checkpoint_path`, a checkpoint every `checkpoint_every` steps and at the end;
      `resume=True` continues from it exactly (same weights, same batches, same randomness);
    - `stop_after` ends this run after that many steps, the schedule still spanning `steps`;
    - `callback(TrainProgress)` after every step (on rank 0 only when data-parallel);
    - under `torchrun`, joins the process group and trains with DistributedDataParallel:
      every rank slices its share of each batch (batch size divisible by the world size);
    - bf16 autocast on CUDA (labcode.device.autocast); `compile=True` uses torch.compile.

    Returns the `TrainHistory`, including the steps of an earlier run that was resumed.
    """
    device = torch.device(device)
    info: DistInfo = init_distributed(device)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", info.local_rank)  # one GPU per rank
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= or epochs=")
    total_steps = steps if steps is not None else epochs * len(train_loader)
    min_lr = lr / 10 if min_lr is None else min_lr

    raw_model = model.to(device)
    optimizer = make_optimizer(raw_model, lr, weight_decay, betas)
    stream = BatchStream(train_loader)
    history = TrainHistory()
    step = 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        step = load_checkpoint(checkpoint_path, raw_model, optimizer, stream, history)

    net = maybe_compile(raw_model, compile)
    if info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # DDP copies rank 0's weights to every rank, then all-reduces gradients in backward
        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

    def checkpoint() -> None:
        if info.is_main:
            save_checkpoint(checkpoint_path, raw_model, optimizer, step, stream, history)
        barrier(info)

    last_step = total_steps if stop_after is None else min(total_steps, step + stop_after)
    first_step, started = step, time.perf_counter()
    tokens_seen = history.tokens_seen[-1] if history.tokens_seen else 0
    tokens_at_start = tokens_seen
    raw_model.train()
    while step < last_step:
        lr_now = lr_at(step, total_steps, lr, warmup_steps, min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr_now

        input_batch, target_batch = next(stream)                 # (B, T) global batch
        input_batch = shard_batch(input_batch, info)             # (B / world, T) this rank's
        target_batch = shard_batch(target_batch, info)
        with autocast(device):
            loss = calc_loss_batch(input_batch, target_batch, net, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()                                          # DDP averages grads here
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
        optimizer.step()
        step += 1

        tokens_seen += input_batch.numel() * info.world_size
        loss_value = mean_across_ranks(loss.item(), info)
        history.step.append(step)
        history.train_loss.append(loss_value)
        history.lr.append(lr_now)
        history.tokens_seen.append(tokens_seen)

        val_loss = None
        if val_loader is not None and (step % eval_every == 0 or step == total_steps):
            raw_model.eval()  # no dropout while measuring
            with autocast(device):
                val_loss = calc_loss_loader(val_loader, raw_model, device, eval_batches)
            raw_model.train()
            history.val_step.append(step)
            history.val_loss.append(val_loss)

        if callback is not None and info.is_main:
            elapsed = time.perf_counter() - started
            done = step - first_step
            callback(TrainProgress(
                step=step, total_steps=total_steps, loss=loss_value,
                tokens_per_s=(tokens_seen - tokens_at_start) / elapsed,
                eta_s=elapsed / done * (total_steps - step), val_loss=val_loss,
            ))
        if checkpoint_path is not None and checkpoint_every and step % checkpoint_every == 0:
            checkpoint()

    if checkpoint_path is not None and not (checkpoint_every and step % checkpoint_every == 0):
        checkpoint()
    raw_model.eval()
    return history


# ---------------------------------------------------------------------------------------------
# 6. Lab entry points: a tiny GPT trained on the blog's own text
# ---------------------------------------------------------------------------------------------

def tiny_gpt_config(vocab_size: int):
    """The blog's tiny GPT: 4 layers of width 128 over 64 tokens, small enough for a laptop CPU."""
    from labcode.model import GPTConfig

    return GPTConfig(vocab_size=vocab_size, context_length=64, emb_dim=128, n_heads=4,
                     n_layers=4, drop_rate=0.1, qkv_bias=False, attention="sdpa")


def text_loaders(text: str, tokenizer, context_length: int, batch_size: int,
                 val_fraction: float = 0.1, seed: int = 123):
    """Split the text 90/10 and make shuffled training and ordered validation loaders."""
    from labcode.data import create_dataloader

    split = int(len(text) * (1 - val_fraction))
    train_loader = create_dataloader(text[:split], batch_size=batch_size,
                                     max_length=context_length, stride=context_length // 2,
                                     shuffle=True, drop_last=True, seed=seed,
                                     tokenizer=tokenizer)
    val_loader = create_dataloader(text[split:], batch_size=batch_size,
                                   max_length=context_length, stride=context_length,
                                   shuffle=False, drop_last=False, seed=seed,
                                   tokenizer=tokenizer)
    return train_loader, val_loader


def tokenizer_to_dict(enc) -> dict:
    """What it takes to rebuild a tiktoken Encoding: its name, split pattern and tables."""
    return {"name": enc.name, "pat_str": enc._pat_str,
            "mergeable_ranks": dict(enc._mergeable_ranks),
            "special_tokens": dict(enc._special_tokens)}


def tokenizer_from_dict(state: dict):
    """Inverse of `tokenizer_to_dict`."""
    import tiktoken

    return tiktoken.Encoding(state["name"], pat_str=state["pat_str"],
                             mergeable_ranks=state["mergeable_ranks"],
                             special_tokens=state["special_tokens"])


@contextmanager
def one_cpu_thread(device):
    """Run a tiny model's CPU work on one thread, then restore the thread count.

    Matrices 128 wide gain little from a second thread; one thread gives the same numbers on
    any machine, and avoids threads spinning against each other on a busy 2-core build.
    """
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _sample(model, enc, prompt: str, max_new_tokens: int, temperature: float,
            top_k: int | None, device) -> str:
    from labcode.generation import generate

    ids = torch.tensor([enc.encode(prompt)], device=device)  # (1, T)
    eos = enc.eot_token if "<|endoftext|>" in enc._special_tokens else None
    out = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                   eos_id=eos)                                 # (1, T + new)
    return enc.decode([i for i in out[0].tolist() if i != eos])


def lr_schedule_plot(steps: int = 1000, warmup_steps: int = 100, peak_lr: float = 6e-4,
                     min_lr: float = 6e-5) -> dict:
    """Plot `lr_at` over a run: the warm-up ramp, then the cosine down to min_lr."""
    import matplotlib.pyplot as plt

    lrs = [lr_at(s, steps, peak_lr, warmup_steps, min_lr) for s in range(steps)]
    fig, ax = plt.subplots()
    ax.plot(range(steps), lrs)
    ax.axvline(warmup_steps, color="grey", linestyle=":", label=f"end of warm-up ({warmup_steps})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Linear warm-up, then cosine decay")
    ax.legend()
    peak_step = min(warmup_steps, steps - 1)
    print(f"step 0: {lrs[0]:.2e}   step {peak_step}: {lrs[peak_step]:.2e}"
          f"   step {steps - 1}: {lrs[-1]:.2e}")
    return {"first_lr": lrs[0], "peak_lr": max(lrs), "peak_step": lrs.index(max(lrs)),
            "last_lr": lrs[-1], "steps": steps, "warmup_steps": warmup_steps}


def train_on_blog(corpus: str = "content/data/corpus.txt",
                  checkpoint: str = ".cache/labs/tiny-gpt.pt", steps: int = 300,
                  vocab_size: int = 512, device: str = "cpu", progress=None,
                  quick: bool = False) -> dict:
    """Train a tiny GPT on the blog's own prose, save it, plot the loss; returns what it measured.

    Our own BPE (`train_bpe`) learns a `vocab_size` vocabulary from the corpus, the model
    trains for `steps` steps (at most 20 when `quick`), and the checkpoint keeps the
    config, the weights, the tokenizer's tables and the history, so `sample_from_checkpoint`
    can rebuild everything. `progress` receives a `TrainProgress` after every step.
    """
    import matplotlib.pyplot as plt

    from labcode.bpe import train_bpe
    from labcode.data import read_text
    from labcode.model import GPTModel

    if quick:
        steps = min(steps, 20)
    torch.manual_seed(123)
    text = read_text(corpus)
    enc = train_bpe(text, vocab_size)
    cfg = tiny_gpt_config(enc.n_vocab)
    train_loader, val_loader = text_loaders(text, enc, cfg.context_length, batch_size=16)
    model = GPTModel(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"corpus: {len(text):,} characters -> {len(train_loader.dataset.token_ids):,} "
          f"training tokens with a {enc.n_vocab}-token BPE")
    print(f"model: {n_params / 1e6:.2f}M parameters, {cfg.n_layers} layers, "
          f"width {cfg.emb_dim}, context {cfg.context_length}")

    with one_cpu_thread(device):
        history = train(model, train_loader, val_loader, steps=steps, lr=2e-3,
                        weight_decay=0.1, warmup_steps=max(1, steps // 20), min_lr=1e-4,
                        grad_clip=1.0, eval_every=max(5, steps // 10), eval_batches=10,
                        device=device, callback=progress)
    val = history.val_loss[-1]
    print(f"after {steps} steps: train loss {history.train_loss[-1]:.2f}, "
          f"val loss {val:.2f} (perplexity {perplexity(val):.1f})")

    path = Path(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(cfg), "model": model.state_dict(),
                "tokenizer": tokenizer_to_dict(enc), "history": asdict(history)}, path)

    fig, ax = plt.subplots()
    ax.plot(history.step, history.train_loss, label="train", alpha=0.7)
    ax.plot(history.val_step, history.val_loss, label="validation", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("A tiny GPT learning the blog's own text")
    ax.legend()
    return {"corpus_chars": len(text), "train_tokens": len(train_loader.dataset.token_ids),
            "vocab_size": enc.n_vocab, "parameters": n_params, "steps": steps,
            "train_loss": history.train_loss[-1], "val_loss": val,
            "val_perplexity": perplexity(val),
            "history": [{"step": s, "val_loss": v}
                        for s, v in zip(history.val_step, history.val_loss)]}


def load_tiny_gpt(checkpoint: str = ".cache/labs/tiny-gpt.pt", device: str = "cpu"):
    """Rebuild (model in eval mode, tokenizer) from a `train_on_blog` checkpoint."""
    from labcode.model import GPTConfig, GPTModel

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: run train_on_blog first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = GPTModel(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), tokenizer_from_dict(state["tokenizer"])


def sample_from_checkpoint(checkpoint: str = ".cache/labs/tiny-gpt.pt",
                           prompt: str = "Attention", max_new_tokens: int = 60,
                           temperature: float = 0.8, top_k: int = 20, num_samples: int = 3,
                           device: str = "cpu") -> dict:
    """Load the tiny GPT and continue `prompt`: greedy once, then `num_samples` sampled."""
    model, enc = load_tiny_gpt(checkpoint, device)
    torch.manual_seed(123)
    with one_cpu_thread(device):
        greedy = _sample(model, enc, prompt, max_new_tokens, 0.0, None, device)
        sampled = [_sample(model, enc, prompt, max_new_tokens, temperature, top_k, device)
                   for _ in range(num_samples)]
    print(f"greedy:\n{greedy}")
    for i, text in enumerate(sampled, start=1):
        print(f"\nsample {i} (temperature {temperature}, top-k {top_k}):\n{text}")
    return {"prompt": prompt, "temperature": temperature, "top_k": top_k,
            "greedy": greedy, "samples": sampled}


# ---------------------------------------------------------------------------------------------
# 7. Command line: the same loop, alone or data-parallel under torchrun
# ---------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    """Train the tiny GPT on a text file; under torchrun every process runs this same code."""
    import argparse

    from labcode.bpe import train_bpe
    from labcode.data import read_text
    from labcode.distributed import cleanup_distributed
    from labcode.model import GPTModel

    parser = argparse.ArgumentParser(
        prog="python -m labcode.training",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a tiny GPT on a text file.\n\nData-parallel (DDP, gloo on CPU, "
                    "NCCL on CUDA):\n  torchrun --nproc_per_node 2 -m labcode.training [options]")
    parser.add_argument("--text", default="content/data/corpus.txt", help="UTF-8 text file")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="global batch, split evenly across processes")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (resumable)")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--compile", action="store_true", help="use torch.compile")
    args = parser.parse_args(argv)

    info = init_distributed(args.device)
    torch.manual_seed(123)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    text = read_text(args.text)
    enc = train_bpe(text, args.vocab_size)
    cfg = tiny_gpt_config(enc.n_vocab)
    train_loader, val_loader = text_loaders(text, enc, cfg.context_length, args.batch_size)

    def report(p: TrainProgress) -> None:
        if p.val_loss is not None or p.step == p.total_steps:
            val = "" if p.val_loss is None else f"  val {p.val_loss:.3f}"
            print(f"step {p.step}/{p.total_steps}  loss {p.loss:.3f}{val}  "
                  f"{p.tokens_per_s:,.0f} tok/s  eta {p.eta_s:.0f}s", flush=True)

    if info.is_main:
        print(f"{info.world_size} process(es), global batch {args.batch_size}", flush=True)
    history = train(GPTModel(cfg), train_loader, val_loader, steps=args.steps, lr=args.lr,
                    warmup_steps=max(1, args.steps // 20), min_lr=args.lr / 20,
                    eval_every=max(1, args.steps // 10), eval_batches=10, device=args.device,
                    checkpoint_path=args.checkpoint, checkpoint_every=max(1, args.steps // 4)
                    if args.checkpoint else None, resume=args.resume, compile=args.compile,
                    callback=report)
    if info.is_main:
        print(f"final val loss {history.val_loss[-1]:.3f}")
    cleanup_distributed()


if __name__ == "__main__":
    main()

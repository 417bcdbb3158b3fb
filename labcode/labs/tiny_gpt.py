"""Labs of the post "Training a tiny GPT on this blog": the learning-rate schedule, the training
run (`labcode.tiny_gpt.train_tiny_gpt` on the blog's own prose) and samples from its checkpoint.
"""
import math
import re
import textwrap

import matplotlib.pyplot as plt
import torch

from labcode.data import corpus_snapshot, read_text
from labcode.device import one_cpu_thread
from labcode.generation import repeating_phrase
from labcode.labs.figures import WIDTH, house_style
from labcode.tiny_gpt import complete, load_tiny_gpt, save_tiny_gpt, train_tiny_gpt
from labcode.training import lr_at, perplexity


def lr_schedule_plot(steps: int = 1000, warmup_steps: int = 100, peak_lr: float = 6e-4,
                     min_lr: float = 6e-5) -> dict:
    """Plot `lr_at` over a run: the warm-up ramp, then the cosine down to min_lr."""
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


def wrap(text: str, width: int = 76) -> str:
    """`text` with each of its lines wrapped at `width` for an output box; its own breaks kept."""
    return "\n".join(textwrap.fill(line, width) if line else "" for line in text.split("\n"))


def train_on_blog(corpus: str = "content/data/corpus.txt",
                  checkpoint: str = ".cache/labs/tiny-gpt.pt", steps: int = 300,
                  vocab_size: int = 512, device: str = "cpu", progress=None,
                  quick: bool = False) -> dict:
    """Train the tiny GPT on the blog's own prose, save it and plot its losses.

    At most 20 steps when `quick`. Returns the sizes and the losses, measured in eval mode on
    all training and all validation windows; `sample_from_checkpoint` loads the saved model.
    """
    steps = min(steps, 20) if quick else steps
    text = read_text(corpus)
    snapshot = corpus_snapshot(corpus, text)
    run = train_tiny_gpt(text, steps=steps, vocab_size=vocab_size, device=device,
                         progress=progress)
    save_tiny_gpt(checkpoint, run)

    cfg, h, loaders = run.model.cfg, run.history, run.loaders
    train_tokens = len(loaders.train.dataset.token_ids)
    parameters = sum(p.numel() for p in run.model.parameters())
    batches = len(loaders.train)
    print(f"corpus: {len(text):,} characters (snapshot {snapshot['digest']} of "
          f"{snapshot['taken']}), a {cfg.vocab_size}-token BPE")
    print(f"tokens: {train_tokens:,} for training, {len(loaders.val.dataset.token_ids):,} "
          "for validation")
    print(f"model: {parameters:,} parameters ({cfg.n_layers} layers, width {cfg.emb_dim}, "
          f"{cfg.n_heads} heads, context {cfg.context_length})")
    print(f"{steps} steps of {run.batch_size} windows: {batches} batches a pass, "
          f"{steps / batches:.1f} passes")
    print(f"first training batch: loss {h.train_loss[0]:.3f} "
          f"(a uniform guess over {cfg.vocab_size} tokens: {math.log(cfg.vocab_size):.3f})")
    print("loss in eval mode, on all training and all validation windows:")
    print(f"{'step':>6}{'train':>8}{'val':>8}")
    for step, tr, va in zip(h.eval_step, h.eval_train_loss, h.eval_val_loss):
        print(f"{step:>6}{tr:>8.3f}{va:>8.3f}")
    print(f"final: val loss {h.eval_val_loss[-1]:.3f} (perplexity "
          f"{perplexity(h.eval_val_loss[-1]):.1f}), train loss {h.eval_train_loss[-1]:.3f}")

    fig, ax = plt.subplots(figsize=(WIDTH, 3.8))
    ax.plot(h.step, h.train_loss, label="training batch (dropout on)", alpha=0.4)
    ax.plot(h.eval_step, h.eval_train_loss, label="training text (eval mode)", marker="o")
    ax.plot(h.eval_step, h.eval_val_loss, label="validation text (eval mode)", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("A tiny GPT learning the blog's own text")
    ax.legend()
    house_style(fig)

    val, tr = h.eval_val_loss[-1], h.eval_train_loss[-1]
    mid = min(range(len(h.eval_step)), key=lambda i: abs(h.eval_step[i] - steps / 2))
    return {
        "corpus": snapshot, "corpus_chars": len(text), "vocab_size": cfg.vocab_size, "train_tokens": train_tokens,
        "val_tokens": len(loaders.val.dataset.token_ids), "parameters": parameters,
        "params_per_token": parameters / train_tokens,
        "layers": cfg.n_layers, "width": cfg.emb_dim, "heads": cfg.n_heads,
        "context": cfg.context_length, "batch_size": run.batch_size,
        "stride": loaders.train.dataset.starts.step, "batches_per_pass": batches,
        "steps": steps, "passes": steps / batches, "peak_lr": run.lr,
        "warmup_steps": run.warmup_steps, "grad_clip": run.grad_clip, "eval_every": h.eval_step[0],
        "uniform_loss": math.log(cfg.vocab_size), "first_batch_loss": h.train_loss[0],
        "last_batch_loss": h.train_loss[-1],
        "history": [{"step": s, "train": t, "val": v}
                    for s, t, v in zip(h.eval_step, h.eval_train_loss, h.eval_val_loss)],
        # the second half of the run: how much each loss still fell after the evaluation nearest
        # to half-way
        "midway": {"step": h.eval_step[mid], "train": h.eval_train_loss[mid],
                   "val": h.eval_val_loss[mid], "train_drop": h.eval_train_loss[mid] - tr,
                   "val_drop": h.eval_val_loss[mid] - val},
        "train_loss": tr, "val_loss": val, "gap": val - tr,
        "val_perplexity": perplexity(val), "train_perplexity": perplexity(tr),
    }


def sample_from_checkpoint(checkpoint: str = ".cache/labs/tiny-gpt.pt",
                           prompt: str = "Attention", max_new_tokens: int = 60,
                           temperature: float = 0.8, top_k: int = 20, num_samples: int = 3,
                           corpus: str = "content/data/corpus.txt", device: str = "cpu") -> dict:
    """Load the tiny GPT and continue `prompt`: greedy once, then `num_samples` sampled.

    Also counts the sampled words that appear nowhere in the training `corpus`: inventions
    assembled from BPE pieces.
    """
    model, enc = load_tiny_gpt(checkpoint, device)
    torch.manual_seed(123)
    with one_cpu_thread(device):
        greedy = complete(model, enc, prompt, max_new_tokens, device=device)
        samples = [complete(model, enc, prompt, max_new_tokens, temperature, top_k, device)
                   for _ in range(num_samples)]
    print(f"greedy:\n{wrap(greedy)}")
    for i, text in enumerate(samples, start=1):
        print(f"\nsample {i} (temperature {temperature}, top-k {top_k}):\n{wrap(text)}")

    def words(text: str) -> list[str]:
        return re.findall(r"[a-z]+", text.lower())

    known = set(words(read_text(corpus)))
    sampled = [w for text in samples for w in words(text)]
    invented = [w for w in sampled if w not in known]
    print(f"\nsampled words not in the training text: {len(invented)} of {len(sampled)}")
    print(wrap(", ".join(sorted(set(invented)))))
    return {"prompt": prompt, "temperature": temperature, "top_k": top_k,
            "greedy": greedy, "samples": samples, "sampled_words": len(sampled),
            "invented_words": len(invented),
            "invented_fraction": len(invented) / max(1, len(sampled)),
            "invented": sorted(set(invented)),
            "longest_invented": sorted(set(invented), key=lambda w: (-len(w), w)),
            "loop": repeating_phrase(greedy)}  # the phrase greedy repeats, and how often

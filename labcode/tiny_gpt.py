"""The blog's tiny GPT: one recipe, shared by the training lab and the command line.

A GPT of 4 layers, width 128 and 4 heads over 64 tokens, with a BPE of our own trained
on the same text, small enough to train on a laptop CPU in a minute:

1. `tiny_gpt_config` and `text_loaders`: the model's sizes, and the text cut 90/10 into
   training and validation windows;
2. `train_tiny_gpt`: the recipe (tokenizer, data, model, `labcode.training.train` with its
   hyper-parameters), returning everything it made;
3. saving the trained model with its tokenizer, loading it again, and sampling from it;
4. the lab entry points the training post runs;
5. the command line, alone or data-parallel:

    python -m labcode.tiny_gpt --text content/data/corpus.txt --steps 300
    torchrun --nproc_per_node 2 -m labcode.tiny_gpt --text content/data/corpus.txt
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import tiktoken
import torch

from labcode.bpe import train_bpe
from labcode.checkpoint import save_atomically
from labcode.data import create_dataloader
from labcode.figures import WIDTH, house_style
from labcode.generation import generate
from labcode.model import GPTConfig, GPTModel
from labcode.training import TrainHistory, perplexity, train


# -- 1. sizes and data -----------------------------------------------------------------

def tiny_gpt_config(vocab_size: int) -> GPTConfig:
    """The blog's tiny GPT: 4 layers of width 128 over 64 tokens, small enough for a laptop CPU."""
    return GPTConfig(vocab_size=vocab_size, context_length=64, emb_dim=128, n_heads=4,
                     n_layers=4, drop_rate=0.1, qkv_bias=False, attention="sdpa")


@dataclass
class TextLoaders:
    """Training batches (shuffled, half-overlapping windows) and two fixed sets to measure on."""

    train: torch.utils.data.DataLoader       # what the optimizer sees
    train_eval: torch.utils.data.DataLoader  # the training text again: ordered, no overlap
    val: torch.utils.data.DataLoader         # the held-out text: ordered, no overlap


def text_loaders(text: str, tokenizer, context_length: int, batch_size: int,
                 val_fraction: float = 0.1, seed: int = 123) -> TextLoaders:
    """Split the text by position (the last `val_fraction` is held out) and make the loaders."""
    split = int(len(text) * (1 - val_fraction))

    def loader(part: str, stride: int, shuffle: bool):
        return create_dataloader(part, batch_size=batch_size, max_length=context_length,
                                 stride=stride, shuffle=shuffle, drop_last=shuffle, seed=seed,
                                 tokenizer=tokenizer)

    return TextLoaders(train=loader(text[:split], context_length // 2, shuffle=True),
                       train_eval=loader(text[:split], context_length, shuffle=False),
                       val=loader(text[split:], context_length, shuffle=False))


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


# -- 2. the recipe ---------------------------------------------------------------------

@dataclass
class TinyGPTRun:
    """What `train_tiny_gpt` made: the model, its tokenizer, the data and what was measured."""

    model: GPTModel
    tokenizer: tiktoken.Encoding
    loaders: TextLoaders
    history: TrainHistory
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    grad_clip: float


def train_tiny_gpt(text: str, steps: int = 300, vocab_size: int = 512, batch_size: int = 16,
                   lr: float = 2e-3, device="cpu", progress=None, checkpoint_path=None,
                   resume: bool = False, compile: bool = False) -> TinyGPTRun:
    """Train the tiny GPT on `text`: our own BPE, then `steps` steps of AdamW.

    Warm-up over the first twentieth of the run, cosine decay to 1e-4, gradients clipped at
    1.0, and every tenth of the run both training and validation text measured in eval mode.
    """
    torch.manual_seed(123)  # same weights on every run (and on every rank under torchrun)
    tokenizer = train_bpe(text, vocab_size)
    cfg = tiny_gpt_config(tokenizer.n_vocab)
    loaders = text_loaders(text, tokenizer, cfg.context_length, batch_size)
    model = GPTModel(cfg)
    warmup_steps, grad_clip = max(1, steps // 20), 1.0
    with one_cpu_thread(device):
        history = train(model, loaders.train, loaders.val, train_eval_loader=loaders.train_eval,
                        steps=steps, lr=lr, weight_decay=0.1, warmup_steps=warmup_steps,
                        min_lr=1e-4, grad_clip=grad_clip, eval_every=max(5, steps // 10),
                        eval_batches=None, device=device, callback=progress,
                        checkpoint_path=checkpoint_path, resume=resume,
                        checkpoint_every=max(1, steps // 4) if checkpoint_path else None,
                        compile=compile)
    return TinyGPTRun(model, tokenizer, loaders, history, steps, batch_size, lr, warmup_steps,
                      grad_clip)


# -- 3. save, load, sample -------------------------------------------------------------

def save_tiny_gpt(path, run: TinyGPTRun) -> None:
    """Save what sampling needs: the config, the weights and the tokenizer's tables."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = run.tokenizer
    tokenizer = {"name": enc.name, "pat_str": enc._pat_str,
                 "mergeable_ranks": dict(enc._mergeable_ranks),
                 "special_tokens": dict(enc._special_tokens)}
    save_atomically({"config": asdict(run.model.cfg), "model": run.model.state_dict(),
                     "tokenizer": tokenizer, "history": asdict(run.history)}, path)


def load_tiny_gpt(checkpoint: str = ".cache/labs/tiny-gpt.pt", device: str = "cpu"):
    """Rebuild (model in eval mode, tokenizer) from a `save_tiny_gpt` file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: run train_on_blog first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = GPTModel(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    t = state["tokenizer"]
    tokenizer = tiktoken.Encoding(t["name"], pat_str=t["pat_str"],
                                  mergeable_ranks=t["mergeable_ranks"],
                                  special_tokens=t["special_tokens"])
    return model.to(device).eval(), tokenizer


def complete(model, enc, prompt: str, max_new_tokens: int, temperature: float = 0.0,
             top_k: int | None = None, device="cpu") -> str:
    """`prompt` and its continuation as text (greedy when temperature is 0)."""
    ids = torch.tensor([enc.encode(prompt)], device=device)  # (1, T)
    eos = enc.eot_token if "<|endoftext|>" in enc.special_tokens_set else None
    out = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k,
                   eos_id=eos)                               # (1, T + new)
    return enc.decode([i for i in out[0].tolist() if i != eos])


def wrap(text: str, width: int = 76) -> str:
    """`text` with each of its lines wrapped at `width` for an output box; its own breaks kept."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) if line else "" for line in text.split("\n"))


# === Lab entry points: the functions the posts run ==================================

def train_on_blog(corpus: str = "content/data/corpus.txt",
                  checkpoint: str = ".cache/labs/tiny-gpt.pt", steps: int = 300,
                  vocab_size: int = 512, device: str = "cpu", progress=None,
                  quick: bool = False) -> dict:
    """Train the tiny GPT on the blog's own prose, save it and plot its losses.

    At most 20 steps when `quick`. Returns the sizes and the losses, measured in eval mode on
    all training and all validation windows; `sample_from_checkpoint` loads the saved model.
    """
    import matplotlib.pyplot as plt

    from labcode.data import corpus_snapshot, read_text

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
    import re

    from labcode.data import read_text
    from labcode.generation import repeating_phrase

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


# -- 5. command line -------------------------------------------------------------------

def main(argv=None) -> None:
    """Train the tiny GPT on a text file; under torchrun every process runs this same code."""
    import argparse

    from labcode.data import read_text
    from labcode.distributed import cleanup_distributed, init_distributed
    from labcode.training import TrainProgress

    parser = argparse.ArgumentParser(
        prog="python -m labcode.tiny_gpt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the blog's tiny GPT on a text file.\n\nData-parallel (DDP, gloo on "
                    "CPU, NCCL on CUDA):\n  torchrun --nproc_per_node 2 -m labcode.tiny_gpt "
                    "[options]")
    parser.add_argument("--text", default="content/data/corpus.txt", help="UTF-8 text file")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="global batch, split evenly across processes")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", default=None,
                        help="training checkpoint (resumable with --resume)")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--save", default=None, help="save the trained model for sampling")
    parser.add_argument("--compile", action="store_true", help="use torch.compile")
    args = parser.parse_args(argv)

    info = init_distributed(args.device)

    def report(p: TrainProgress) -> None:
        if p.val_loss is not None or p.step == p.total_steps:
            val = "" if p.val_loss is None else f"  val {p.val_loss:.3f}"
            print(f"step {p.step}/{p.total_steps}  loss {p.loss:.3f}{val}  "
                  f"{p.tokens_per_s:,.0f} tok/s  eta {p.eta_s:.0f}s", flush=True)

    if info.is_main:
        print(f"{info.world_size} process(es), global batch {args.batch_size}", flush=True)
    run = train_tiny_gpt(read_text(args.text), steps=args.steps, vocab_size=args.vocab_size,
                         batch_size=args.batch_size, lr=args.lr, device=args.device,
                         progress=report, checkpoint_path=args.checkpoint, resume=args.resume,
                         compile=args.compile)
    if info.is_main:
        print(f"final val loss {run.history.eval_val_loss[-1]:.3f}")
        if args.save:
            save_tiny_gpt(args.save, run)
    cleanup_distributed()


if __name__ == "__main__":
    main()

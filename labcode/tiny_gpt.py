"""The blog's tiny GPT: one recipe, shared by the training lab and the command line.

A GPT of 4 layers, width 128 and 4 heads over 64 tokens, with a BPE of our own trained
on the same text, small enough to train on a laptop CPU in a minute:

1. `tiny_gpt_config` and `text_loaders`: the model's sizes, and the text cut 90/10 into
   training and validation windows;
2. `train_tiny_gpt`: the recipe (tokenizer, data, model, `labcode.training.train` with its
   hyper-parameters), returning everything it made;
3. saving the trained model with its tokenizer, loading it again, and sampling from it;
4. the command line, alone or data-parallel:

    python -m labcode.tiny_gpt --text content/data/corpus.txt --steps 300
    torchrun --nproc_per_node 2 -m labcode.tiny_gpt --text content/data/corpus.txt
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import tiktoken
import torch

from labcode.bpe import train_bpe
from labcode.checkpoint import save_atomically
from labcode.data import create_dataloader, read_text
from labcode.device import one_cpu_thread
from labcode.distributed import cleanup_distributed, init_distributed
from labcode.generation import generate
from labcode.model import GPTConfig, GPTModel
from labcode.training import TrainHistory, TrainProgress, train


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


# -- 4. command line -------------------------------------------------------------------

def main(argv=None) -> None:
    """Train the tiny GPT on a text file; under torchrun every process runs this same code."""
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

"""Training throughput: tokens/s on CPU for the blog's tiny GPT, and on CUDA tokens/s and MFU
for GPT-2 124M with bf16 autocast, sdpa attention and torch.compile (SPEC 8: MFU >= 40% on H100).

    .venv/bin/python bench/bench_training.py            # CPU row; CUDA row when a GPU is present
    .venv/bin/python bench/bench_training.py --batch 16 --steps 20

Each row times full optimizer steps (forward, loss, backward, clipping, AdamW) on random
tokens after a few warm-up steps (which also absorb torch.compile's compilation).
MFU (model FLOPs utilisation) = 6 * parameters * tokens/s / peak FLOP/s: a forward and
backward pass costs about 6 FLOPs per parameter per token. Peak: H100 bf16 dense, 989e12.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from labcode.device import autocast, maybe_compile  # noqa: E402
from labcode.model import GPTConfig, GPTModel  # noqa: E402
from labcode.tiny_gpt import tiny_gpt_config  # noqa: E402
from labcode.training import calc_loss_batch, make_optimizer  # noqa: E402

H100_BF16_PEAK = 989e12


def tokens_per_second(cfg, batch: int, device: str, compile: bool, steps: int,
                      warmup: int) -> tuple[float, int]:
    """(training tokens per second, parameter count) over `steps` timed optimizer steps."""
    torch.manual_seed(0)
    model = GPTModel(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, lr=6e-4, weight_decay=0.1)
    net = maybe_compile(model, compile)
    ids = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length + 1), device=device)
    inputs, targets = ids[:, :-1], ids[:, 1:]                      # (B, T) each

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for i in range(warmup + steps):
        if i == warmup:
            sync()
            start = time.perf_counter()
        with autocast(device):
            loss = calc_loss_batch(inputs, targets, net, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    sync()
    return batch * cfg.context_length * steps / (time.perf_counter() - start), n_params


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the CUDA 124M row")
    args = parser.parse_args()

    rows = []
    cfg = tiny_gpt_config(512)
    threads = torch.get_num_threads()
    for n_threads in sorted({1, threads}):  # train_on_blog runs on one thread
        torch.set_num_threads(n_threads)
        tps, n = tokens_per_second(cfg, 16, "cpu", compile=False, steps=args.steps, warmup=3)
        rows.append((f"tiny GPT {n / 1e6:.2f}M, ctx {cfg.context_length}, batch 16",
                     f"cpu fp32, {n_threads} thread(s)", f"{tps:,.0f}", "n/a (no CUDA)"))
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        cfg = GPTConfig.preset("gpt2-small", attention="sdpa", drop_rate=0.0)
        tps, n = tokens_per_second(cfg, args.batch, "cuda", compile=True, steps=args.steps,
                                   warmup=5)
        mfu = 6 * n * tps / H100_BF16_PEAK
        rows.append((f"GPT-2 124M ({n / 1e6:.0f}M), ctx 1024, batch {args.batch}",
                     f"{torch.cuda.get_device_name()} bf16+sdpa+compile", f"{tps:,.0f}",
                     f"{mfu:.1%}"))
    else:
        rows.append(("GPT-2 124M, ctx 1024", "cuda", "n/a (no CUDA)", "n/a (no CUDA)"))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    widths = [max(len(r[i]) for r in rows + [("model", "device", "tokens/s", "MFU")])
              for i in range(4)]
    for row in [("model", "device", "tokens/s", "MFU")] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print("goal (SPEC 8): GPT-2 124M on one H100 at >= 40% MFU (peak 989 TFLOP/s bf16 dense)")


if __name__ == "__main__":
    main()

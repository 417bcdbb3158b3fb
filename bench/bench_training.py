"""Training throughput: tokens/s on CPU for the blog's tiny GPT, labcode against its peers on one
small GPT, and on CUDA tokens/s and MFU for GPT-2 124M with bf16 autocast, sdpa attention and
torch.compile (SPEC 8: MFU >= 40% on H100).

    .venv/bin/python bench/bench_training.py            # every table; CUDA row with a GPU
    .venv/bin/python bench/bench_training.py --part peers --peer-steps 18 --threads 1
    .venv/bin/python bench/bench_training.py --batch 16 --steps 20

Each row times full optimizer steps (forward, loss, backward, clipping, AdamW) on random
tokens after a few warm-up steps (which also absorb torch.compile's compilation).
MFU (model FLOPs utilisation) = 6 * parameters * tokens/s / peak FLOP/s: a forward and
backward pass costs about 6 FLOPs per parameter per token. Peak: H100 bf16 dense, 989e12.

The peer table (SPEC 8: labcode at least nanoGPT's tokens/s on the same model) trains 6 layers
x 384 wide, 6 heads, context 256, batch 8, vocab 50257, dropout 0, fp32 on CPU: labcode's
explicit and sdpa GPTs (loss by calc_loss_batch), its fast GPT (labcode/fast.py, loss by
fast_loss_batch: head and cross-entropy in one step), and the peers' models vendored in bench/peers/
(nanoGPT's model.py, LLMs-from-scratch's chapter 4 GPT), each with the same AdamW (lr 6e-4,
betas 0.9/0.95, weight decay 0.1 on matrices only, as nanoGPT's configure_optimizers), clipping
at 1.0 and the same batches. The models take turns, one step each, the first place rotating, so
a slower or busier moment of the machine falls on all of them; each row is the median step, and
the labcode/peer ratios are also given as the median of step-by-step ratios, steps that ran
moments apart.
nanoGPT ties its output head to its token embedding, LLMs-from-scratch does not: each is
compared with the labcode model of the same shape and parameter count.
"""
import argparse
import os
import statistics
import sys
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from labcode.device import autocast, maybe_compile  # noqa: E402
from labcode.fast import fast_gpt, fast_loss_batch  # noqa: E402
from labcode.model import GPTConfig, GPTModel  # noqa: E402
from labcode.tiny_gpt import tiny_gpt_config  # noqa: E402
from labcode.training import calc_loss_batch, make_optimizer  # noqa: E402
from peer_models import LLMS_FROM_SCRATCH, NANOGPT, load_peer, quietly  # noqa: E402

H100_BF16_PEAK = 989e12
PEER_CFG = GPTConfig(vocab_size=50257, context_length=256, emb_dim=384, n_heads=6, n_layers=6,
                     drop_rate=0.0)
PEER_BATCH = 8


def optimizer_step(model, optimizer, loss) -> None:
    """Backward, clip the gradient norm at 1.0, AdamW: the rest of one training step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


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
        optimizer_step(model, optimizer, loss)
    sync()
    return batch * cfg.context_length * steps / (time.perf_counter() - start), n_params


def peer_models(cfg: GPTConfig) -> list[tuple]:
    """(name, model, loss(inputs, targets)) for each model of the peer table, each from seed 0.

    A peer whose file is not in bench/peers/ is left out with a printed note.
    """
    def labcode_row(name, build, loss=calc_loss_batch):
        torch.manual_seed(0)
        model = build()
        return name, model, lambda inputs, targets: loss(inputs, targets, model, "cpu")

    rows = [labcode_row("labcode explicit", lambda: GPTModel(cfg)),
            labcode_row("labcode sdpa", lambda: GPTModel(replace(cfg, attention="sdpa"))),
            labcode_row("labcode fast", lambda: fast_gpt(cfg), fast_loss_batch),
            labcode_row("labcode fast, tied head", lambda: fast_gpt(cfg, tied_head=True),
                        fast_loss_batch)]
    nanogpt = load_peer(NANOGPT)
    if nanogpt:
        torch.manual_seed(0)
        model = quietly(lambda: nanogpt.GPT(nanogpt.GPTConfig(
            block_size=cfg.context_length, vocab_size=cfg.vocab_size, n_layer=cfg.n_layers,
            n_head=cfg.n_heads, n_embd=cfg.emb_dim, dropout=0.0, bias=True)))
        rows.append(("nanoGPT (tied head)", model,
                     lambda inputs, targets, m=model: m(inputs, targets)[1]))
    llms = load_peer(LLMS_FROM_SCRATCH)
    if llms:
        torch.manual_seed(0)
        model = llms.GPTModel({"vocab_size": cfg.vocab_size, "context_length": cfg.context_length,
                               "emb_dim": cfg.emb_dim, "n_heads": cfg.n_heads,
                               "n_layers": cfg.n_layers, "drop_rate": 0.0, "qkv_bias": True})
        rows.append(("LLMs-from-scratch", model, lambda inputs, targets, m=model: F.cross_entropy(
            m(inputs).flatten(0, 1), targets.flatten())))
    return rows


def interleaved_step_seconds(models, cfg: GPTConfig, batch: int, steps: int,
                             warmup: int) -> dict[str, list[float]]:
    """Seconds of each timed training step of each model; the models take turns step by step."""
    optimizers = {name: make_optimizer(model, lr=6e-4, weight_decay=0.1)
                  for name, model, _ in models}
    seconds = {name: [] for name, _, _ in models}
    g = torch.Generator().manual_seed(0)
    for step in range(warmup + steps):
        ids = torch.randint(0, cfg.vocab_size, (batch, cfg.context_length + 1), generator=g)
        inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()  # (B, T) each
        turn = step % len(models)
        for name, model, loss_of in models[turn:] + models[:turn]:  # each goes first in turn
            start = time.perf_counter()
            optimizer_step(model, optimizers[name], loss_of(inputs, targets))
            if step >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def peer_table(steps: int, warmup: int) -> None:
    """Print labcode's and the peers' training tokens/s on PEER_CFG, from one interleaved run."""
    cfg, batch = PEER_CFG, PEER_BATCH
    models = peer_models(cfg)
    print(f"\ntraining {cfg.n_layers} layers x {cfg.emb_dim}, {cfg.n_heads} heads, context "
          f"{cfg.context_length}, batch {batch}, vocab {cfg.vocab_size}, dropout 0, CPU fp32, "
          f"{torch.get_num_threads()} threads; median of {steps} interleaved steps after {warmup}")
    seconds = interleaved_step_seconds(models, cfg, batch, steps, warmup)
    tokens = batch * cfg.context_length
    tps = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    rows = [(name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M", f"{tps[name]:,.0f}",
             f"{tokens / max(seconds[name]):,.0f}-{tokens / min(seconds[name]):,.0f}")
            for name, model, _ in models]
    print_table(("model", "parameters", "tokens/s", "range"), rows)
    for ours, peer in (("labcode fast, tied head", "nanoGPT (tied head)"),
                       ("labcode fast", "LLMs-from-scratch")):
        if peer in tps:
            # the same step of both took place moments apart: their ratio drifts less with the
            # machine's load than the medians do
            paired = statistics.median(p / o for o, p in zip(seconds[ours], seconds[peer]))
            print(f"{ours} vs {peer} (same shape and parameter count): {tps[ours] / tps[peer]:.2f}x "
                  f"by the medians, {paired:.2f}x by the median of step-by-step ratios")
    print("goal (SPEC 8): labcode at least nanoGPT's tokens/s on the same model, same run")


def print_table(header: tuple, rows: list[tuple]) -> None:
    """Columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("all", "tiny", "peers"), default="all",
                        help="tiny GPT and CUDA rows, the peer table, or both (default)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--batch", type=int, default=16, help="batch size of the CUDA 124M row")
    parser.add_argument("--peer-steps", type=int, default=12,
                        help="timed steps per peer row (a multiple of the row count puts "
                             "each row in each place of the turn equally often)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the peer table (default: torch's)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.part in ("all", "tiny"):
        tiny_and_cuda_rows(args)
    if args.part in ("all", "peers"):
        if args.threads:
            torch.set_num_threads(args.threads)
        peer_table(args.peer_steps, warmup=2)


def tiny_and_cuda_rows(args) -> None:
    """The blog's tiny GPT on 1 and all threads; GPT-2 124M on CUDA when there is a GPU."""
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
    print_table(("model", "device", "tokens/s", "MFU"), rows)
    print("goal (SPEC 8): GPT-2 124M on one H100 at >= 40% MFU (peak 989 TFLOP/s bf16 dense)")


if __name__ == "__main__":
    main()

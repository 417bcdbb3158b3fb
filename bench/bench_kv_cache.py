"""Greedy generation of 256 tokens: with vs without the KV cache (SPEC 8: at least 5x, same
tokens), and labcode's cached generation against LLMs-from-scratch's optimized KV cache on
GPT-2 124M's shape (SPEC 8: at least the peer's tokens/s).

    .venv/bin/python bench/bench_kv_cache.py [--threads N] [--part all|cache|peers] [--rounds R]

Generation at batch 1 is a long chain of small matrix products, so it runs on one
thread by default: extra threads mostly add synchronisation, and on a shared
2-core machine they are badly slowed by other processes.

The peer table loads one set of random weights (GPT-2 124M: 12 layers, 768 wide, 12 heads,
context 1024, vocab 50257, q/k/v biases) into labcode's explicit GPT, its fast twin
(labcode/fast.py) and the model of LLMs-from-scratch's ch04/03_kv-cache/
gpt_with_kv_cache_optimized.py (vendored in bench/peers/; same parameter names as labcode's
but for the `embed.` prefix), so all three should pick the same greedy tokens. Each round runs
each of them once, in turn; a row is the median round. The peer's loop runs the model once
more than tokens it returns (the last token's logits go unused): its own code, timed as is.
"""
import argparse
import copy
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from labcode.fast import make_fast  # noqa: E402
from labcode.generation import generate  # noqa: E402
from labcode.model import GPTConfig, GPTModel  # noqa: E402
from peer_models import LLMS_FROM_SCRATCH_KV, load_peer  # noqa: E402

NEW_TOKENS, PROMPT = 256, 16


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--part", choices=("all", "cache", "peers"), default="all",
                        help="with vs without cache, labcode vs the peer, or both (default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the peer table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32")
    if args.part in ("all", "cache"):
        cache_speedup()
    if args.part in ("all", "peers"):
        peer_table(args.rounds)


def cache_speedup():
    """256 greedy tokens from a small GPT, without and with the KV cache."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50257, context_length=512, emb_dim=256, n_heads=8, n_layers=6,
                    drop_rate=0.0)
    model = GPTModel(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, PROMPT))
    print(f"GPT with emb {cfg.emb_dim}, {cfg.n_layers} layers, {cfg.n_heads} heads, "
          f"vocab {cfg.vocab_size}")
    print(f"prompt {PROMPT} tokens, {NEW_TOKENS} new tokens, greedy")
    generate(model, prompt, 4)  # warm-up

    results = {}
    for use_cache in (False, True):
        start = time.perf_counter()
        results[use_cache] = generate(model, prompt, NEW_TOKENS, use_cache=use_cache)
        results[use_cache, "s"] = time.perf_counter() - start

    print(f"{'path':>10} {'seconds':>8} {'tokens/s':>9}")
    for use_cache, name in ((False, "no cache"), (True, "KV cache")):
        seconds = results[use_cache, "s"]
        print(f"{name:>10} {seconds:>8.2f} {NEW_TOKENS / seconds:>9.1f}")
    print(f"speed-up {results[False, 's'] / results[True, 's']:.1f}x; identical tokens: "
          f"{torch.equal(results[False], results[True])}")
    print("goal (SPEC 8): identical greedy tokens, at least 5x faster")


def peer_table(rounds: int):
    """Cached greedy generation on GPT-2 124M's shape: labcode explicit, labcode fast, the peer."""
    cfg = GPTConfig.preset("gpt2-small", drop_rate=0.0)
    torch.manual_seed(0)
    explicit = GPTModel(cfg).eval()
    fast = make_fast(copy.deepcopy(explicit)).eval()
    runs = {"labcode explicit, KV cache": lambda ids, n: generate(explicit, ids, n),
            "labcode fast, KV cache": lambda ids, n: generate(fast, ids, n)}
    peer = load_peer(LLMS_FROM_SCRATCH_KV)
    if peer:
        theirs = peer.GPTModel({
            "vocab_size": cfg.vocab_size, "context_length": cfg.context_length,
            "emb_dim": cfg.emb_dim, "n_heads": cfg.n_heads, "n_layers": cfg.n_layers,
            "drop_rate": 0.0, "qkv_bias": True}).eval()
        theirs.load_state_dict({k.removeprefix("embed."): v
                                for k, v in explicit.state_dict().items()})
        runs["LLMs-from-scratch optimized KV cache"] = \
            lambda ids, n: peer.generate_text_simple_cached(theirs, ids, n)
    prompt = torch.randint(0, cfg.vocab_size, (1, PROMPT))
    print(f"\nGPT-2 124M shape, random weights; prompt {PROMPT} tokens, {NEW_TOKENS} new tokens, "
          f"greedy; median of {rounds} rounds (each round runs each once, in turn)")
    for run in runs.values():
        run(prompt, 8)  # warm-up

    seconds, tokens = {name: [] for name in runs}, {}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            tokens[name] = runs[name](prompt, NEW_TOKENS)
            seconds[name].append(time.perf_counter() - start)

    reference = tokens[names[0]]
    print(f"{'model':<38} {'tokens/s':>9} {'range':>11}  same tokens as labcode explicit")
    for name in names:
        tps = [NEW_TOKENS / s for s in seconds[name]]
        print(f"{name:<38} {statistics.median(tps):>9.1f} {min(tps):>5.1f}-{max(tps):<5.1f}  "
              f"{torch.equal(tokens[name], reference)}")
    print("goal (SPEC 8): labcode's cached generation at least LLMs-from-scratch's, same run")


if __name__ == "__main__":
    main()

"""Greedy generation of 256 tokens with vs without the KV cache (SPEC 8: at least 5x, same tokens).

    .venv/bin/python bench/bench_kv_cache.py [--threads N]

Generation at batch 1 is a long chain of small matrix products, so it runs on one
thread by default: extra threads mostly add synchronisation, and on a shared
2-core machine they are badly slowed by other processes.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from labcode.generation import generate  # noqa: E402
from labcode.model import GPTConfig, GPTModel  # noqa: E402

NEW_TOKENS, PROMPT = 256, 16


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    torch.set_num_threads(parser.parse_args().threads)
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50257, context_length=512, emb_dim=256, n_heads=8, n_layers=6,
                    drop_rate=0.0)
    model = GPTModel(cfg).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, PROMPT))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32; GPT with emb "
          f"{cfg.emb_dim}, {cfg.n_layers} layers, {cfg.n_heads} heads, vocab {cfg.vocab_size}")
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


if __name__ == "__main__":
    main()

"""Labs of the post "The KV cache, measured": what each step of `labcode.generation.generate`
feeds the model with and without the cache, how long it takes, and the shortcut it does not take.
"""
import itertools
import time

import matplotlib.pyplot as plt
import torch

from labcode.device import one_cpu_thread
from labcode.generation import generate
from labcode.labs.figures import WIDTH, house_style
from labcode.model import GPTConfig, GPTModel


class StepLog:
    """Stands in for a model inside `generate` and logs each step: positions fed, when it ended.

    `prefills` counts new caches, so with `use_cache=True` it is the first prefill plus
    every rebuild after the window slid.
    """

    def __init__(self, model):
        self.model, self.cfg = model, model.cfg
        self.positions, self.ends, self.prefills = [], [], 0

    def new_cache(self):
        self.prefills += 1
        return self.model.new_cache()

    def __call__(self, idx, cache=None):
        logits = self.model(idx, cache=cache)
        if idx.device.type == "cuda":
            torch.cuda.synchronize()  # the step is over when the GPU is done, not when queued
        self.positions.append(idx.shape[1])
        self.ends.append(time.perf_counter())
        return logits


def greedy_with_rolling_cache(model, idx, max_new_tokens: int):
    """The shortcut `generate` does not take: once the cache is full, drop its oldest position.

    Cheap (one position a step, forever) and wrong for a GPT with absolute positions: the kept
    keys and values were computed at other positions, and from a context that has since slid.
    """
    context_length, cache = model.cfg.context_length, None
    for _ in range(max_new_tokens):
        if cache is None:
            cache = model.new_cache()
            logits = model(idx[:, -context_length:], cache=cache)[:, -1, :]
        else:
            if len(cache) == context_length:
                for layer in cache.layers:  # forget the oldest position: (B, nh, C - 1, hs)
                    layer.keys, layer.values = layer.keys[:, :, 1:], layer.values[:, :, 1:]
            logits = model(idx[:, -1:], cache=cache)[:, -1, :]
        idx = torch.cat([idx, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return idx


def kv_cache_measured(max_new_tokens: int = 160, context_length: int = 64, prompt_tokens: int = 8,
                      repeats: int = 3, device: str = "cpu") -> dict:
    """Greedy generation with and without the KV cache, step by step, past the context length.

    A small untrained GPT (4 layers, width 128) on one CPU thread. Returns what each step fed
    the model (exact), the cumulative time at every 16th token (measured: each step's fastest
    of `repeats` runs) and the tokens each way wrote, which must be identical.
    """
    cfg = GPTConfig(vocab_size=512, context_length=context_length, emb_dim=128, n_heads=4,
                    n_layers=4, drop_rate=0.0)
    model = GPTModel(cfg).to(device).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_tokens), device=device)  # (1, P)

    runs = {False: None, True: None}
    with one_cpu_thread(device):
        generate(model, prompt, 4)  # warm-up: first calls pay for allocations
        for _ in range(repeats):
            for use_cache in (False, True):  # alternate, so a busy moment hits both alike
                log = StepLog(model)
                start = time.perf_counter()
                out = generate(log, prompt, max_new_tokens, use_cache=use_cache)
                steps = [b - a for a, b in zip([start] + log.ends, log.ends)]  # s per step
                best = runs[use_cache]
                runs[use_cache] = {"out": out, "positions": log.positions,
                                   "prefills": log.prefills,
                                   "step_s": steps if best is None else
                                   [min(a, b) for a, b in zip(best["step_s"], steps)]}
        rolling = greedy_with_rolling_cache(model, prompt, max_new_tokens)
    for run in runs.values():  # seconds after each token, from each step's fastest time
        run["elapsed"] = list(itertools.accumulate(run["step_s"]))

    plain, cached = runs[False], runs[True]
    # the first `full` steps see the whole sequence (the last of them exactly context_length
    # tokens); every later token is written from a window that has slid, by a rebuilt cache
    full = context_length - prompt_tokens + 1
    past = slice(context_length + 1, None)
    mismatches = int((plain["out"] != cached["out"]).sum())
    mismatches_past = int((plain["out"][:, past] != cached["out"][:, past]).sum())
    rolling_mismatches = int((plain["out"][:, past] != rolling[:, past]).sum())
    tokens_past = plain["out"].shape[1] - context_length - 1
    first_rolling = next((i for i in range(context_length + 1, rolling.shape[1])
                          if rolling[0, i] != plain["out"][0, i]), None)

    print(f"GPT of {cfg.n_layers} layers, width {cfg.emb_dim}, context {context_length}, "
          f"untrained; greedy, {max_new_tokens} tokens after a prompt of {prompt_tokens}")
    print(f"positions computed, all steps: without cache {sum(plain['positions']):,}, "
          f"with cache {sum(cached['positions']):,}")
    print(f"  first {full} steps (window not slid): {sum(plain['positions'][:full]):,} vs "
          f"{sum(cached['positions'][:full]):,}")
    print(f"cache rebuilds after the window slid: {cached['prefills'] - 1}")
    print(f"tokens differing, cache vs no cache: {mismatches} of {cached['out'].numel()} "
          f"({mismatches_past} of the {tokens_past} written after the window slid)")
    print(f"the same {tokens_past}, rolling cache (oldest position dropped) vs no cache: "
          f"{rolling_mismatches} differ")

    steps = range(1, max_new_tokens + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH, 6.4), sharex=True)
    top.plot(steps, plain["elapsed"], label="no cache")
    top.plot(steps, cached["elapsed"], label="KV cache")
    top.set_ylabel("seconds since the start")
    top.set_title(f"cumulative time (each step: fastest of {repeats} runs)")
    bottom.plot(steps, plain["positions"], label="no cache")
    bottom.plot(steps, cached["positions"], label="KV cache", linestyle="--")
    bottom.set_ylabel("positions fed to the model")
    bottom.set_xlabel("tokens generated")
    bottom.set_title("positions fed to the model at each step")
    for ax in (top, bottom):
        ax.axvline(full + 0.5, color="grey", linestyle="--", linewidth=1)
        ax.legend(loc="upper left")
    bottom.annotate("window full: the cache is\nrebuilt at every step",
                    (full + 2, context_length / 2), color="grey")
    fig.suptitle("Greedy generation with and without a KV cache")
    house_style(fig)

    marks = list(range(16, max_new_tokens + 1, 16))

    def ms_per_token(elapsed, first, last):  # mean time of steps first+1 .. last
        return 1000 * (elapsed[last - 1] - elapsed[first - 1]) / (last - first)

    return {
        "new_tokens": max_new_tokens, "context_length": context_length,
        "prompt_tokens": prompt_tokens, "layers": cfg.n_layers, "width": cfg.emb_dim,
        "vocab_size": cfg.vocab_size, "steps_before_slide": full,
        "tokens_past_context": tokens_past,
        "positions_no_cache": sum(plain["positions"]), "positions_cache": sum(cached["positions"]),
        "positions_no_cache_before_slide": sum(plain["positions"][:full]),
        "positions_cache_before_slide": sum(cached["positions"][:full]),
        "positions_ratio_before_slide":
            sum(plain["positions"][:full]) / sum(cached["positions"][:full]),
        "rebuilds": cached["prefills"] - 1, "mismatches": mismatches,
        "mismatches_past_context": mismatches_past, "identical": mismatches == 0,
        "rolling_mismatches_past_context": rolling_mismatches,
        "rolling_first_difference":
            None if first_rolling is None else first_rolling - context_length,
        "token_counts": marks,
        "seconds_no_cache": [plain["elapsed"][n - 1] for n in marks],
        "seconds_cache": [cached["elapsed"][n - 1] for n in marks],
        "speedup_before_slide": plain["elapsed"][full - 1] / cached["elapsed"][full - 1],
        "speedup_total": plain["elapsed"][-1] / cached["elapsed"][-1],
        "ms_per_token_cache_before": ms_per_token(cached["elapsed"], 1, full),
        "ms_per_token_cache_after": ms_per_token(cached["elapsed"], full + 1, max_new_tokens),
        "ms_per_token_no_cache_after": ms_per_token(plain["elapsed"], full + 1, max_new_tokens),
    }

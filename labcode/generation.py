"""Generating text one token at a time, and the KV cache that makes it fast.

Each step runs the model, takes the logits of the last position, picks the next
token (greedy, or sampled with temperature, top-k and top-p), and appends it.

Without a cache every step recomputes the whole sequence. With a KV cache each
attention layer keeps the keys and values of the tokens it has seen, so a step
only computes the one new token. Both paths must give the same tokens.
"""
import itertools
import time

import torch

from labcode.figures import WIDTH, house_style


def top_k_filter(logits, top_k: int):
    """Keep the `top_k` largest logits of each row; set the rest to -inf. logits: (B, V)."""
    top_k = min(top_k, logits.shape[-1])
    kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits, top_p: float):
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability is >= top_p."""
    sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)  # (B, V)
    probs = torch.softmax(sorted_logits, dim=-1)
    # a token is dropped when the tokens before it already reach top_p
    # (the most likely token is always kept)
    drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # (B, V)
    drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits, temperature: float = 0.0, top_k=None, top_p=None):
    """Pick one token per row from last-position logits (B, V) -> (B, 1)."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)  # greedy
    logits = logits / temperature  # < 1 sharpens the distribution, > 1 flattens it
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1)  # (B, 1)


@torch.no_grad()
def generate(model, idx, max_new_tokens: int, temperature: float = 0.0, top_k=None,
             top_p=None, eos_id=None, use_cache: bool = True):
    """Extend ids (B, T) by up to `max_new_tokens` tokens; returns (B, T + new).

    Stops early once every row has produced `eos_id` (rows that finished first are
    padded with `eos_id`). The model sees at most its last `context_length` tokens.
    """
    context_length = model.cfg.context_length
    done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)  # (B,)
    cache = None

    for step in range(max_new_tokens):
        window = idx[:, -context_length:]  # what the model may see
        if not use_cache:
            logits = model(window)[:, -1, :]  # recompute everything: (B, V)
        elif cache is None or len(cache) == context_length:
            # first step, or the cache is full: the window has slid, every position
            # changed, so the cache is rebuilt from the cropped window ("prefill")
            cache = model.new_cache()
            logits = model(window, cache=cache)[:, -1, :]
        else:
            logits = model(idx[:, -1:], cache=cache)[:, -1, :]  # only the newest token

        token = next_token(logits, temperature, top_k, top_p)  # (B, 1)
        if eos_id is not None:
            token = token.masked_fill(done.unsqueeze(1), eos_id)  # finished rows stay at eos
            done = done | (token.squeeze(1) == eos_id)
        idx = torch.cat([idx, token], dim=1)  # (B, T + step + 1)
        if eos_id is not None and done.all():
            break
    return idx


def repeating_phrase(text: str, max_words: int = 8) -> dict:
    """The loop greedy decoding falls into: the run of words repeated back to back that covers
    the most text (the shorter run on a tie), and how many times in a row it comes.

    "a b, a b, a b, c" -> {"phrase": "a b", "repeats": 3}; text with no repeat -> repeats 1.
    """
    words = text.split()
    best = (1, 0, [])  # (words covered, -length, unit)
    for length in range(1, max_words + 1):
        for start in range(len(words) - 2 * length + 1):
            unit, repeats = words[start:start + length], 1
            while words[start + repeats * length:start + (repeats + 1) * length] == unit:
                repeats += 1
            if repeats > 1 and (repeats * length, -length) > best[:2]:
                best = (repeats * length, -length, unit)
    covered, negative_length, unit = best
    return {"phrase": " ".join(unit).strip(" ,.;:"),
            "repeats": covered // -negative_length if unit else 1}


# === Lab entry points: the functions the posts run ==================================

def untrained_text_demo(prompt: str = "The next token is", max_new_tokens: int = 15,
                        device: str = "cpu") -> dict:
    """What an untrained GPT with GPT-2's vocabulary writes after `prompt`: greedy, then sampled."""
    from labcode.model import UNTRAINED_TINY, GPTModel
    from labcode.tokenizer import gpt2_tokenizer

    enc = gpt2_tokenizer()
    torch.manual_seed(123)
    model = GPTModel(UNTRAINED_TINY).to(device).eval()
    ids = torch.tensor([enc.encode(prompt)], device=device)  # (1, T)
    greedy = enc.decode(generate(model, ids, max_new_tokens)[0, ids.shape[1]:].tolist())
    sampled = enc.decode(generate(model, ids, max_new_tokens, temperature=1.0)[0, ids.shape[1]:]
                         .tolist())
    # unwrapped: the page wraps long lines itself
    print(f"prompt:  {prompt}")
    for label, text in (("greedy:", greedy), ("sampled:", sampled)):
        print(f"{label:<9}{prompt + text}")
    return {"prompt": prompt, "greedy": greedy, "sampled": sampled}


def kv_cache_demo(max_new_tokens: int = 64, device: str = "cpu") -> dict:
    """Time greedy generation with and without the KV cache on a small untrained GPT.

    The timings are measurements (they change from run to run), so they are returned, not printed.
    """
    from labcode.model import GPTConfig, GPTModel

    torch.manual_seed(123)
    cfg = GPTConfig(vocab_size=1000, context_length=256, emb_dim=128, n_heads=4,
                    n_layers=4, drop_rate=0.0)
    model = GPTModel(cfg).to(device).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8), device=device)
    generate(model, prompt, 2)  # warm-up, so neither timing pays for first-call set-up

    seconds, outputs = {}, {}
    for use_cache in (False, True):
        start = time.perf_counter()
        outputs[use_cache] = generate(model, prompt, max_new_tokens, use_cache=use_cache)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        seconds[use_cache] = time.perf_counter() - start
    identical = torch.equal(outputs[False], outputs[True])
    print(f"{max_new_tokens} new tokens after a prompt of {prompt.shape[1]}, greedy")
    print(f"identical tokens with and without the cache: {identical}")
    return {"new_tokens": max_new_tokens, "prompt_tokens": prompt.shape[1], "identical": identical,
            "layers": cfg.n_layers, "width": cfg.emb_dim,
            "seconds_no_cache": seconds[False], "seconds_cache": seconds[True],
            "speedup": seconds[False] / seconds[True]}


# -- decoding, on one distribution and on the tiny GPT (the decoding post) ----------

def decoding_distribution_demo(temperatures=(0.5, 1.0, 2.0), top_k: int = 3, top_p: float = 0.9,
                               device: str = "cpu") -> dict:
    """One hand-made next-token distribution, reshaped by temperature and cut by top-k and top-p.

    The filters are the ones `next_token` uses, applied in its order: temperature first,
    then top-k, then top-p (so the nucleus depends on the temperature; the top k do not).
    """
    import math

    import matplotlib.pyplot as plt

    prompt = "The model predicts the next"
    tokens = [" token", " word", " step", " layer", " value", " sentence", " byte",
              "<|endoftext|>"]
    logits = torch.tensor([[3.0, 2.2, 1.3, 0.9, 0.5, 0.3, 0.0, -1.0]], device=device)  # (1, V)

    def kept(filtered):  # which entries a filter left finite, as a list of bools
        return torch.isfinite(filtered)[0].tolist()

    def entropy(probs):  # in nats
        return -sum(p * math.log(p) for p in probs if p > 0)

    base = torch.softmax(logits, dim=-1)[0].tolist()  # temperature 1
    by_temperature = []
    for t in temperatures:
        probs = torch.softmax(logits / t, dim=-1)[0].tolist()
        in_nucleus = kept(top_p_filter(logits / t, top_p))
        by_temperature.append({"temperature": t, "top_prob": probs[0],
                               "endoftext_prob": probs[-1], "entropy": entropy(probs),
                               "nucleus_size": sum(in_nucleus), "probs": probs})
    in_top_k = kept(top_k_filter(logits, top_k))
    in_top_p = kept(top_p_filter(logits, top_p))
    n_p = sum(in_top_p)

    def renormalised(keep):  # what sampling sees after a filter: the kept mass rescaled to 1
        mass = sum(p for p, k in zip(base, keep) if k)
        return [p / mass if k else 0.0 for p, k in zip(base, keep)]

    # narrow columns, the filters before the temperatures, so a phone shows them
    print(f'next token after "{prompt}"')
    print(f"{len(tokens)} hand-made logits; top-p with p = {top_p:g}")
    header = "".join(f"{'τ ' + format(t, 'g'):>7}" for t in temperatures)
    print(f"{'token':<15}{'logit':>6}{'top-' + str(top_k):>6}{'top-p':>6}{header}")
    for i, tok in enumerate(tokens):
        row = "".join(f"{r['probs'][i]:>7.3f}" for r in by_temperature)
        print(f"{repr(tok):<15}{logits[0, i].item():>6.1f}"
              f"{'kept' if in_top_k[i] else '-':>6}{'kept' if in_top_p[i] else '-':>6}{row}")
    print(f"{'entropy (nats)':<33}" + "".join(f"{r['entropy']:>7.2f}" for r in by_temperature))
    print(f"{'top-p ' + format(top_p, 'g') + ' keeps':<33}"
          + "".join(f"{r['nucleus_size']:>7}" for r in by_temperature))

    labels = [repr(t).strip("'") for t in tokens]
    # panels stacked, one token axis at the bottom, so the figure stays readable on a phone
    fig, axes = plt.subplots(len(temperatures), 1, figsize=(WIDTH, 2.2 * len(temperatures) + 1.4),
                             sharex=True, sharey=True)
    for ax, r in zip(axes, by_temperature):
        ax.bar(range(len(tokens)), r["probs"], color="tab:blue")
        ax.set_title(f"temperature {r['temperature']:g}")
        ax.set_ylabel("probability")
    axes[-1].set_xticks(range(len(tokens)), labels, rotation=60, ha="right")
    fig.suptitle("Temperature divides the logits\nbefore the softmax")
    house_style(fig)

    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 5.8), sharex=True, sharey=True)
    for ax, keep, title in ((axes[0], in_top_k, f"top-k, k = {top_k}"),
                            (axes[1], in_top_p, f"top-p, p = {top_p:g}")):
        ax.bar(range(len(tokens)), base, color="lightgrey", label="temperature 1")
        ax.bar(range(len(tokens)), renormalised(keep), color="tab:orange", width=0.5,
               label="kept, renormalised")
        ax.set_title(title)
        ax.set_ylabel("probability")
    axes[-1].set_xticks(range(len(tokens)), labels, rotation=60, ha="right")
    axes[0].legend()
    fig.suptitle("What top-k and top-p leave for the sampler\n(temperature 1)")
    house_style(fig)

    sorted_base = sorted(base, reverse=True)
    return {
        "prompt": prompt, "tokens": tokens, "logits": logits[0].tolist(), "probs": base,
        "greedy": tokens[int(logits.argmax())], "by_temperature": by_temperature,
        "top_k": top_k, "top_k_kept": [t for t, k in zip(tokens, in_top_k) if k],
        "top_k_mass": sum(p for p, k in zip(base, in_top_k) if k),
        "top_k_first_prob": renormalised(in_top_k)[0],
        "top_p": top_p, "top_p_kept": [t for t, k in zip(tokens, in_top_p) if k],
        "top_p_kept_count": n_p,
        # the nucleus is the smallest prefix of the sorted distribution whose mass reaches p
        "top_p_mass": sum(sorted_base[:n_p]), "top_p_mass_one_fewer": sum(sorted_base[:n_p - 1]),
        "top_p_first_prob": renormalised(in_top_p)[0],
    }


def _text_log_probs(model, ids, start: int):
    """Log-probability the model (at temperature 1) gave each token of ids[:, start:]: (B, N)."""
    logits = model(ids[:, :-1])[:, start - 1:, :]  # (B, N, V): the prediction for each new token
    return torch.log_softmax(logits, dim=-1).gather(-1, ids[:, start:, None])[..., 0]


def decoding_on_tiny_gpt(checkpoint: str = ".cache/labs/tiny-gpt.pt", prompt: str = "The model",
                         max_new_tokens: int = 40, num_samples: int = 4, top_k: int = 10,
                         top_p: float = 0.8, device: str = "cpu") -> dict:
    """Continue one prompt with the blog's tiny GPT under six decoding settings, same seed each.

    For each setting: how many of the `num_samples` continuations differ, how repetitive they
    are (distinct tokens per token written), and the model's own loss on what it wrote.
    """
    import statistics

    from labcode.tiny_gpt import load_tiny_gpt, one_cpu_thread

    model, enc = load_tiny_gpt(checkpoint, device)
    settings = [  # (short name, label, temperature, top-k, top-p)
        ("greedy", "greedy", 0.0, None, None), ("cool", "temperature 0.5", 0.5, None, None),
        ("plain", "temperature 1", 1.0, None, None),
        ("top_k", f"temperature 1, top-k {top_k}", 1.0, top_k, None),
        ("top_p", f"temperature 1, top-p {top_p:g}", 1.0, None, top_p),
        ("hot", "temperature 1.5", 1.5, None, None)]
    ids = torch.tensor([enc.encode(prompt)] * num_samples, device=device)  # (S, T)
    start = ids.shape[1]
    assert start + max_new_tokens <= model.cfg.context_length, "keep the text inside one window"

    rows, firsts = [], []  # firsts: the new tokens of each setting's first sample
    with one_cpu_thread(device):
        for name, label, temperature, k, p in settings:
            torch.manual_seed(123)  # every setting draws from the same random numbers
            out = generate(model, ids, max_new_tokens, temperature, k, p)  # (S, T + N), no eos
            new = out[:, start:].tolist()
            firsts.append(new[0])
            loss = -_text_log_probs(model, out, start).mean().item()
            row = {"name": name, "setting": label, "temperature": temperature,
                   "distinct_samples": len({tuple(r) for r in new}),
                   "distinct_token_share": statistics.mean(len(set(r)) / len(r) for r in new),
                   "own_loss": loss, "text": enc.decode(out[0].tolist())}
            row["loop"] = repeating_phrase(row["text"])  # the phrase it repeats, if it does
            if p is not None:  # how many tokens the nucleus held at each step of the first sample
                logits = model(out[:1, :-1])[0, start - 1:, :] / temperature  # (N, V)
                sizes = torch.isfinite(top_p_filter(logits, p)).sum(dim=-1).tolist()
                row.update(nucleus_min=min(sizes), nucleus_median=statistics.median(sizes),
                           nucleus_max=max(sizes))
            rows.append(row)
    for row, first in zip(rows, firsts):  # new tokens shared with plain sampling's first sample
        row["shared_with_plain"] = next((i for i, (a, b) in enumerate(zip(first, firsts[2]))
                                         if a != b), max_new_tokens)

    for row in rows:
        print(f"{row['setting']}: {row['distinct_samples']} different of {num_samples}, "
              f"distinct tokens {row['distinct_token_share']:.0%}, own loss {row['own_loss']:.2f}")
        print(row["text"].replace("\n", " "), end="\n\n")  # the page wraps it
    nucleus = rows[4]
    print(f"top-p {top_p:g} kept between {nucleus['nucleus_min']} and {nucleus['nucleus_max']} "
          f"tokens a step (median {nucleus['nucleus_median']:g}); top-k keeps {top_k} every step")
    return {"prompt": prompt, "new_tokens": max_new_tokens, "num_samples": num_samples,
            "vocab_size": model.cfg.vocab_size, "top_k": top_k, "top_p": top_p,
            "settings": rows, **{r["name"]: r for r in rows}}


def stop_at_end_of_text(checkpoint: str = ".cache/labs/tiny-gpt.pt", prompt: str = "Attention",
                        max_new_tokens: int = 40, num_samples: int = 4, temperature: float = 1.0,
                        top_k: int = 20, stop: str = ".",
                        corpus: str = "content/data/corpus.txt", device: str = "cpu") -> dict:
    """Stopping with `eos_id`: first with `<|endoftext|>`, then with a token the model does write.

    The tiny GPT saw `<|endoftext|>` almost never, so it almost never writes it; the same
    `eos_id` mechanism with `stop` (a full stop) as the end token shows rows finishing at
    different lengths, and the finished rows padded with it.
    """
    from labcode.data import read_text
    from labcode.tiny_gpt import load_tiny_gpt, one_cpu_thread

    model, enc = load_tiny_gpt(checkpoint, device)
    eot = enc.eot_token
    corpus_ids = enc.encode(read_text(corpus), allowed_special="all")
    ids = torch.tensor([enc.encode(prompt)] * num_samples, device=device)  # (S, T)
    start = ids.shape[1]
    stop_ids = enc.encode(stop)
    assert len(stop_ids) == 1, f"{stop!r} must be one token"
    stop_id = stop_ids[0]

    with one_cpu_thread(device):
        torch.manual_seed(123)
        with_eot = generate(model, ids, max_new_tokens, temperature, top_k, eos_id=eot)
        # how likely <|endoftext|> was at each step of what was written (temperature 1, no top-k)
        logits = model(with_eot[:, :-1])[:, start - 1:, :]  # (S, N, V)
        p_eot = torch.softmax(logits, dim=-1)[..., eot]  # (S, N)
        torch.manual_seed(123)
        stopped = generate(model, ids, max_new_tokens, temperature, top_k, eos_id=stop_id)
        torch.manual_seed(123)
        unstopped = generate(model, ids, max_new_tokens, temperature, top_k)  # no eos_id

    def length(row):  # tokens written up to and including the first stop token
        new = row[start:]
        return new.index(stop_id) + 1 if stop_id in new else len(new)

    rows = stopped.tolist()
    lengths = [length(r) for r in rows]
    same_prefix = all(s[:start + n] == u[:start + n]
                      for s, u, n in zip(rows, unstopped.tolist(), lengths))
    first = min(range(num_samples), key=lambda i: lengths[i])
    eot_rows = sum(eot in r[start:] for r in with_eot.tolist())

    print(f"<|endoftext|> (id {eot}) in the training text: {corpus_ids.count(eot)} of "
          f"{len(corpus_ids):,} tokens")
    print(f"samples that wrote it, eos_id={eot}: {eot_rows} of {num_samples}; its probability "
          f"along them: mean {p_eot.mean().item():.1e}, max {p_eot.max().item():.1e}")
    print(f"\nthe same seed with eos_id={stop_id} ({stop!r}):")
    for i, (row, n) in enumerate(zip(rows, lengths), start=1):
        print(f"{i}. [{n} token{'s' * (n != 1)}] {enc.decode(row[:start + n])}")
    print(f"\nall rows ran {stopped.shape[1] - start} steps: the loop ends when the last row stops")
    padding = rows[first][start + lengths[first]:]
    print(f"row {first + 1} after its stop: {len(padding)} more ids, "
          f"{'all ' + str(stop_id) if set(padding) == {stop_id} else padding}")
    print(f"identical to the run without eos_id up to each stop: {same_prefix}")
    return {"eot_id": eot, "eot_in_corpus": corpus_ids.count(eot), "corpus_tokens": len(corpus_ids),
            "eot_rows": eot_rows, "eot_prob_mean": p_eot.mean().item(),
            "eot_prob_max": p_eot.max().item(), "uniform_prob": 1 / model.cfg.vocab_size,
            "stop_id": stop_id, "lengths": lengths, "shortest": min(lengths),
            "longest": max(lengths), "steps_run": stopped.shape[1] - start,
            "padding": len(padding), "same_prefix": same_prefix,
            "num_samples": num_samples, "max_new_tokens": max_new_tokens}


# -- the KV cache, measured (the KV-cache post) --------------------------------------

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
    import matplotlib.pyplot as plt

    from labcode.model import GPTConfig, GPTModel
    from labcode.tiny_gpt import one_cpu_thread

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

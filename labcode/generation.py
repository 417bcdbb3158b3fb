"""Generating text one token at a time, and the KV cache that makes it fast.

Each step runs the model, takes the logits of the last position, picks the next
token (greedy, or sampled with temperature, top-k and top-p), and appends it.

Without a cache every step recomputes the whole sequence. With a KV cache each
attention layer keeps the keys and values of the tokens it has seen, so a step
only computes the one new token. Both paths must give the same tokens.
"""
import time

import torch


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
    import textwrap

    print(f"prompt:  {prompt}")
    for label, text in (("greedy:", greedy), ("sampled:", sampled)):
        print(textwrap.fill(prompt + text, 76, initial_indent=f"{label:<9}",
                            subsequent_indent=" " * 9))
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

"""Generating text one token at a time, and the KV cache that makes it fast.

Each step runs the model, takes the logits of the last position, picks the next
token (greedy, or sampled with temperature, top-k and top-p), and appends it.

Without a cache every step recomputes the whole sequence. With a KV cache each
attention layer keeps the keys and values of the tokens it has seen, so a step
only computes the one new token. Both paths must give the same tokens.
"""
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

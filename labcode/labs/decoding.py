"""Labs of the post "Decoding: greedy, temperature, top-k, top-p and end of text": the filters of
`labcode.generation` on one hand-made distribution, then on the blog's tiny GPT.
"""
import math
import statistics

import matplotlib.pyplot as plt
import torch

from labcode.data import read_text
from labcode.device import one_cpu_thread
from labcode.generation import generate, repeating_phrase, top_k_filter, top_p_filter
from labcode.labs.figures import WIDTH, house_style
from labcode.tiny_gpt import load_tiny_gpt


def decoding_distribution_demo(temperatures=(0.5, 1.0, 2.0), top_k: int = 3, top_p: float = 0.9,
                               device: str = "cpu") -> dict:
    """One hand-made next-token distribution, reshaped by temperature and cut by top-k and top-p.

    The filters are the ones `next_token` uses, applied in its order: temperature first,
    then top-k, then top-p (so the nucleus depends on the temperature; the top k do not).
    """
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

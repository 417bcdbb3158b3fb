"""Labs of the post "The training loop's extras", one lab each: warm-up, gradient clipping,
which parameters weight decay touches, and a checkpoint that resumes a run exactly.

They train a 2-layer GPT of width 64 on the blog's corpus as bytes (`tiny_byte_setup`), with
`labcode.training`'s loop or, where a lab must see inside a step, the same loop written out.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from labcode.checkpoint import BatchStream, save_atomically
from labcode.data import create_dataloader, read_text
from labcode.device import one_cpu_thread
from labcode.labs.figures import WIDTH, house_style
from labcode.model import GPTConfig, GPTModel
from labcode.training import calc_loss_batch, lr_at, make_optimizer, train


class ByteTokens:
    """The simplest tokenizer: one token per UTF-8 byte, a vocabulary of 256."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def tiny_byte_setup(corpus: str, chars: int, context_length: int = 32, batch_size: int = 8,
                    drop_rate: float = 0.0):
    """A shuffled loader over the first `chars` characters of `corpus` as bytes, and a config
    for a 2-layer GPT of width 64 over them."""
    text = read_text(corpus)[:chars]
    loader = create_dataloader(text, batch_size=batch_size, max_length=context_length,
                               stride=context_length, shuffle=True, seed=123,
                               tokenizer=ByteTokens())
    cfg = GPTConfig(vocab_size=256, context_length=context_length, emb_dim=64, n_heads=4,
                    n_layers=2, drop_rate=drop_rate, qkv_bias=False)
    return loader, cfg


def warmup_or_not(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 60,
                  peak_lrs: tuple = (1e-2, 1e-1), warmup_steps: int = 10,
                  device: str = "cpu") -> dict:
    """The same model from the same start, trained with a warm-up and without, at two peaks.

    No gradient clipping in any run, so the warm-up is the only thing between a large
    learning rate and the first updates.
    """
    _, cfg = tiny_byte_setup(corpus, chars)
    fig, axes = plt.subplots(len(peak_lrs), 1, figsize=(WIDTH, 2.8 * len(peak_lrs) + 0.4), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    out, early = {}, slice(0, 2 * warmup_steps)
    # a table narrow enough for a phone: worst loss of the first 2W steps, mean of the last 10
    print(f"{'peak lr':>7}  {'warm-up':>7}  {'worst, steps 1-' + str(2 * warmup_steps):>17}  {'mean, last 10':>13}")
    for ax, peak_lr in zip(axes, peak_lrs):
        for key, warm in (("warm", warmup_steps), ("cold", 0)):
            loader, _ = tiny_byte_setup(corpus, chars)  # the same batches in the same order
            torch.manual_seed(0)                        # and the same initial weights
            with one_cpu_thread(device):
                losses = train(GPTModel(cfg), loader, steps=steps, lr=peak_lr, warmup_steps=warm,
                               grad_clip=None, device=device).train_loss
            ax.plot(range(1, steps + 1), losses,
                    label=f"{warm} warm-up steps" if warm else "no warm-up")
            result = {"worst_early": max(losses[early]), "final": sum(losses[-10:]) / 10,
                      "worst_step": losses.index(max(losses[1:])) + 1}
            out[f"{key}_{peak_lr:g}"] = result
            print(f"{peak_lr:7g}  {warm:7d}  {result['worst_early']:17.3f}  {result['final']:13.3f}")
        ax.set_title(f"peak learning rate {peak_lr:g}")
        ax.set_ylabel("training loss (one batch)")
    axes[-1].set_xlabel("optimizer step")
    axes[0].legend()
    fig.suptitle("The same runs with and without warm-up")
    house_style(fig)
    out["first_loss"] = losses[0]
    out["unigram_entropy"] = byte_entropy(read_text(corpus)[:chars])
    print(f"a model that knows only byte frequencies: {out['unigram_entropy']:.3f} nats")
    return out


def byte_entropy(text: str) -> float:
    """The entropy, in nats, of the text's byte frequencies: the loss of the best model that
    ignores order."""
    data = text.encode("utf-8")
    counts = torch.bincount(torch.tensor(list(data)), minlength=256).double()
    p = counts[counts > 0] / len(data)
    return float(-(p * p.log()).sum())


def gradient_norms(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 80,
                   lr: float = 3e-3, warmup_steps: int = 8, clip: float = 1.0,
                   device: str = "cpu") -> dict:
    """The global gradient norm at every step, before clipping, against the clip line.

    The loop is `train`'s, written out so that it can keep what `clip_grad_norm_` returns:
    the norm of all gradients taken together, measured before it scales them down.
    """
    loader, cfg = tiny_byte_setup(corpus, chars)
    torch.manual_seed(0)
    model = GPTModel(cfg).to(device).train()
    optimizer = make_optimizer(model, lr, weight_decay=0.1)
    stream, norms = BatchStream(loader), []
    with one_cpu_thread(device):  # a model this small runs best on one thread
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup_steps, lr / 10)
            inputs, targets = next(stream)
            loss = calc_loss_batch(inputs, targets, model, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # norm BEFORE clipping
            norms.append(norm.item())
            optimizer.step()
    clipped = [n > clip for n in norms]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    ax.plot(range(1, steps + 1), norms, label="gradient norm before clipping")
    ax.axhline(clip, color="grey", linestyle="--", label=f"clip at {clip:g}")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("global gradient norm")
    ax.set_title("Gradient norm at every step, before clipping")
    ax.legend()
    house_style(fig)
    later = sorted(norms[steps // 2:])
    out = {"first_norm": norms[0], "max_norm": max(norms), "max_step": norms.index(max(norms)) + 1,
           "median_second_half": later[len(later) // 2], "clipped_steps": sum(clipped),
           "clipped_first_10": sum(clipped[:10]), "steps": steps,
           "last_clipped_step": max((i + 1 for i, c in enumerate(clipped) if c), default=0)}
    print(f"clipped on {out['clipped_steps']} of {steps} steps ({out['clipped_first_10']} of the first 10)")
    print(f"last clipped step: {out['last_clipped_step']}")
    return out


def weight_decay_groups(emb_dim: int = 64, n_layers: int = 2) -> dict:
    """Which parameters `make_optimizer` decays: every tensor of a small GPT, by kind."""
    model = GPTModel(GPTConfig(vocab_size=256, context_length=32, emb_dim=emb_dim, n_heads=4,
                               n_layers=n_layers, qkv_bias=True))
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    rows = [{"parameter": name, "shape": "x".join(map(str, p.shape)),
             "weight_decay": decay_of[id(p)], "numbers": p.numel()}
            for name, p in model.named_parameters()
            if not name.startswith("trf_blocks.") or name.startswith("trf_blocks.0.")]
    counts = {"decayed": [0, 0], "not_decayed": [0, 0]}
    for p in model.parameters():
        c = counts["decayed" if decay_of[id(p)] > 0 else "not_decayed"]
        c[0], c[1] = c[0] + 1, c[1] + p.numel()
    total = sum(p.numel() for p in model.parameters())
    print(f"{counts['decayed'][0]} tensors decay ({counts['decayed'][1]:,} numbers)")
    print(f"{counts['not_decayed'][0]} do not ({counts['not_decayed'][1]:,} numbers)")
    return {"rows": rows, "decayed_tensors": counts["decayed"][0],
            "decayed_numbers": counts["decayed"][1],
            "plain_tensors": counts["not_decayed"][0], "plain_numbers": counts["not_decayed"][1],
            "plain_share": counts["not_decayed"][1] / total, "total_numbers": total}


def exact_resume(corpus: str = "content/data/corpus.txt", chars: int = 20000, steps: int = 40,
                 lr: float = 3e-3, checkpoint: str = ".cache/labs/resume-demo.pt",
                 device: str = "cpu") -> dict:
    """Train `steps` steps in one go; then half, save, resume into a new model, the other half.

    Dropout is on and the loader shuffles, so the random state matters as much as the weights.
    A third run resumes from a checkpoint whose optimizer state (AdamW's moments) was dropped.
    """
    _, cfg = tiny_byte_setup(corpus, chars, drop_rate=0.1)
    settings = dict(steps=steps, lr=lr, warmup_steps=steps // 10, grad_clip=1.0, device=device)

    def fresh_model(seed):
        torch.manual_seed(seed)
        return GPTModel(cfg)

    def loader():  # a new loader each run: its shuffle generator starts from the same seed
        return tiny_byte_setup(corpus, chars, drop_rate=0.1)[0]

    def max_diff(a, b):
        return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))

    with one_cpu_thread(device):  # a model this small runs best on one thread
        whole = fresh_model(0)
        whole_history = train(whole, loader(), **settings)

        Path(checkpoint).unlink(missing_ok=True)
        train(fresh_model(0), loader(), checkpoint_path=checkpoint, stop_after=steps // 2, **settings)
        resumed = fresh_model(1)  # other initial weights: the checkpoint must overwrite them all
        resumed_history = train(resumed, loader(), checkpoint_path=checkpoint, resume=True,
                                **settings)

        Path(checkpoint).unlink()
        train(fresh_model(0), loader(), checkpoint_path=checkpoint, stop_after=steps // 2, **settings)
        state = torch.load(checkpoint, weights_only=False)
        state["optimizer"]["state"] = {}  # forget AdamW's running moments
        save_atomically(state, checkpoint)
        forgetful = fresh_model(1)
        forgetful_history = train(forgetful, loader(), checkpoint_path=checkpoint, resume=True,
                                  **settings)

    out = {"steps": steps, "half": steps // 2,
           "whole_final_loss": whole_history.train_loss[-1],
           "resumed_final_loss": resumed_history.train_loss[-1],
           "resumed_max_weight_diff": max_diff(whole, resumed),
           "identical_losses": whole_history.train_loss == resumed_history.train_loss,
           "forgetful_final_loss": forgetful_history.train_loss[-1],
           "forgetful_max_weight_diff": max_diff(whole, forgetful)}
    # max weight diff: the largest |difference| of any weight from the run in one go
    print(f"{'':<17}  {'final loss':>10}  {'max weight diff':>15}")
    print(f"{'in one go':<17}  {out['whole_final_loss']:10.6f}")
    print(f"{'saved, resumed':<17}  {out['resumed_final_loss']:10.6f}  {out['resumed_max_weight_diff']:15.3g}")
    print(f"{'resumed, no AdamW':<17}  {out['forgetful_final_loss']:10.6f}  "
          f"{out['forgetful_max_weight_diff']:15.3g}")
    return out

"""Labs of the post "Why the last token": which positions of a causal GPT see a change in the
text, and the classification fine-tuning run with its scores read at the last real token, as a
mean over the real tokens, and at the last row of a padded batch.
"""
import torch

from labcode.classifier import (
    POOLS,
    accuracy,
    add_classification_head,
    classification_data,
    classification_loader,
    freeze_all_but_last,
    scrambled_or_not,
    sentences,
    train_classifier,
)
from labcode.data import read_text
from labcode.device import one_cpu_thread
from labcode.tiny_gpt import load_tiny_gpt


@torch.no_grad()
def causal_reach(checkpoint: str = ".cache/labs/tiny-gpt.pt",
                 text: str = "The model reads the whole sentence before it answers.",
                 device: str = "cpu") -> dict:
    """Change one token of `text` and list which positions' outputs move: under the causal
    mask only that position and the ones after it do."""
    model, enc = load_tiny_gpt(checkpoint, device)
    ids = torch.tensor([enc.encode(text)], device=device)      # (1, T)
    T = ids.shape[1]
    changed_at = T // 3
    other = ids.clone()
    other[0, changed_at] = (other[0, changed_at] + 1) % model.cfg.vocab_size
    moved = (model(ids) - model(other)).abs().amax(dim=-1)[0]  # (T,)
    reached = [int(t) for t in torch.nonzero(moved > 1e-6).flatten()]
    print(f"{T} tokens; token {changed_at} ({enc.decode([int(ids[0, changed_at])])!r}) "
          f"replaced by {enc.decode([int(other[0, changed_at])])!r}")
    print("largest change of any output score, per position:")
    print("  " + " ".join(f"{m:.2e}" if m > 0 else "0" for m in moved.tolist()))
    return {"tokens": T, "changed_at": changed_at, "first_reached": reached[0],
            "reached": len(reached), "max_before": float(moved[:changed_at].max()),
            "min_from": float(moved[changed_at:].min())}


def pooling_compared(corpus: str = "content/data/corpus.txt",
                     checkpoint: str = ".cache/labs/tiny-gpt.pt", epochs: int = 2,
                     max_length: int = 48, lr: float = 1e-3, device: str = "cpu",
                     quick: bool = False) -> dict:
    """The classification fine-tuning run three times, from the same start, each reading the
    class scores at another place: the last real token, the mean of the real tokens, and the
    batch's last row (padding, for most sentences)."""
    found = sentences(read_text(corpus), max_words=24)
    examples = scrambled_or_not(found[:120] if quick else found)
    _, enc = load_tiny_gpt(checkpoint, device)
    data = classification_data(examples, enc, max_length, pad_id=enc.eot_token)
    lengths = data.test.lengths
    padded = sum(n < max_length for n in lengths) / len(lengths)
    print(f"{len(data.train)} training and {len(data.test)} test sentences, rows of "
          f"{max_length} tokens: a share of {padded:.3f} of test rows end in padding "
          f"(median length {sorted(lengths)[len(lengths) // 2]} tokens)")
    results = {}
    for pool in POOLS:
        model, _ = load_tiny_gpt(checkpoint, device)
        torch.manual_seed(123)  # the same new head every time
        add_classification_head(model, len(data.classes))
        freeze_all_but_last(model, last_blocks=1)
        train_loader = classification_loader(data.train, batch_size=16, shuffle=True)
        val_loader = classification_loader(data.val, batch_size=64, shuffle=False)
        test_loader = classification_loader(data.test, batch_size=64, shuffle=False)
        with one_cpu_thread(device):
            history = train_classifier(model, train_loader, val_loader, epochs, lr=lr,
                                       pool=pool, device=device)
            test = accuracy(model, test_loader, device, pool)
        results[pool] = {"train": history.train_accuracy[-1], "val": history.val_accuracy[-1],
                         "test": test, "train_loss": history.train_loss[-1]}
        print(f"{pool:>5}: accuracy on training {history.train_accuracy[-1]:.3f}, validation "
              f"{history.val_accuracy[-1]:.3f}, test {test:.3f}")
    return {"train_size": len(data.train), "test_size": len(data.test),
            "padded_fraction": padded, "max_length": max_length, **results}

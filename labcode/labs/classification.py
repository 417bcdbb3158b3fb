"""Labs of the post "Fine-tuning the tiny GPT to classify": the blog's sentences, as written or
with their words shuffled, classified by the tiny GPT with a new head and only its last block,
final norm and head trained; against the majority class and the same recipe on an untrained GPT.
"""
import torch

from labcode.classifier import (
    accuracy,
    add_classification_head,
    classification_data,
    classification_loader,
    count_trainable,
    freeze_all_but_last,
    majority_accuracy,
    scrambled_or_not,
    sentences,
    train_classifier,
)
from labcode.data import read_text
from labcode.device import one_cpu_thread
from labcode.model import GPTModel
from labcode.tiny_gpt import load_tiny_gpt


def finetune_classifier(corpus: str = "content/data/corpus.txt",
                        checkpoint: str = ".cache/labs/tiny-gpt.pt", epochs: int = 2,
                        max_length: int = 48, lr: float = 1e-3, device: str = "cpu",
                        quick: bool = False) -> dict:
    """Fine-tune the tiny GPT to tell the blog's sentences from their scrambled twins.

    The same recipe twice: on the trained tiny GPT, and on a GPT of the same shape that was
    never trained. Accuracy on the test sentences before and after; `quick` keeps 120 sentences.
    """
    pretrained, enc = load_tiny_gpt(checkpoint, device)
    found = sentences(read_text(corpus), max_words=24)
    examples = scrambled_or_not(found[:120] if quick else found)
    data = classification_data(examples, enc, max_length, pad_id=enc.eot_token)
    train_loader = classification_loader(data.train, batch_size=16, shuffle=True)
    val_loader = classification_loader(data.val, batch_size=64, shuffle=False)
    test_loader = classification_loader(data.test, batch_size=64, shuffle=False)
    train_labels = [data.classes[i] for i in data.train.labels]
    majority = majority_accuracy(train_labels, [data.classes[i] for i in data.test.labels])

    print(f"{len(found)} sentences of 8 to 24 words; {len(data.train)} for training, "
          f"{len(data.val)} validation, {len(data.test)} test")
    for text, label in examples[:4]:
        print(f"  {label:>9}: {text[:70]}{'...' if len(text) > 70 else ''}")
    print(f"majority class ({max(set(train_labels), key=train_labels.count)}) on the test "
          f"set: {majority:.3f}")

    # the cheapest cue: does the text end the way a sentence does?
    ends = {label: sum(t.rstrip()[-1] in ".!?" for t, l in examples if l == label)
            / sum(l == label for _, l in examples) for label in data.classes}
    print("share ending in . ! or ?: " + ", ".join(f"{label} {share:.3f}" for label, share in ends.items()))

    runs = {}
    for name, model in (("pretrained", pretrained), ("untrained", GPTModel(pretrained.cfg))):
        torch.manual_seed(123)  # the same new head for both
        model = add_classification_head(model.to(device), len(data.classes))
        trainable = freeze_all_but_last(model, last_blocks=1)
        n_trainable, n_total = count_trainable(model)
        with one_cpu_thread(device):
            before = accuracy(model, test_loader, device)
            history = train_classifier(model, train_loader, val_loader, epochs, lr=lr,
                                       device=device)
            after = accuracy(model, test_loader, device)
        runs[name] = {"test_before": before, "test_after": after,
                      "train_accuracy": history.train_accuracy[-1],
                      "val_accuracy": history.val_accuracy[-1],
                      "train_loss": history.train_loss, "trainable": n_trainable,
                      "total": n_total}
        print(f"{name} GPT: test accuracy {before:.3f} with the new head untrained, "
              f"{after:.3f} after {epochs} epochs "
              f"(training {history.train_accuracy[-1]:.3f}, validation "
              f"{history.val_accuracy[-1]:.3f})")

    blocks = sorted({name.split(".")[1] for name in trainable if name.startswith("trf_blocks")})
    groups = sorted({name.split(".")[0] for name in trainable if not name.startswith("trf_")})
    print(f"trained: block {', '.join(blocks)} of 0-{pretrained.cfg.n_layers - 1}, "
          f"{', '.join(groups)}: {n_trainable:,} of {n_total:,} parameters")
    return {"sentences": len(found), "train": len(data.train), "val": len(data.val),
            "test": len(data.test), "classes": data.classes, "majority": majority,
            "epochs": epochs, "max_length": max_length, "lr": lr,
            "trained_blocks": [int(b) for b in blocks], "trained_other": groups,
            "n_layers": pretrained.cfg.n_layers, "trainable": n_trainable, "total": n_total,
            "trainable_fraction": n_trainable / n_total, "ends_like_a_sentence": ends, **runs}

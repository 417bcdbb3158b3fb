"""Labs of the post "LoRA against full fine-tuning": the classification task of the chapter 6
posts fine-tuned with every weight trainable and with LoRA adapters on every linear layer;
trainable parameters, the memory they cost in training, accuracy, time, and the merged model's
logits beside the unmerged one's. Also the counts for GPT-2 small, on the meta device.
"""
import time

import torch

from labcode.classifier import (
    accuracy,
    add_classification_head,
    class_logits,
    classification_data,
    classification_loader,
    scrambled_or_not,
    sentences,
    train_classifier,
)
from labcode.data import read_text
from labcode.device import one_cpu_thread
from labcode.lora import apply_lora, lora_parameter_count, merge_lora, trainable_parameters
from labcode.model import GPTConfig, GPTModel
from labcode.tiny_gpt import load_tiny_gpt

# fp32 bytes per trainable parameter while training with AdamW: its gradient and the
# optimizer's two running moments (the weight itself is there either way)
TRAINING_BYTES_PER_TRAINABLE = 4 * 3


def lora_vs_full(corpus: str = "content/data/corpus.txt",
                 checkpoint: str = ".cache/labs/tiny-gpt.pt", epochs: int = 2,
                 max_length: int = 48, lr: float = 1e-3, rank: int = 8, alpha: float = 16.0,
                 device: str = "cpu", quick: bool = False) -> dict:
    """Fine-tune the tiny GPT for the scrambled-or-not task twice from the same start: every
    weight trainable, then only LoRA matrices (rank `rank`) and the new head. Then merge the
    LoRA model and compare its logits with the unmerged model's."""
    found = sentences(read_text(corpus), max_words=24)
    examples = scrambled_or_not(found[:120] if quick else found)
    _, enc = load_tiny_gpt(checkpoint, device)
    data = classification_data(examples, enc, max_length, pad_id=enc.eot_token)
    test_loader = classification_loader(data.test, batch_size=64, shuffle=False)
    results, timings = {}, {}
    for name in ("full", "lora"):
        model, _ = load_tiny_gpt(checkpoint, device)
        torch.manual_seed(123)  # the same new head for both
        add_classification_head(model, len(data.classes))
        total = sum(p.numel() for p in model.parameters())
        replaced = apply_lora(model, rank, alpha, skip=("out_head",)) if name == "lora" else []
        model.to(device)
        trainable = trainable_parameters(model)
        train_loader = classification_loader(data.train, batch_size=16, shuffle=True)
        val_loader = classification_loader(data.val, batch_size=64, shuffle=False)
        start = time.perf_counter()
        with one_cpu_thread(device):
            history = train_classifier(model, train_loader, val_loader, epochs, lr=lr,
                                       device=device)
            seconds = time.perf_counter() - start
            test = accuracy(model, test_loader, device)
        results[name] = {"trainable": trainable, "total": total,
                         "trainable_fraction": trainable / total, "layers_adapted": len(replaced),
                         "training_bytes": trainable * TRAINING_BYTES_PER_TRAINABLE,
                         "test": test, "train": history.train_accuracy[-1],
                         "val": history.val_accuracy[-1]}
        timings[f"seconds_{name}"] = seconds
        print(f"{name:>4}: {trainable:>7,} of {total:,} parameters trainable "
              f"({trainable / total:.3f} of them); test accuracy {test:.3f}")
    print(f"LoRA adapters on {len(replaced)} linear layers, rank {rank}, alpha {alpha:g}")

    # merged vs unmerged: the same function, up to float32 rounding
    model.eval()
    ids, _, lengths = next(iter(test_loader))
    ids, lengths = ids.to(device), lengths.to(device)
    with torch.no_grad():
        unmerged = class_logits(model(ids), lengths)                     # (B, C)
        unmerged_all = model(ids)                                        # (B, T, C)
        merged_model = merge_lora(model)
        merged = class_logits(merged_model(ids), lengths)
        merged_all = merged_model(ids)
    max_diff = float((unmerged_all - merged_all).abs().max())
    same_predictions = bool((unmerged.argmax(-1) == merged.argmax(-1)).all())
    merged_params = sum(p.numel() for p in merged_model.parameters())
    print(f"merged: max |logit difference| {max_diff:.1e} over {tuple(ids.shape)} rows, "
          f"same predictions: {same_predictions}; {merged_params:,} parameters again")
    return {"rank": rank, "alpha": alpha, "lr": lr, "epochs": epochs, **results,
            "merge_max_diff": max_diff, "merge_same_predictions": same_predictions,
            "merged_parameters": merged_params,
            "memory_ratio": results["full"]["training_bytes"] / results["lora"]["training_bytes"],
            **timings}


def lora_counts_gpt2(rank: int = 8, alpha: float = 16.0, num_classes: int = 2) -> dict:
    """Trainable parameters of GPT-2 small (124M) with a classification head, fine-tuned in full
    and with LoRA on every linear layer, counted on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        model = add_classification_head(GPTModel(GPTConfig.preset("gpt2-small")), num_classes)
    total = sum(p.numel() for p in model.parameters())
    replaced = apply_lora(model, rank, alpha, skip=("out_head",))
    lora = trainable_parameters(model)
    d = model.cfg.emb_dim
    print(f"GPT-2 small with a {num_classes}-class head: {total:,} parameters")
    print(f"LoRA rank {rank} on {len(replaced)} linear layers: {lora:,} trainable "
          f"({lora / total:.2%})")
    print(f"one 768x768 projection: {d * d:,} weights, its LoRA pair "
          f"{lora_parameter_count(d, d, rank):,}")
    return {"total": total, "lora": lora, "fraction": lora / total, "layers": len(replaced),
            "full_training_bytes": total * TRAINING_BYTES_PER_TRAINABLE,
            "lora_training_bytes": lora * TRAINING_BYTES_PER_TRAINABLE,
            "square": d * d, "square_lora": lora_parameter_count(d, d, rank)}

"""Fine-tuning a GPT to classify text: a new head, most layers frozen, one token read.

Read top to bottom:

1. labelled data made from plain text (sentences as written or with their words shuffled),
   split, encoded, cut to a length and padded into fixed-length rows;
2. the model: the output layer (one score per vocabulary entry) replaced by one with a score
   per class, and every weight frozen except the last block(s), the final norm and the head;
3. which position's scores count: the last real token (the only one that has seen the whole
   text under a causal mask), the mean over the real tokens, or the last row of the padded
   batch as it comes;
4. loss, accuracy and a plain training loop over the trainable parameters.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from labcode.data import encode
from labcode.model import GPTModel


# -- 1. labelled data ------------------------------------------------------------------

def sentences(text: str, min_words: int = 8, max_words: int = 30) -> list[str]:
    """The sentences of `text` (split after . ! or ? and a space) of `min_words` to `max_words`."""
    found = []
    for paragraph in text.split("\n\n"):
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paragraph.split())):
            if min_words <= len(sentence.split()) <= max_words:
                found.append(sentence)
    return found


def scrambled_or_not(sentences: list[str], seed: int = 123) -> list[tuple[str, str]]:
    """Label data made from unlabelled text: each sentence, by a fair coin, either as written
    ("prose") or with its words shuffled ("scrambled"). The words are the same; only their
    order tells the two apart."""
    rng = random.Random(seed)
    examples = []
    for sentence in sentences:
        if rng.random() < 0.5:
            examples.append((sentence, "prose"))
        else:
            words = sentence.split()
            rng.shuffle(words)
            examples.append((" ".join(words), "scrambled"))
    return examples


def split_examples(examples: list, fractions=(0.7, 0.1, 0.2), seed: int = 123):
    """Shuffle with a seeded generator and cut into training, validation and test lists."""
    examples = list(examples)
    random.Random(seed).shuffle(examples)
    n_train = int(len(examples) * fractions[0])
    n_val = int(len(examples) * fractions[1])
    return (examples[:n_train], examples[n_train:n_train + n_val],
            examples[n_train + n_val:])


class ClassificationDataset(Dataset):
    """Texts as rows of `max_length` token ids, right-padded with `pad_id`, with class and length.

    Item i is (ids (max_length,), class index, number of real tokens). A text longer than
    `max_length` tokens keeps its first `max_length`.
    """

    def __init__(self, examples: list[tuple[str, str]], tokenizer, max_length: int,
                 classes: list[str], pad_id: int):
        self.classes = classes
        self.rows, self.labels, self.lengths = [], [], []
        for text, label in examples:
            ids = encode(tokenizer, text)[:max_length]
            self.rows.append(ids + [pad_id] * (max_length - len(ids)))
            self.labels.append(classes.index(label))
            self.lengths.append(len(ids))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return torch.tensor(self.rows[i]), self.labels[i], self.lengths[i]


def classification_loader(dataset: ClassificationDataset, batch_size: int, shuffle: bool,
                          seed: int = 123) -> DataLoader:
    """Batches of (ids (B, T), labels (B,), lengths (B,)), shuffled by a seeded generator."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


@dataclass
class ClassificationData:
    """Training, validation and test sets of one task, and its classes in index order."""

    classes: list[str]
    train: ClassificationDataset
    val: ClassificationDataset
    test: ClassificationDataset


def classification_data(examples: list[tuple[str, str]], tokenizer, max_length: int,
                        pad_id: int, seed: int = 123) -> ClassificationData:
    """Split `examples` 70/10/20 and encode each part."""
    classes = sorted({label for _, label in examples})
    parts = split_examples(examples, seed=seed)
    train, val, test = (ClassificationDataset(part, tokenizer, max_length, classes, pad_id)
                        for part in parts)
    return ClassificationData(classes, train, val, test)


def majority_accuracy(train_labels: list, test_labels: list) -> float:
    """Accuracy on the test set of always answering the training set's commonest class."""
    commonest = max(sorted(set(train_labels)), key=train_labels.count)
    return sum(label == commonest for label in test_labels) / len(test_labels)


# -- 2. the model: a new head, most of it frozen -----------------------------------------

def add_classification_head(model: GPTModel, num_classes: int) -> GPTModel:
    """Replace the output layer (emb_dim -> vocab_size) by a fresh one (emb_dim -> num_classes)."""
    model.out_head = nn.Linear(model.cfg.emb_dim, num_classes)
    return model


def freeze_all_but_last(model: GPTModel, last_blocks: int = 1) -> list[str]:
    """Freeze every weight except the last `last_blocks` blocks, the final norm and the head.

    Returns the names of the parameters left trainable.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [model.final_norm, model.out_head]
    if last_blocks > 0:
        trainable += list(model.trf_blocks[-last_blocks:])
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    return [name for name, p in model.named_parameters() if p.requires_grad]


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


# -- 3. which position's scores count ----------------------------------------------------

POOLS = ("last", "mean", "end")


def class_logits(logits: torch.Tensor, lengths: torch.Tensor, pool: str = "last"):
    """Scores per class (B, C) from the scores at every position (B, T, C).

    - "last": the last real token, the only position whose causal attention saw all the text;
    - "mean": the mean over the real tokens (the head is linear, so this is the head applied
      to the mean of the final hidden states);
    - "end": the last row as it stands, a padding token for every text shorter than T.
    """
    B, T, C = logits.shape
    if pool == "last":
        return logits[torch.arange(B), lengths - 1]                    # (B, C)
    if pool == "mean":
        real = torch.arange(T, device=logits.device)[None, :] < lengths[:, None]  # (B, T)
        summed = (logits * real[:, :, None]).sum(dim=1)                # (B, C)
        return summed / lengths[:, None]
    if pool == "end":
        return logits[:, -1]                                           # (B, C)
    raise ValueError(f"unknown pool {pool!r}; choose from {', '.join(POOLS)}")


# -- 4. loss, accuracy, training -----------------------------------------------------------

def classification_loss(model, ids, labels, lengths, pool: str = "last") -> torch.Tensor:
    """Cross-entropy of the class scores read at `pool` against the labels."""
    return F.cross_entropy(class_logits(model(ids), lengths, pool), labels)


@torch.no_grad()
def accuracy(model, loader, device, pool: str = "last") -> float:
    """Fraction of the loader's texts whose highest class score is the right class (eval mode)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for ids, labels, lengths in loader:
        ids, labels, lengths = ids.to(device), labels.to(device), lengths.to(device)
        predicted = class_logits(model(ids), lengths, pool).argmax(dim=-1)  # (B,)
        correct += (predicted == labels).sum().item()
        total += len(labels)
    model.train(was_training)
    return correct / total


@dataclass
class ClassifierHistory:
    """Per epoch: the mean training loss and the accuracy on training and validation texts."""

    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def train_classifier(model, train_loader, val_loader, epochs: int, lr: float = 5e-4,
                     weight_decay: float = 0.1, pool: str = "last",
                     device="cpu") -> ClassifierHistory:
    """AdamW on the trainable parameters only; accuracy measured after every epoch."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=lr, weight_decay=weight_decay)
    history = ClassifierHistory()
    for _ in range(epochs):
        model.train()
        losses = []
        for ids, labels, lengths in train_loader:
            ids, labels, lengths = ids.to(device), labels.to(device), lengths.to(device)
            optimizer.zero_grad()
            loss = classification_loss(model, ids, labels, lengths, pool)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.train_loss.append(sum(losses) / len(losses))
        history.train_accuracy.append(accuracy(model, train_loader, device, pool))
        history.val_accuracy.append(accuracy(model, val_loader, device, pool))
    return history

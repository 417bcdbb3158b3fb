"""Data: from one long text to batches of (input, target) token windows.

A language model learns to predict the next token. Slide a window of
`max_length` tokens over the text; the target of each window is the same window
moved one token to the right, so every position in it is one small prediction
problem:

    input:   [ In,  the, heart, of ]
    target:  [ the, heart, of,  the ]

`stride` is how far the window moves each time: 1 gives heavily overlapping
windows, `stride == max_length` gives windows that just touch.
"""
import hashlib
import tomllib
from pathlib import Path

import tiktoken
import torch
from torch.utils.data import DataLoader, Dataset

from labcode.tokenizer import END_OF_TEXT, gpt2_tokenizer


def read_text(path) -> str:
    """Read a UTF-8 text file (the one way labs read data files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path} (paths are relative to {Path.cwd()})")
    return path.read_text(encoding="utf-8")


def corpus_snapshot(corpus, text: str) -> dict:
    """Which snapshot of the blog `text`, read from `corpus`, is: the record beside it, checked.

    `python build.py corpus --yes` writes the blog's corpus.txt from the posts' prose and
    corpus.toml beside it (the day it was taken, the posts, a digest). A text without a record
    is reported as such; one that no longer matches its record is an error, since the record
    would then name data the model did not see.
    """
    digest = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    record_path = Path(corpus).with_suffix(".toml")
    if not record_path.is_file():
        return {"taken": "unrecorded", "digest": digest, "posts": 0, "first": "", "last": ""}
    record = tomllib.loads(read_text(record_path))
    if record["digest"] != digest:
        raise ValueError(f"{corpus} ({digest}) is not the snapshot {record_path} records "
                         f"({record['digest']}): regenerate both with `python build.py corpus --yes`")
    posts = record["posts"]
    return {"taken": record["taken"], "digest": digest, "posts": len(posts),
            "first": posts[0]["title"], "last": posts[-1]["title"],
            "first_date": posts[0]["date"], "last_date": posts[-1]["date"]}


def encode(tokenizer, text: str) -> list[int]:
    """Encode with any of our tokenizers; tiktoken needs to be told `<|endoftext|>` is allowed."""
    if isinstance(tokenizer, tiktoken.Encoding):
        return tokenizer.encode(text, allowed_special={END_OF_TEXT})
    return tokenizer.encode(text)


class GPTDataset(Dataset):
    """Sliding windows over the token ids of `txt`: item i is (input, target), both (max_length,)."""

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        if max_length < 1 or stride < 1:
            raise ValueError(f"max_length and stride must be positive, got {max_length} and {stride}")
        self.token_ids = torch.tensor(encode(tokenizer, txt), dtype=torch.long)  # (N,)
        self.max_length = max_length
        # A window starting at s needs tokens s .. s + max_length (one more for the target).
        self.starts = range(0, len(self.token_ids) - max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.starts[i]
        x = self.token_ids[s : s + self.max_length]          # (max_length,)
        y = self.token_ids[s + 1 : s + self.max_length + 1]  # (max_length,) shifted by one
        return x, y


def create_dataloader(
    txt: str,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    seed: int = 123,
    tokenizer=None,
) -> DataLoader:
    """A DataLoader of (inputs, targets) batches, each (batch_size, max_length).

    The tokenizer defaults to GPT-2's BPE. Shuffling draws from its own seeded
    generator, so the order of batches is the same on every run.
    """
    if tokenizer is None:
        tokenizer = gpt2_tokenizer()
    dataset = GPTDataset(txt, tokenizer, max_length, stride)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )

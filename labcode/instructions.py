"""Fine-tuning a GPT to follow instructions: a prompt format, padded batches, masked targets.

Read top to bottom:

1. the prompt: an instruction (and an optional input) in the Alpaca layout, after which the
   model is to write the response;
2. a dataset of whole examples (prompt, response, end-of-text) as token ids, remembering where
   the prompt ends;
3. the collate function that turns a list of examples of different lengths into one batch:
   inputs padded with end-of-text, targets shifted by one, and `-100` (the index
   `F.cross_entropy` ignores) wherever a target must not count: the padding, and, when asked,
   the prompt;
4. the loss over the targets that count, and a response generated and cut at end-of-text.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from labcode.data import encode
from labcode.generation import generate

IGNORE_INDEX = -100  # F.cross_entropy's default ignore_index

PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.\n\n")


# -- 1. the prompt -----------------------------------------------------------------------

def format_prompt(entry: dict, preamble: bool = True) -> str:
    """The Alpaca layout: [preamble] ### Instruction, [### Input], then ### Response, empty.

    `entry` has "instruction", optionally "input"; the response follows the returned text.
    A model with a short context can leave out the preamble, which is the same for every entry.
    """
    text = (PREAMBLE if preamble else "") + f"### Instruction:\n{entry['instruction']}"
    if entry.get("input"):
        text += f"\n\n### Input:\n{entry['input']}"
    return text + "\n\n### Response:\n"


# -- 2. examples as token ids ----------------------------------------------------------------

class InstructionDataset(Dataset):
    """Item i is (ids of prompt + response + end-of-text, number of prompt tokens)."""

    def __init__(self, entries: list[dict], tokenizer, preamble: bool = True):
        self.items = []
        for entry in entries:
            prompt = encode(tokenizer, format_prompt(entry, preamble))
            response = encode(tokenizer, entry["output"])
            self.items.append((prompt + response + [tokenizer.eot_token], len(prompt)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


# -- 3. one batch: pad, shift, mask --------------------------------------------------------

def collate(batch, pad_id: int, mask_prompt: bool = False, max_length: int | None = None,
            ignore_index: int = IGNORE_INDEX):
    """Examples of different lengths -> (inputs (B, T), targets (B, T)).

    Each example is padded with `pad_id` (end-of-text) to the longest in the batch, plus one
    so that the shift leaves it whole; inputs are all tokens but the last, targets all but the
    first. The first end-of-text stays a target (the model must learn to stop); the padding
    after it becomes `ignore_index`, and so do the targets inside the prompt when
    `mask_prompt`. Rows longer than `max_length` are cut.
    """
    longest = max(len(ids) for ids, _ in batch) + 1
    inputs, targets = [], []
    for ids, prompt_len in batch:
        padded = torch.tensor(ids + [pad_id] * (longest - len(ids)))
        x, y = padded[:-1].clone(), padded[1:].clone()   # (longest - 1,) each
        # y[k] is token k + 1: the end-of-text ids[-1] is y[len(ids) - 2] and stays a target;
        # from y[len(ids) - 1] on every target is padding
        y[len(ids) - 1:] = ignore_index
        if mask_prompt:
            y[:prompt_len - 1] = ignore_index  # targets that are still prompt tokens
        if max_length is not None:
            x, y = x[:max_length], y[:max_length]
        inputs.append(x)
        targets.append(y)
    return torch.stack(inputs), torch.stack(targets)  # (B, T), (B, T)


# -- 4. loss and responses -----------------------------------------------------------------

def instruction_loss(model, inputs, targets) -> torch.Tensor:
    """Mean cross-entropy over the targets that count: those equal to -100 are left out."""
    logits = model(inputs)                                           # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                           ignore_index=IGNORE_INDEX)               # (B*T, V) vs (B*T,)


@torch.no_grad()
def respond(model, tokenizer, entry: dict, max_new_tokens: int = 20, preamble: bool = True,
            device="cpu") -> str:
    """The model's greedy response to `entry`: the text it writes after the prompt, up to
    end-of-text (or `max_new_tokens`), stripped."""
    prompt = encode(tokenizer, format_prompt(entry, preamble))
    room = model.cfg.context_length - len(prompt)
    ids = torch.tensor([prompt], device=device)                      # (1, T)
    out = generate(model, ids, min(max_new_tokens, room), eos_id=tokenizer.eot_token)
    new = [i for i in out[0, len(prompt):].tolist() if i != tokenizer.eot_token]
    return tokenizer.decode(new).strip()

"""Labs of the post "Instruction fine-tuning the tiny GPT": generated instruction/response pairs
about dates, the Alpaca layout, the padded and masked batch, and the same fine-tuning run with
the prompt's tokens counted in the loss and masked out of it.
"""
import random
import re
from functools import partial

import torch
from torch.utils.data import DataLoader

from labcode.device import one_cpu_thread
from labcode.instructions import (
    IGNORE_INDEX,
    InstructionDataset,
    collate,
    format_prompt,
    instruction_loss,
    respond,
)
from labcode.tiny_gpt import load_tiny_gpt

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
TASKS = ("year", "day", "month")


def date_entries(n: int, seed: int) -> list[dict]:
    """`n` instruction/response pairs: name the year, the day or the month of an ISO date."""
    rng = random.Random(seed)
    entries = []
    for i in range(n):
        year, month, day = rng.randint(2020, 2029), rng.randint(1, 12), rng.randint(1, 28)
        answer = {"year": str(year), "day": str(day), "month": MONTHS[month - 1]}
        task = TASKS[i % len(TASKS)]
        entries.append({"instruction": f"Name the {task}.",
                        "input": f"{year}-{month:02d}-{day:02d}", "output": answer[task],
                        "task": task})
    return entries


def right_shape(task: str, answer: str) -> bool:
    """Is `answer` the kind of thing asked for (four digits, a day number, a month name)?"""
    if task == "year":
        return re.fullmatch(r"\d{4}", answer) is not None
    if task == "day":
        return re.fullmatch(r"[1-9]|[12]\d|3[01]", answer) is not None
    return answer in MONTHS


def show_batch(checkpoint: str = ".cache/labs/tiny-gpt.pt") -> dict:
    """One prompt in the Alpaca layout, and a batch of three as the collate function makes it."""
    _, enc = load_tiny_gpt(checkpoint)
    entries = date_entries(3, seed=7)
    print(format_prompt(entries[0], preamble=False) + entries[0]["output"] + "<|endoftext|>")
    data = InstructionDataset(entries, enc, preamble=False)
    plain = collate([data[i] for i in range(3)], pad_id=enc.eot_token)
    masked = collate([data[i] for i in range(3)], pad_id=enc.eot_token, mask_prompt=True)
    lengths = [len(ids) for ids, _ in data.items]
    prompt_lengths = [p for _, p in data.items]
    print(f"\nexample lengths {lengths} (prompts {prompt_lengths}) -> batch {tuple(plain[0].shape)}")
    print("last 14 targets of each row, padding masked (-100):")
    for row in plain[1]:
        print("  " + " ".join(f"{t:>4}" for t in row[-14:].tolist()))
    print("the same rows with the prompt masked too:")
    for row in masked[1]:
        print("  " + " ".join(f"{t:>4}" for t in row[-14:].tolist()))
    counted = [int((row != IGNORE_INDEX).sum()) for row in plain[1]]
    counted_masked = [int((row != IGNORE_INDEX).sum()) for row in masked[1]]
    response_tokens = [n - p for n, p in zip(lengths, prompt_lengths)]
    return {"lengths": lengths, "prompt_lengths": prompt_lengths, "batch_width": plain[0].shape[1],
            "counted": counted, "counted_masked": counted_masked,
            "response_tokens": response_tokens, "eot": enc.eot_token}


@torch.no_grad()
def response_loss(model, dataset, pad_id: int) -> float:
    """Mean loss on the response tokens (and end-of-text) only, prompt masked: what is asked."""
    model.eval()
    inputs, targets = collate([dataset[i] for i in range(len(dataset))], pad_id, mask_prompt=True)
    return instruction_loss(model, inputs, targets).item()


def evaluate(model, enc, entries, dataset) -> dict:
    """Greedy responses to `entries`: exact answers and answers of the right kind, per task."""
    model.eval()
    answers = [respond(model, enc, e, max_new_tokens=8, preamble=False) for e in entries]
    exact = {t: 0 for t in TASKS}
    shape = {t: 0 for t in TASKS}
    for entry, answer in zip(entries, answers):
        exact[entry["task"]] += answer == entry["output"]
        shape[entry["task"]] += right_shape(entry["task"], answer)
    n = len(entries)
    return {"exact": sum(exact.values()) / n, "shape": sum(shape.values()) / n,
            "exact_by_task": {t: exact[t] / (n / len(TASKS)) for t in TASKS},
            "shape_by_task": {t: shape[t] / (n / len(TASKS)) for t in TASKS},
            "response_loss": response_loss(model, dataset, enc.eot_token),
            "answers": answers[:6]}


def masking_compared(checkpoint: str = ".cache/labs/tiny-gpt.pt", n_train: int = 450,
                     n_test: int = 60, steps: int = 150, lr: float = 2e-3,
                     device: str = "cpu", quick: bool = False) -> dict:
    """Instruction fine-tune the tiny GPT twice from the same start, for the same steps: with
    the prompt's targets counted in the loss, and masked out (-100). Both, and the model
    before fine-tuning, answer the same held-out dates."""
    steps = 3 if quick else steps
    train_entries, test_entries = date_entries(n_train, seed=1), date_entries(n_test, seed=2)
    base, enc = load_tiny_gpt(checkpoint, device)
    train_data = InstructionDataset(train_entries, enc, preamble=False)
    test_data = InstructionDataset(test_entries, enc, preamble=False)
    longest = max(len(ids) for ids, _ in train_data.items)
    prompt_share = sum(p for _, p in train_data.items) / sum(len(i) for i, _ in train_data.items)
    print(f"{n_train} training and {n_test} test pairs; longest example {longest} tokens "
          f"(context {base.cfg.context_length}); prompt tokens are a share of {prompt_share:.3f}")

    with one_cpu_thread(device):
        results = {"base": evaluate(base, enc, test_entries, test_data)}
        for name, mask in (("unmasked", False), ("masked", True)):
            model, _ = load_tiny_gpt(checkpoint, device)
            model.train()
            loader = DataLoader(train_data, batch_size=16, shuffle=True,
                                generator=torch.Generator().manual_seed(123),
                                collate_fn=partial(collate, pad_id=enc.eot_token,
                                                   mask_prompt=mask,
                                                   max_length=base.cfg.context_length))
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
            step, losses = 0, []
            while step < steps:
                for inputs, targets in loader:
                    inputs, targets = inputs.to(device), targets.to(device)
                    optimizer.zero_grad()
                    loss = instruction_loss(model, inputs, targets)
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    step += 1
                    if step == steps:
                        break
            results[name] = evaluate(model, enc, test_entries, test_data)
            results[name]["last_train_loss"] = sum(losses[-10:]) / len(losses[-10:])

    print(f"\n{'model':<10}{'train loss':>11}{'response loss':>15}")
    for name, r in results.items():
        train_loss = f"{r['last_train_loss']:.3f}" if "last_train_loss" in r else "-"
        print(f"{name:<10}{train_loss:>11}{r['response_loss']:>15.3f}")
    return {"train": n_train, "test": n_test, "steps": steps, "lr": lr, "longest": longest,
            "prompt_share": prompt_share, "context": base.cfg.context_length,
            # a uniform guess among the answers the data can have
            "chance": {"year": 1 / 10, "day": 1 / 28, "month": 1 / 12}, **results}

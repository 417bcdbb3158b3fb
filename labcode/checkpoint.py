"""Checkpoints that resume a training run exactly, as if it had never stopped.

Saving the weights is not enough to continue a run bit for bit. A checkpoint also holds:

- the optimizer's state (AdamW's running moments) and the step, which fixes the learning rate;
- where the data stream was: the epoch, the batches already taken from it, and the random
  state that decided that epoch's shuffle order;
- every random number generator (torch, CUDA, Python, NumPy), which decide dropout masks;
- the history of losses so far.

`BatchStream` is the data stream that knows its position; `save_checkpoint` and
`load_checkpoint` write and restore all of the above. `labcode.training.train` uses them.
"""
from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch


# -- the random state that decides a DataLoader's shuffle order ----------------------

def _loader_rng_state(loader) -> dict:
    """The random states that decide a DataLoader's shuffle order when it is iterated."""
    sampler_gen = getattr(loader.sampler, "generator", None)
    return {
        "torch": torch.get_rng_state(),  # used when the loader has no generator of its own
        "loader": loader.generator.get_state() if loader.generator is not None else None,
        "sampler": sampler_gen.get_state() if sampler_gen is not None else None,
    }


def _set_loader_rng_state(loader, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["loader"] is not None:
        loader.generator.set_state(state["loader"])
    if state["sampler"] is not None:
        loader.sampler.generator.set_state(state["sampler"])


# -- a stream of batches with a position ---------------------------------------------

class BatchStream:
    """Endless batches from a DataLoader, epoch after epoch, that can return to any position.

    A position is (epoch, batches already taken in it) plus the random state at the start of
    that epoch, which fixed its shuffle order. To go back: restore that state, start the epoch
    again and skip the batches already used.
    """

    def __init__(self, loader):
        self.loader = loader
        self.epoch = 0
        self.index = 0            # batches taken from the current epoch
        self._epoch_rng = None    # random state when the current epoch began
        self._iterator = None

    def _start_epoch(self) -> None:
        if hasattr(self.loader.sampler, "set_epoch"):  # DistributedSampler reshuffles per epoch
            self.loader.sampler.set_epoch(self.epoch)
        self._epoch_rng = _loader_rng_state(self.loader)
        self._iterator = iter(self.loader)

    def __next__(self):
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except StopIteration:
            if self.index == 0:
                raise ValueError("the training loader yields no batches (text too short?)")
            self.epoch, self.index, self._iterator = self.epoch + 1, 0, None
            return next(self)
        self.index += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "epoch_rng": self._epoch_rng,
                "rng_now": _loader_rng_state(self.loader)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index, self._iterator = state["epoch"], state["index"], None
        if state["epoch_rng"] is not None:  # None: saved before the first batch
            self._replay_epoch(state["epoch_rng"])
        _set_loader_rng_state(self.loader, state["rng_now"])

    def _replay_epoch(self, epoch_rng: dict) -> None:
        _set_loader_rng_state(self.loader, epoch_rng)
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(self.epoch)
        self._epoch_rng = epoch_rng
        self._iterator = iter(self.loader)
        for _ in range(self.index):  # skip what was already trained on
            next(self._iterator)


# -- every random number generator -----------------------------------------------------

def _rng_states() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
    }


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


# -- save and restore ------------------------------------------------------------------

def save_checkpoint(path, model, optimizer, step: int, stream: BatchStream, history) -> None:
    """Write everything needed to continue training exactly where it stopped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,                   # the schedule is a function of the step: lr_at(step)
        "data": stream.state_dict(),
        "rng": _rng_states(),
        "history": asdict(history),
    }
    save_atomically(state, path)


def save_atomically(obj, path) -> None:
    """torch.save to a temporary file, then swap it in: a reader never sees half a file,
    and a failed save leaves the previous file as it was."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path, model, optimizer, stream: BatchStream, history) -> int:
    """Restore a `save_checkpoint` file into these objects; returns the step to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    stream.load_state_dict(state["data"])  # before the RNG: replaying the epoch draws from it
    _set_rng_states(state["rng"])
    for name, values in state["history"].items():
        setattr(history, name, list(values))
    return state["step"]

"""Softmax with a temperature: the explicit formula beside torch's fused one."""
from __future__ import annotations

import torch


def softmax_explicit(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """exp(z / T) / sum(exp(z / T)), written out."""
    scaled = logits / temperature
    exps = torch.exp(scaled - scaled.max())   # subtracting the max changes nothing but overflow
    return exps / exps.sum()


def softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The same through torch.softmax (a test or a claim proves they agree)."""
    return torch.softmax(logits / temperature, dim=-1)

"""The lab of the post on softmax temperature."""
from __future__ import annotations

import math

import torch

from labcode.softmax import softmax, softmax_explicit


def temperature_table(logits: list[float], temperatures: list[float], device: str = "cpu") -> dict:
    """The softmax of `logits` at each temperature: the top probability and the entropy."""
    z = torch.tensor(logits, device=device)
    rows, max_difference = [], 0.0
    for temperature in temperatures:
        p = softmax(z, temperature)
        max_difference = max(max_difference, float((p - softmax_explicit(z, temperature)).abs().max()))
        entropy = -sum(float(q) * math.log2(float(q)) for q in p if q > 0)
        rows.append({"temperature": temperature, "top_probability": float(p.max()),
                     "entropy_bits": entropy})
        print(f"T={temperature}: " + "  ".join(f"{float(q):.3f}" for q in p))
    return {"rows": rows, "max_difference": max_difference}

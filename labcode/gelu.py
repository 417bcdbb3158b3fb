"""GELU, the smooth activation GPT-2 uses where older networks used ReLU.

GELU(x) = x * Phi(x), with Phi the standard normal CDF. GPT-2 was trained with the
cheaper tanh approximation below, so we use it too (loaded weights expect it).
"""
import math

import torch
from torch import nn

from labcode.figures import WIDTH, house_style


class GELU(nn.Module):
    """GELU with GPT-2's tanh approximation."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(
            math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
        ))


# === Lab entry points: the functions the posts run ==================================

def gelu_vs_relu_plot() -> dict:
    """Plot GELU next to ReLU on [-3, 3]; return where GELU dips below zero, and how far."""
    import matplotlib.pyplot as plt

    x = torch.linspace(-3, 3, 100)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    ax.plot(x, GELU()(x), label="GELU")
    ax.plot(x, nn.ReLU()(x), label="ReLU", linestyle="--")
    ax.set_xlabel("x")
    ax.set_ylabel("activation")
    ax.grid(True)
    ax.legend()
    ax.set_title("GELU beside ReLU")
    house_style(fig)

    fine = torch.linspace(-3, 0, 30_001)  # steps of 1e-4, to locate the dip
    values = GELU()(fine)
    lowest = values.argmin()
    dip = {"min_value": values[lowest].item(), "min_at": fine[lowest].item()}
    print("GELU is smooth and lets small negative values through; ReLU cuts them to 0.")
    print(f"GELU's lowest point: {dip['min_value']:.4f} at x = {dip['min_at']:.4f}")
    return dip

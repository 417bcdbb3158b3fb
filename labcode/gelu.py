"""GELU, the smooth activation GPT-2 uses where older networks used ReLU.

GELU(x) = x * Phi(x), with Phi the standard normal CDF. GPT-2 was trained with the
cheaper tanh approximation below, so we use it too (loaded weights expect it).
"""
import math

import torch
from torch import nn


class GELU(nn.Module):
    """GELU with GPT-2's tanh approximation."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(
            math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))
        ))


def gelu_vs_relu_plot():
    """Plot GELU next to ReLU on [-3, 3]; returns the figure."""
    import matplotlib.pyplot as plt

    x = torch.linspace(-3, 3, 100)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(x, GELU()(x), label="GELU")
    ax.plot(x, nn.ReLU()(x), label="ReLU", linestyle="--")
    ax.set_xlabel("x")
    ax.set_ylabel("activation")
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    print("GELU is smooth and lets small negative values through; ReLU cuts them to 0.")
    return fig

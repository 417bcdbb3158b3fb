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

"""Layer normalisation: every token's vector rescaled to mean 0 and variance 1.

A deep stack of layers trains badly when the activations drift in size. Layer norm
fixes each token's embedding to zero mean and unit variance over its `emb_dim`
features, then lets the model undo that with a learnt `scale` and `shift`.
GPT-2 applies it before attention, before the feed-forward layer and once more at the end.
"""
import torch
from torch import nn


class LayerNorm(nn.Module):
    """Normalise over the last dimension, then apply a learnt scale and shift."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps  # keeps the division finite when a vector is constant
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):  # x: (..., emb_dim)
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        # unbiased=False divides by n, not n - 1: GPT-2 (and torch's layer_norm) do the same
        var = x.var(dim=-1, keepdim=True, unbiased=False)  # (..., 1)
        norm_x = (x - mean) / torch.sqrt(var + self.eps)
        return self.scale * norm_x + self.shift

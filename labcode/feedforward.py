"""The feed-forward layer inside each transformer block.

It works on each token on its own: widen to 4 x emb_dim, apply GELU, project back.
The widening gives the model room to compute; attention moves information between
tokens, this layer transforms it within one.
"""
from torch import nn

from labcode.gelu import GELU


class FeedForward(nn.Module):
    """Linear(d, 4d) -> GELU -> Linear(4d, d), applied to each position."""

    def __init__(self, emb_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),  # (B, T, d) -> (B, T, 4d)
            GELU(),
            nn.Linear(4 * emb_dim, emb_dim),  # (B, T, 4d) -> (B, T, d)
        )

    def forward(self, x):
        return self.layers(x)

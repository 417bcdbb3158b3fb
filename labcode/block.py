"""The transformer block, and why its shortcut connections matter.

A block is attention followed by a feed-forward layer, each wrapped as
`x = x + sublayer(norm(x))`: layer norm first (pre-norm, as GPT-2), then a
shortcut connection that adds the sublayer's output back onto its input. The
shortcut gives gradients a direct path through a deep stack.
"""
from torch import nn

from labcode.attention import MultiHeadAttention
from labcode.feedforward import FeedForward
from labcode.gelu import GELU
from labcode.layernorm import LayerNorm


class TransformerBlock(nn.Module):
    """Pre-norm attention and feed-forward, each with a shortcut. cfg: a `GPTConfig`."""

    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim, d_out=cfg.emb_dim, context_length=cfg.context_length,
            dropout=cfg.drop_rate, num_heads=cfg.n_heads, qkv_bias=cfg.qkv_bias,
            attention=cfg.attention)
        self.ff = FeedForward(cfg.emb_dim)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x, cache=None):  # x: (B, T, d) -> (B, T, d)
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache=cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


# -- shortcut connections, in isolation ---------------------------------------

class DeepNetwork(nn.Module):
    """Five Linear+GELU layers, with or without shortcut connections."""

    def __init__(self, layer_sizes, use_shortcut: bool):
        super().__init__()
        self.use_shortcut = use_shortcut
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Linear(n_in, n_out), GELU())
            for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
        ])

    def forward(self, x):
        for layer in self.layers:
            out = layer(x)
            x = x + out if self.use_shortcut and x.shape == out.shape else out
        return x

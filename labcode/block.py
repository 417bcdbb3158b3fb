"""The transformer block, and why its shortcut connections matter.

A block is attention followed by a feed-forward layer, each wrapped as
`x = x + sublayer(norm(x))`: layer norm first (pre-norm, as GPT-2), then a
shortcut connection that adds the sublayer's output back onto its input. The
shortcut gives gradients a direct path through a deep stack.
"""
import torch
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


def shortcut_demo():
    """Mean gradient size of each layer's weights, without and with shortcuts."""
    layer_sizes = [3, 3, 3, 3, 3, 1]
    x = torch.tensor([[1.0, 0.0, -1.0]])
    rows = []
    for use_shortcut in (False, True):
        torch.manual_seed(123)  # same starting weights for both networks
        net = DeepNetwork(layer_sizes, use_shortcut)
        loss = nn.functional.mse_loss(net(x), torch.zeros(1, 1))
        loss.backward()
        for i, layer in enumerate(net.layers):
            rows.append({"shortcut": use_shortcut, "layer": i,
                         "mean |grad|": layer[0].weight.grad.abs().mean().item()})
    for row in rows:
        print(f"shortcut={row['shortcut']!s:<5} layer {row['layer']}: {row['mean |grad|']:.6f}")
    print("without shortcuts the gradient shrinks towards the first layer (vanishing gradients)")
    return rows

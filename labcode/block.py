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


# === Lab entry points: the functions the posts run ==================================

def shortcut_demo() -> dict:
    """Mean gradient size of each layer's weights, without and with shortcuts."""
    layer_sizes = [3, 3, 3, 3, 3, 1]
    x = torch.tensor([[1.0, 0.0, -1.0]])
    grads = {}
    for use_shortcut in (False, True):
        torch.manual_seed(123)  # same starting weights for both networks
        net = DeepNetwork(layer_sizes, use_shortcut)
        loss = nn.functional.mse_loss(net(x), torch.zeros(1, 1))
        loss.backward()
        grads[use_shortcut] = [layer[0].weight.grad.abs().mean().item() for layer in net.layers]
    without, with_ = grads[False], grads[True]
    print("mean |gradient| of each layer's weights")
    print(f"{'layer':>5}  {'without shortcuts':>18}  {'with shortcuts':>15}")
    for i, (a, b) in enumerate(zip(without, with_)):
        print(f"{i:>5}  {a:>18.2e}  {b:>15.2e}")
    gains = [b / a for a, b in zip(without, with_)]
    return {"without": without, "with": with_,
            # how much the gradient fades from the last layer to the weakest one, without shortcuts
            "fade_without": without[-1] / min(without),
            # how much larger each layer's gradient is with shortcuts: the least and the most
            "gain_min": min(gains), "gain_max": max(gains),
            # with shortcuts: the range of the layers before the last, and the last over the weakest
            "with_first_min": min(with_[:-1]), "with_first_max": max(with_[:-1]),
            "spread_with": with_[-1] / min(with_[:-1])}

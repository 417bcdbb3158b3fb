"""GPTModel: embeddings, a stack of transformer blocks, a final norm and an output head.

The attribute names (`embed.tok_emb`, `embed.pos_emb`, `trf_blocks`, `final_norm`,
`out_head`) are the ones the GPT-2 weight loader maps Hugging Face's keys onto.
"""
import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from labcode.attention import KVCache
from labcode.block import TransformerBlock
from labcode.embeddings import TokenPositionEmbedding
from labcode.layernorm import LayerNorm


@dataclass
class GPTConfig:
    """Sizes of a GPT. The defaults are GPT-2 small (124M)."""

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = True  # GPT-2 has biases on Q, K, V
    attention: str = "explicit"  # "explicit" maths or "sdpa" (fused kernel)

    @classmethod
    def preset(cls, name: str, **overrides) -> "GPTConfig":
        """GPT-2 sizes by name; keyword arguments override fields (e.g. attention="sdpa")."""
        sizes = {  # name: (emb_dim, n_layers, n_heads)
            "gpt2-small": (768, 12, 12),  # 124M
            "gpt2-medium": (1024, 24, 16),  # 355M
            "gpt2-large": (1280, 36, 20),  # 774M
            "gpt2-xl": (1600, 48, 25),  # 1558M
        }
        if name not in sizes:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(sizes)}")
        emb_dim, n_layers, n_heads = sizes[name]
        return replace(cls(emb_dim=emb_dim, n_layers=n_layers, n_heads=n_heads), **overrides)


class GPTModel(nn.Module):
    """GPT-2: ids (B, T) -> logits (B, T, vocab_size)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = TokenPositionEmbedding(cfg.vocab_size, cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2 scales the layers that write into the residual stream by 1/sqrt(2 * n_layers),
        # so the stream's variance does not grow with depth
        for block in self.trf_blocks:
            for proj in (block.att.out_proj, block.ff.layers[2]):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module):
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def new_cache(self) -> KVCache:
        """An empty KV cache with one slot per block, for `forward(idx, cache=...)`."""
        return KVCache(len(self.trf_blocks))

    def forward(self, idx, cache: KVCache | None = None):  # idx: (B, T)
        """Logits for every position. With `cache`, idx holds only the new tokens."""
        B, T = idx.shape
        past = 0 if cache is None else len(cache)
        if past + T > self.cfg.context_length:
            raise ValueError(f"sequence of {past + T} tokens is longer than the context "
                             f"length {self.cfg.context_length}; crop it first")
        x = self.drop_emb(self.embed(idx, start_pos=past))  # (B, T, d): token + position
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cache=None if cache is None else cache.layers[i])  # (B, T, d)
        x = self.final_norm(x)
        return self.out_head(x)  # (B, T, vocab_size)


# -- how big is it? ----------------------------------------------------------

def parameter_count(cfg: GPTConfig, tied: bool = False) -> int:
    """Number of parameters, from the config alone (no model built).

    `tied=True` counts the output head as sharing the token embedding's weights,
    as GPT-2 does.
    """
    d, V, C = cfg.emb_dim, cfg.vocab_size, cfg.context_length
    embeddings = V * d + C * d  # embed.tok_emb + embed.pos_emb
    attention = 3 * (d * d + (d if cfg.qkv_bias else 0)) + (d * d + d)  # Q, K, V + out_proj
    feed_forward = (d * 4 * d + 4 * d) + (4 * d * d + d)  # expand + project back
    norms = 2 * (2 * d)  # norm1, norm2: scale and shift
    per_block = attention + feed_forward + norms
    head = 0 if tied else V * d  # out_head has no bias
    return embeddings + cfg.n_layers * per_block + 2 * d + head  # 2d: final_norm


def count_parameters(model_or_cfg) -> int:
    """Parameters of a built model (shared tensors counted once), or of a config by formula."""
    if isinstance(model_or_cfg, nn.Module):
        return sum(p.numel() for p in model_or_cfg.parameters())
    return parameter_count(model_or_cfg)


def memory_estimate(cfg: GPTConfig, dtype: torch.dtype = torch.float32, tied: bool = False) -> int:
    """Bytes the parameters take in `dtype` (weights only: no gradients, optimiser or activations)."""
    bytes_per_value = torch.empty((), dtype=dtype).element_size()
    return parameter_count(cfg, tied=tied) * bytes_per_value

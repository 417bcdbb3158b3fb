"""Fast twins of the explicit layers: the same maths in fewer, larger kernels.

The chapters write every layer out as the formula on the page. Each line of such a formula is
a separate kernel: it reads a whole tensor from memory, writes a new one back, and autograd
keeps that new tensor alive until the backward pass. On a CPU (and on a GPU) the elementwise
work is cheap; the memory traffic is not. The twins below compute the same numbers in one
pass, and leave the chapters as they are, to be read:

- `FastGELU`: the explicit tanh GELU is eight elementwise kernels (a pow, four multiplies, two
  adds and a tanh), each over the (B, T, 4d) activations of the feed-forward layer, the largest
  in the block; backward runs about as many again. `F.gelu(x,
  approximate="tanh")` is one kernel forward and one backward, and saves only its input.
- `FastLayerNorm`: the explicit version takes a mean, a variance (which finds the mean again),
  a difference, a division, a multiply and an add: six passes over (B, T, d), and backward goes
  back through all of them. `F.layer_norm` reads each row once for its mean and variance, writes the result
  once, saves two numbers a row (mean and 1/std), and has a hand-written backward. It has the
  same parameters, `scale` and `shift`, and `eps` as `labcode.layernorm.LayerNorm`.
- `FusedAttention`: `W_query`, `W_key` and `W_value` stacked into one `qkv` matrix
  (3 d_out, d_in), so q, k and v come from one matrix product that reads x once instead of
  three (GPT-2 stores them the same way, as `c_attn`). In the backward pass the three input
  gradients, which must be summed, come out of one product already summed. The attention is
  `F.scaled_dot_product_attention(is_causal=True)`: no mask tensor, no (T, T) score matrix
  written out in full.

`make_fast(model)` swaps these into a `labcode.model.GPTModel` in place, keeping its weights;
`fast_gpt(cfg)` builds a fast GPT, with `tied_head=True` one whose output head is its token
embedding (GPT-2's and nanoGPT's choice: vocab_size x emb_dim fewer numbers for AdamW to update
each step, 19M at width 384). The KV cache and `labcode.generation.generate` work as
before. The fused `qkv` renames three tensors per block in the state dict: `fuse_qkv` turns
an explicit model's state dict into the fast model's and `split_qkv` turns it back, so
checkpoints move freely between the twins. GPT-2's weights load into the explicit model
(`labcode.gpt2_weights.load_gpt2`) and `make_fast` then fuses them.
"""
import re

import torch
from torch import nn
import torch.nn.functional as F

from labcode.attention import LayerKVCache, MultiHeadAttention
from labcode.gelu import GELU
from labcode.layernorm import LayerNorm
from labcode.model import GPTConfig, GPTModel


class FastGELU(GELU):
    """GPT-2's tanh GELU in one kernel."""

    def forward(self, x):
        return F.gelu(x, approximate="tanh")


class FastLayerNorm(LayerNorm):
    """`LayerNorm` (same `scale`, `shift`, `eps`) in one kernel."""

    def forward(self, x):  # x: (..., emb_dim)
        return F.layer_norm(x, self.scale.shape, self.scale, self.shift, self.eps)


class FusedAttention(nn.Module):
    """Causal multi-head attention with q, k and v from one projection, and sdpa's kernel."""

    def __init__(self, d_in: int, d_out: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.dropout_p = dropout
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=qkv_bias)  # rows: W_query | W_key | W_value
        self.out_proj = nn.Linear(d_out, d_out)

    def forward(self, x, cache: LayerKVCache | None = None):  # x: (B, T, d_in)
        B, T, _ = x.shape
        past = 0 if cache is None else len(cache)
        qkv = self.qkv(x)  # (B, T, 3 * d_out): q | k | v side by side
        queries, keys, values = (  # 3 x (B, nh, T, hs)
            t.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
            for t in qkv.split(self.d_out, dim=2))
        if cache is not None:
            keys, values = cache.append(keys, values)  # (B, nh, past + T, hs)

        dropout_p = self.dropout_p if self.training else 0.0
        if past == 0:
            context = F.scaled_dot_product_attention(
                queries, keys, values, dropout_p=dropout_p, is_causal=True)
        else:
            # new queries sit at past..past+T-1 and may see keys up to their own position
            # (one new token, the usual generation step, sees them all)
            may_see = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            context = F.scaled_dot_product_attention(
                queries, keys, values, attn_mask=None if T == 1 else may_see,
                dropout_p=dropout_p)

        context = context.transpose(1, 2).reshape(B, T, self.d_out)  # (B, T, d_out)
        return self.out_proj(context)

    @classmethod
    def from_separate(cls, att: MultiHeadAttention) -> "FusedAttention":
        """A `FusedAttention` computing what `att` computes: its q, k, v weights stacked."""
        fused = cls(att.W_query.in_features, att.d_out, att.dropout_p, att.num_heads,
                    qkv_bias=att.W_query.bias is not None)
        fused.to(att.out_proj.weight.device, att.out_proj.weight.dtype)
        with torch.no_grad():
            for kind in ("weight", "bias") if fused.qkv.bias is not None else ("weight",):
                getattr(fused.qkv, kind).copy_(torch.cat(  # weight: (3 d_out, d_in)
                    [getattr(layer, kind) for layer in (att.W_query, att.W_key, att.W_value)]))
        fused.out_proj = att.out_proj  # the same module: nothing to copy
        return fused


def fast_layer_norm(norm: LayerNorm) -> FastLayerNorm:
    """A `FastLayerNorm` sharing `norm`'s parameters (the same tensors, not copies) and eps."""
    fast = FastLayerNorm(norm.scale.shape[0], norm.eps)
    fast.scale, fast.shift = norm.scale, norm.shift
    return fast


def make_fast(model: GPTModel) -> GPTModel:
    """Swap `model`'s LayerNorms, GELUs and attention layers for their fast twins, in place.

    The weights are kept (q, k, v fused into `qkv`), so the model computes the same logits.
    Returns the model. Build an optimizer after this: `qkv` is a new parameter.
    """
    for block in model.trf_blocks:
        block.norm1 = fast_layer_norm(block.norm1)
        block.norm2 = fast_layer_norm(block.norm2)
        block.att = FusedAttention.from_separate(block.att)
        block.ff.layers[1] = FastGELU()  # layers: Linear(d, 4d), GELU, Linear(4d, d)
    model.final_norm = fast_layer_norm(model.final_norm)
    return model


def fast_gpt(cfg: GPTConfig, tied_head: bool = False) -> GPTModel:
    """A new GPT with fast layers, initialised as `GPTModel(cfg)` is (attention is always sdpa).

    `tied_head=True` makes the output head the token embedding, one tensor for both, as in
    GPT-2 and nanoGPT: a (vocab_size, emb_dim) matrix fewer for AdamW to update each step.
    """
    model = make_fast(GPTModel(cfg))
    if tied_head:
        model.out_head.weight = model.embed.tok_emb.weight
    return model


# -- state dicts: explicit <-> fast ---------------------------------------------------

_SEPARATE = re.compile(r"(.*\.)W_query\.(weight|bias)")
_FUSED = re.compile(r"(.*\.)qkv\.(weight|bias)")
_QKV = ("W_query", "W_key", "W_value")


def fuse_qkv(state: dict) -> dict:
    """An explicit GPTModel's state dict -> the fast model's: `W_query`, `W_key`, `W_value`
    stacked into `qkv` (rows q | k | v); every other tensor unchanged."""
    fused = {}
    for key, tensor in state.items():
        if match := _SEPARATE.fullmatch(key):
            prefix, kind = match.groups()
            fused[f"{prefix}qkv.{kind}"] = torch.cat([state[f"{prefix}{n}.{kind}"] for n in _QKV])
        elif not re.fullmatch(r".*\.W_(key|value)\.(weight|bias)", key):
            fused[key] = tensor
    return fused


def split_qkv(state: dict) -> dict:
    """A fast model's state dict -> the explicit GPTModel's: `qkv` split into its three parts."""
    split = {}
    for key, tensor in state.items():
        if match := _FUSED.fullmatch(key):
            prefix, kind = match.groups()
            # clones, not views of one tensor: safetensors refuses tensors that share memory
            split.update({f"{prefix}{n}.{kind}": part.clone()
                          for n, part in zip(_QKV, tensor.chunk(3, dim=0))})
        else:
            split[key] = tensor
    return split

"""Self-attention, built up the way a learner meets it.

1. `simple_attention`: no trainable weights. Scores are dot products between
   token embeddings, softmax turns them into weights, and each token's context
   vector is the weighted sum of all embeddings.
2. `SelfAttention`: the same, but queries, keys and values are learnt projections,
   and scores are scaled by 1/sqrt(d_k).
3. `CausalAttention`: a mask hides the future (token t only sees tokens <= t) and
   dropout is applied to the weights while training.
4. `MultiHeadAttentionWrapper`: several causal heads side by side, outputs concatenated.
5. `MultiHeadAttention`: the same maths fused into one set of matrices, the heads
   split with view/transpose. It has two paths that must agree: the explicit maths
   (`attention="explicit"`) and PyTorch's fused kernel (`attention="sdpa"`). It also
   takes a `LayerKVCache` so generation can reuse the keys and values of past tokens.

The experiments about attention are in `labcode.labs`, one post each: `labs.attention` (these
layers on a few words), `labs.attention_retrieval` (why attention works: fetching a value by its
key), `labs.attention_scaling` (why the scores are divided by sqrt(d_k)), `labs.attention_heads`
(the reshapes that split and merge the heads) and `labs.attention_cost` (time and memory as the
context grows).
"""
import torch
from torch import nn
import torch.nn.functional as F


# -- 1. attention without trainable weights ------------------------------------

def simple_attention(inputs):
    """Context vectors from plain dot-product attention. inputs: (T, d) -> (T, d)."""
    scores = inputs @ inputs.T  # (T, T): how similar token i is to token j
    weights = torch.softmax(scores, dim=-1)  # (T, T): each row sums to 1
    return weights @ inputs, weights  # (T, d): weighted sums of all tokens


# -- 2. self-attention with trainable weights ------------------------------------

class SelfAttention(nn.Module):
    """Scaled dot-product attention with learnt query, key and value projections."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):  # x: (B, T, d_in)
        queries = self.W_query(x)  # (B, T, d_out)
        keys = self.W_key(x)  # (B, T, d_out)
        values = self.W_value(x)  # (B, T, d_out)
        scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        # dividing by sqrt(d_k) keeps the softmax from saturating as d_k grows
        weights = torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)
        return weights @ values  # (B, T, d_out)


# -- 3. causal attention with dropout --------------------------------------------

class CausalAttention(nn.Module):
    """Self-attention where token t attends only to tokens 0..t, with dropout on the weights."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float,
                 qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        # True above the diagonal: the future positions each row must not see.
        # A buffer moves with .to(device) but is not a weight (and not saved).
        mask = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def attention_weights(self, x):  # x: (B, T, d_in)
        """The (B, T, T) causal attention weights; row t is spread over tokens 0..t."""
        T = x.shape[1]
        queries = self.W_query(x)  # (B, T, d_out)
        keys = self.W_key(x)  # (B, T, d_out)
        scores = queries @ keys.transpose(1, 2)  # (B, T, T)
        scores = scores.masked_fill(self.mask[:T, :T], float("-inf"))  # softmax turns them into 0
        return torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)

    def forward(self, x):  # x: (B, T, d_in)
        weights = self.dropout(self.attention_weights(x))  # dropout is the identity in eval mode
        return weights @ self.W_value(x)  # (B, T, d_out)


# -- 4. multi-head attention as a wrapper of single heads -----------------------

class MultiHeadAttentionWrapper(nn.Module):
    """`num_heads` independent causal heads; their outputs are concatenated."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float,
                 num_heads: int, qkv_bias: bool = False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.heads = nn.ModuleList([
            CausalAttention(d_in, d_out // num_heads, context_length, dropout, qkv_bias)
            for _ in range(num_heads)
        ])

    def forward(self, x):  # x: (B, T, d_in)
        return torch.cat([head(x) for head in self.heads], dim=-1)  # (B, T, d_out)


# -- 5. fused multi-head attention, explicit and sdpa, with a KV cache ---------

class LayerKVCache:
    """The keys and values one attention layer has computed for the tokens so far."""

    def __init__(self):
        self.keys = None  # (B, nh, T_past, hs)
        self.values = None

    def __len__(self):
        return 0 if self.keys is None else self.keys.shape[2]

    def append(self, keys, values):
        """Add the new tokens' keys/values; return keys/values for all tokens so far."""
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat([self.keys, keys], dim=2)  # (B, nh, T_past + T, hs)
            self.values = torch.cat([self.values, values], dim=2)
        return self.keys, self.values


class KVCache:
    """One `LayerKVCache` per transformer block; `len()` is the number of cached positions."""

    def __init__(self, n_layers: int):
        self.layers = [LayerKVCache() for _ in range(n_layers)]

    def __len__(self):
        return len(self.layers[0])


class MultiHeadAttention(nn.Module):
    """Causal multi-head attention with one fused projection per Q, K, V.

    `attention="explicit"` spells the maths out; `attention="sdpa"` calls
    `F.scaled_dot_product_attention`, which computes the same thing in a fused kernel.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float,
                 num_heads: int, qkv_bias: bool = False, attention: str = "explicit"):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        assert attention in ("explicit", "sdpa"), f"unknown attention {attention!r}"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.attention = attention
        self.dropout_p = dropout
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mixes what the heads found
        self.dropout = nn.Dropout(dropout)
        mask = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x, cache: LayerKVCache | None = None):  # x: (B, T, d_in)
        B, T, _ = x.shape
        past = 0 if cache is None else len(cache)  # tokens already in the cache

        # project, then split d_out into heads: (B, T, d_out) -> (B, nh, T, hs)
        queries = self.W_query(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            keys, values = cache.append(keys, values)  # (B, nh, past + T, hs)

        # the T new queries sit at positions past..past+T-1 and see keys 0..their own position
        mask = self.mask[past:past + T, :past + T]  # (T, past + T), True = hidden

        if self.attention == "sdpa":
            dropout_p = self.dropout_p if self.training else 0.0
            if past == 0:
                context = F.scaled_dot_product_attention(
                    queries, keys, values, dropout_p=dropout_p, is_causal=True)
            else:
                # is_causal aligns the mask top-left, wrong when queries start at `past`,
                # so pass the shifted mask (sdpa's boolean mask means "may attend")
                context = F.scaled_dot_product_attention(
                    queries, keys, values, attn_mask=~mask, dropout_p=dropout_p)
        else:
            scores = queries @ keys.transpose(2, 3)  # (B, nh, T, past + T)
            scores = scores.masked_fill(mask, float("-inf"))
            weights = torch.softmax(scores / self.head_dim ** 0.5, dim=-1)
            weights = self.dropout(weights)
            context = weights @ values  # (B, nh, T, hs)

        # put the heads back side by side: (B, nh, T, hs) -> (B, T, d_out)
        context = context.transpose(1, 2).contiguous().view(B, T, self.d_out)
        return self.out_proj(context)


# -- all the variants compute the same thing -------------------------------------

def copy_heads_into_fused(wrapper: MultiHeadAttentionWrapper, fused: MultiHeadAttention):
    """Copy a wrapper's per-head weights into a fused layer; out_proj becomes the identity.

    Head h of the wrapper owns rows h*hs..(h+1)*hs of the fused W_query, W_key and W_value.
    """
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(fused, name).weight.copy_(
                torch.cat([getattr(head, name).weight for head in wrapper.heads], dim=0))
            if getattr(fused, name).bias is not None:
                getattr(fused, name).bias.copy_(
                    torch.cat([getattr(head, name).bias for head in wrapper.heads], dim=0))
        fused.out_proj.weight.copy_(torch.eye(fused.d_out))
        fused.out_proj.bias.zero_()

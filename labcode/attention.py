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

The functions the posts run (lab entry points) come last, after the ideas. The experiments
about attention live beside this module, one idea each: `attention_retrieval` (why attention
works: fetching a value by its key), `attention_scaling` (why the scores are divided by
sqrt(d_k)), `attention_heads` (the reshapes that split and merge the heads) and
`attention_cost` (time and memory as the context grows).
"""
import torch
from torch import nn
import torch.nn.functional as F

from labcode.figures import WIDTH, house_style


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


# === Lab entry points: the functions the posts run ==================================

def _toy_embeddings(text: str, dim: int = 3):
    """One small random vector per word of `text`, seeded by the caller."""
    words = text.split()
    return words, torch.rand(len(words), dim)


def simple_attention_demo(text: str = "Your journey starts with one step") -> dict:
    """Print attention weights between the words of `text`; return them with a summary."""
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    context, weights = simple_attention(inputs)
    print("attention weights (row: the query word; column: the word it attends to)")
    print(" " * 9 + "".join(f"{w:>9}" for w in words))
    for word, row in zip(words, weights.tolist()):
        print(f"{word:>9}" + "".join(f"{w:9.2f}" for w in row))
    sums = weights.sum(dim=-1)
    print("every row sums to 1:", torch.allclose(sums, torch.ones(len(words))))
    return {"words": words, "weights": weights.tolist(), "context": context.tolist(),
            "min_weight": weights.min().item(), "max_weight": weights.max().item(),
            "uniform_weight": 1 / len(words),
            "most_attended": [words[i] for i in weights.argmax(dim=-1).tolist()],
            "rows_sum_to_one": torch.allclose(sums, torch.ones(len(words)))}


def causal_weights_demo(seq_len: int = 6, text: str = "Your journey starts with one step",
                        device: str = "cpu"):
    """Draw the causal attention weights of the first `seq_len` words as a heatmap."""
    import matplotlib.pyplot as plt

    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    words, inputs = words[:seq_len], inputs[:seq_len].to(device)
    att = CausalAttention(d_in=inputs.shape[-1], d_out=2, context_length=len(words),
                          dropout=0.0).to(device)
    with torch.no_grad():
        weights = att.attention_weights(inputs.unsqueeze(0))[0].cpu()  # (T, T)

    fig, ax = plt.subplots(figsize=(WIDTH, 4.4))
    image = ax.imshow(weights.numpy(), cmap="viridis")
    ax.set_xticks(range(len(words)), words, rotation=45, ha="right")
    ax.set_yticks(range(len(words)), words)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    fig.colorbar(image, ax=ax)
    ax.set_title("Causal attention weights: no word attends to a later one")
    house_style(fig)
    print("upper triangle is zero: no word attends to a later word")
    return weights


def causal_dropout_demo(p: float = 0.5, text: str = "Your journey starts with one step") -> dict:
    """Causal weights with dropout, in eval and in training mode: training rescales the survivors.

    nn.Dropout zeroes each weight with probability p and multiplies the rest by 1/(1-p), so
    the expected row sum stays 1 but any single row's sum does not.
    """
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    att = CausalAttention(d_in=inputs.shape[-1], d_out=2, context_length=len(words), dropout=p)
    with torch.no_grad():
        weights = att.attention_weights(inputs.unsqueeze(0))[0]  # (T, T)
        att.train()
        dropped = att.dropout(weights)  # what forward() uses while training
    print(f"dropout p = {p}: survivors are multiplied by 1/(1-p) = {1 / (1 - p):g}")
    for mode, w in (("eval mode (dropout off)", weights), ("training mode (dropout on)", dropped)):
        print(f"\n{mode:<{9 + 7 * len(words)}}  row sum")
        for t, word in enumerate(words):
            cells = "".join(f"{v:7.2f}" for v in w[t, :t + 1].tolist())
            print(f"{word:>9}{cells:<{7 * len(words)}}  {w[t].sum().item():7.2f}")
    eval_sums, train_sums = weights.sum(dim=-1).tolist(), dropped.sum(dim=-1).tolist()
    visible = torch.ones_like(weights, dtype=torch.bool).tril()
    return {"p": p, "scale": 1 / (1 - p), "eval_row_sums": eval_sums,
            "train_row_sums": train_sums, "min_train_row_sum": min(train_sums),
            "max_train_row_sum": max(train_sums),
            "dropped_fraction": (dropped[visible] == 0).float().mean().item()}


def attention_variants_agree(device: str = "cpu") -> dict:
    """Run every multi-head variant on the same weights; report max differences to the wrapper.

    For each variant: the largest absolute difference of its output and of the input's
    gradient from the explicit reference (the wrapper of single heads).
    """
    torch.manual_seed(123)
    d, T, heads = 32, 16, 4
    x = torch.randn(2, T, d, device=device)
    reference = MultiHeadAttentionWrapper(d, d, T, dropout=0.0, num_heads=heads).to(device)
    variants = {"wrapper": reference}
    for attention in ("explicit", "sdpa"):
        fused = MultiHeadAttention(d, d, T, 0.0, heads, attention=attention).to(device)
        copy_heads_into_fused(reference, fused)
        variants[attention] = fused

    def run(module):
        inp = x.clone().requires_grad_(True)
        out = module(inp)
        out.square().sum().backward()
        return out.detach(), inp.grad

    ref_out, ref_grad = run(reference)
    result = {}
    for name, module in variants.items():
        out, grad = run(module)
        result[name] = {"output_diff": (out - ref_out).abs().max().item(),
                        "grad_diff": (grad - ref_grad).abs().max().item()}
    labels = {"wrapper": "wrapper of heads (reference)", "explicit": "batched, explicit softmax",
              "sdpa": "batched, sdpa"}
    print(f"{'path':<30}{'max |Δ output|':>16}{'max |Δ grad|':>14}")
    for name, diffs in result.items():
        print(f"{labels[name]:<30}{diffs['output_diff']:>16.1e}{diffs['grad_diff']:>14.1e}")
    result["largest"] = max(v for diffs in result.values() for v in diffs.values())
    return result

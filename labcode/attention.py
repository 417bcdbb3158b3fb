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

The functions the posts run (lab entry points) come last, after the ideas.
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

    fig, ax = plt.subplots(figsize=(5, 4))
    image = ax.imshow(weights.numpy(), cmap="viridis")
    ax.set_xticks(range(len(words)), words, rotation=45, ha="right")
    ax.set_yticks(range(len(words)), words)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
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


def softmax_saturation_demo(dims=(4, 16, 64, 256, 1024), n_keys: int = 16,
                            n_rows: int = 256) -> dict:
    """Softmax rows of q·k scores as d_k grows: unscaled, divided by sqrt(d_k), divided by d_k.

    q and k have independent unit-variance components, as at initialisation. For each d_k:
    the variance of q·k, and over `n_rows` rows of `n_keys` scores, the mean largest weight,
    the mean entropy, the share of saturated rows (largest weight > 0.99) and the median size
    (Frobenius norm) of the softmax Jacobian, the factor every gradient reaching the scores
    is multiplied by.
    """
    import math

    import matplotlib.pyplot as plt

    torch.manual_seed(123)
    scalings = {"none": lambda d: 1.0, "sqrt": lambda d: d ** 0.5, "d_k": lambda d: float(d)}
    result = {"dims": list(dims), "n_keys": n_keys, "n_rows": n_rows,
              "score_var": [], "scaled_score_var": []}
    for name in scalings:
        result[name] = {"max_weight": [], "entropy": [], "saturated": [], "grad": [],
                        "grad_mean": []}
    for d_k in dims:
        q = torch.randn(n_rows, 1, d_k)  # one query per row...
        k = torch.randn(n_rows, n_keys, d_k)  # ...and its own n_keys keys
        scores = (q * k).sum(dim=-1)  # (n_rows, n_keys): q·k for every key
        result["score_var"].append(scores.var().item())
        result["scaled_score_var"].append((scores / d_k ** 0.5).var().item())
        for name, divisor in scalings.items():
            w = torch.softmax(scores / divisor(d_k), dim=-1)  # (n_rows, n_keys)
            largest = w.max(dim=-1).values
            entropy = -torch.special.xlogy(w, w).sum(dim=-1)  # 0 one-hot, ln(n_keys) uniform
            # d softmax / d scores = diag(w) - w w^T: near zero when w is nearly one-hot
            jacobian = torch.diag_embed(w) - w.unsqueeze(-1) * w.unsqueeze(-2)
            size = jacobian.norm(dim=(-2, -1))  # (n_rows,)
            stats = result[name]
            stats["max_weight"].append(largest.mean().item())
            stats["entropy"].append(entropy.mean().item())
            stats["saturated"].append((largest > 0.99).float().mean().item())
            stats["grad"].append(size.median().item())
            stats["grad_mean"].append(size.mean().item())
    result["uniform"] = {"max_weight": 1 / n_keys, "entropy": math.log(n_keys),
                         "grad": (n_keys - 1) ** 0.5 / n_keys}

    print(f"{n_rows} rows of {n_keys} scores q·k per d_k; q, k ~ N(0, 1)")
    print(f"{'':>5}{'':>9}{'mean largest weight':>23}{'rows':>7}"
          f"{'median |d softmax/d s|':>28}")
    print(f"{'d_k':>5}{'var(q·k)':>9}  {'none':>7}{'sqrt':>7}{'d_k':>7}{'>0.99':>7}"
          f"  {'none':>9}{'sqrt':>9}{'d_k':>9}")
    for i, d_k in enumerate(dims):
        print(f"{d_k:>5}{result['score_var'][i]:>9.1f}  "
              + "".join(f"{result[n]['max_weight'][i]:>7.3f}" for n in scalings)
              + f"{result['none']['saturated'][i]:>7.0%}  "
              + "".join(f"{result[n]['grad'][i]:>9.1e}" for n in scalings))
    print(f"{'uniform row':>14}  {1 / n_keys:>21.3f}{'':>7}  {result['uniform']['grad']:>27.1e}")

    labels = {"none": "q·k", "sqrt": "q·k / √d_k", "d_k": "q·k / d_k"}
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    panels = (("max_weight", "mean largest weight"), ("entropy", "mean entropy (nats)"),
              ("grad", "median |Jacobian of softmax|"))
    for ax, (key, title) in zip(axes, panels):
        for name, style in zip(scalings, ("-o", "-s", "--^")):
            ax.plot(dims, result[name][key], style, label=labels[name], markersize=4)
        ax.axhline(result["uniform"][key], color="grey", linestyle=":", linewidth=1,
                   label="uniform row")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return result


def saturated_row_gradient(d_k: int = 256, n_keys: int = 8, d_v: int = 4) -> dict:
    """One query against `n_keys` keys, unscaled and scaled: weights and the gradient each score gets.

    The loss is linear in the attention output (L = (w @ V) · g for a random upstream
    gradient g), as it is inside a network. For contrast, the gradient of -log w[target]
    (how the output layer's softmax is trained) on the least attended key. A key whose
    score gets a gradient below 1e-4 is counted as out of reach of learning.
    """
    torch.manual_seed(123)
    q, keys = torch.randn(d_k), torch.randn(n_keys, d_k)
    values, upstream = torch.randn(n_keys, d_v), torch.randn(d_v)
    result = {"d_k": d_k, "n_keys": n_keys}
    for name, divisor in (("none", 1.0), ("sqrt", d_k ** 0.5)):
        query = q.clone().requires_grad_(True)
        scores = keys @ query / divisor  # (n_keys,)
        scores.retain_grad()
        w = torch.softmax(scores, dim=-1)
        (w @ values @ upstream).backward()  # the loss: output · upstream gradient
        target = w.argmin()  # the key the output softmax would be asked to pick
        ce_grad = w.detach().clone()
        ce_grad[target] -= 1  # d(-log w[target]) / d scores = w - onehot(target)
        result[name] = {"scores": scores.tolist(), "weights": w.tolist(),
                        "score_grads": scores.grad.tolist(),
                        "max_weight": w.max().item(),
                        "max_score_grad": scores.grad.abs().max().item(),
                        "live_keys": (scores.grad.abs() > 1e-4).sum().item(),
                        "largest_dead_grad": max([g for g in scores.grad.abs().tolist()
                                                  if g <= 1e-4], default=0.0),
                        "least_attended_grad": scores.grad[target].abs().item(),
                        "query_grad": query.grad.norm().item(),
                        "ce_max_grad": ce_grad.abs().max().item()}
    none, sqrt = result["none"], result["sqrt"]
    result["grad_ratio"] = sqrt["max_score_grad"] / none["max_score_grad"]
    result["query_grad_ratio"] = sqrt["query_grad"] / none["query_grad"]

    print(f"one query, {n_keys} keys, d_k = {d_k}")
    print(f"{'':>4}{'unscaled q·k':>30}{'scaled q·k / √d_k':>30}")
    print(f"{'key':>4}" + 2 * f"{'score':>9}{'weight':>9}{'dL/ds':>12}")
    for j in range(n_keys):
        print(f"{j:>4}" + "".join(f"{r['scores'][j]:>9.2f}{r['weights'][j]:>9.4f}"
                                  f"{r['score_grads'][j]:>12.1e}" for r in (none, sqrt)))
    print(f"largest |dL/ds|: {none['max_score_grad']:.1e} unscaled, "
          f"{sqrt['max_score_grad']:.1e} scaled")
    print(f"keys whose |dL/ds| > 1e-4: {none['live_keys']} of {n_keys} unscaled, "
          f"{sqrt['live_keys']} of {n_keys} scaled")
    print(f"|dL/dq|, what reaches W_q: {none['query_grad']:.1e} unscaled, "
          f"{sqrt['query_grad']:.1e} scaled")
    print(f"largest |d(-log w)/ds| on the least attended key: {none['ce_max_grad']:.2f} "
          f"unscaled, {sqrt['ce_max_grad']:.2f} scaled")
    return result


def multihead_shapes_demo(batch: int = 2, seq_len: int = 5, d_in: int = 8, d_out: int = 12,
                          num_heads: int = 3, device: str = "cpu") -> dict:
    """Walk one batch through MultiHeadAttention's forward, printing every shape.

    The layer's weights are copied from a wrapper of separate heads (with an identity
    output projection), so each step can be compared with what the separate heads compute.
    Draws each head's attention weights for the first sequence of the batch.
    """
    import matplotlib.pyplot as plt

    torch.manual_seed(123)
    wrapper = MultiHeadAttentionWrapper(d_in, d_out, seq_len, 0.0, num_heads).to(device)
    fused = MultiHeadAttention(d_in, d_out, seq_len, 0.0, num_heads).to(device)
    copy_heads_into_fused(wrapper, fused)
    x = torch.randn(batch, seq_len, d_in, device=device)
    B, T, _ = x.shape
    h, hs = num_heads, d_out // num_heads
    shapes = {}

    def show(label, tensor):
        shapes[label] = list(tensor.shape)
        print(f"{label:<44}{str(tuple(tensor.shape)):>14}   contiguous: {tensor.is_contiguous()}")

    with torch.no_grad():
        show("x", x)
        q_flat = fused.W_query(x)
        show("W_query(x)", q_flat)
        q_split = q_flat.view(B, T, h, hs)
        show(".view(B, T, h, hs)", q_split)
        queries = q_split.transpose(1, 2)
        show(".transpose(1, 2)  -> queries", queries)
        keys = fused.W_key(x).view(B, T, h, hs).transpose(1, 2)
        values = fused.W_value(x).view(B, T, h, hs).transpose(1, 2)
        scores = queries @ keys.transpose(2, 3)
        show("queries @ keys.transpose(2, 3)  -> scores", scores)
        scores = scores.masked_fill(fused.mask[:T, :T], float("-inf"))
        weights = torch.softmax(scores / hs ** 0.5, dim=-1)
        context = weights @ values
        show("weights @ values  -> context", context)
        swapped = context.transpose(1, 2)
        show("context.transpose(1, 2)", swapped)
        merged = swapped.contiguous().view(B, T, d_out)
        show(".contiguous().view(B, T, d_out)", merged)
        out = fused.out_proj(merged)
        show("out_proj(...)", out)

        by_hand = (out - fused(x)).abs().max().item()
        per_head = []
        for i, head in enumerate(wrapper.heads):
            cols = slice(i * hs, (i + 1) * hs)  # head i owns these columns of d_out
            per_head.append({
                "head": i,
                "query_diff": (queries[:, i] - head.W_query(x)).abs().max().item(),
                "weights_diff": (weights[:, i] - head.attention_weights(x)).abs().max().item(),
                "output_diff": (merged[..., cols] - head(x)).abs().max().item()})
        wrapper_diff = (out - wrapper(x)).abs().max().item()
        query_is_slice = torch.equal(queries[:, 1], q_flat[..., hs:2 * hs])

    grads = []
    for module in (fused, wrapper):  # backward: the same loss through both layers
        inp = x.clone().requires_grad_(True)
        module(inp).square().sum().backward()
        grads.append(inp.grad)
    grad_diff = (grads[0] - grads[1]).abs().max().item()

    print(f"\nstep by step vs fused(x): max |difference| {by_hand:.1e}")
    print(f"queries[:, 1] is columns {hs}..{2 * hs - 1} of W_query(x): {query_is_slice}")
    print(f"{'head':>4}{'queries':>12}{'weights':>12}{'output':>12}   max |fused - separate head|")
    for row in per_head:
        print(f"{row['head']:>4}{row['query_diff']:>12.1e}{row['weights_diff']:>12.1e}"
              f"{row['output_diff']:>12.1e}")
    print(f"whole layer vs the wrapper, max |difference|: output {wrapper_diff:.1e}, "
          f"d loss / d x {grad_diff:.1e}")

    fig, axes = plt.subplots(1, h, figsize=(3 * h, 2.8))
    for i, ax in enumerate(axes):
        ax.imshow(weights[0, i].cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {i}", fontsize=10)
        ax.set_xlabel("key position")
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
    axes[0].set_ylabel("query position")
    fig.tight_layout()
    return {"batch": B, "seq_len": T, "heads": h, "head_dim": hs, "d_out": d_out,
            "shapes": shapes, "step_by_step_diff": by_hand, "query_is_slice": query_is_slice,
            "per_head": per_head, "wrapper_diff": wrapper_diff, "grad_diff": grad_diff,
            "largest_head_diff": max(v for row in per_head for k, v in row.items() if k != "head")}


def view_reshape_demo(heads: int = 2, seq_len: int = 3, head_dim: int = 2) -> dict:
    """Merge heads back with and without the transpose; what view, reshape and contiguous do.

    The context tensor holds 0, 1, 2, ... so each number says where it sits in memory:
    head 0's vectors first, then head 1's.
    """
    import textwrap

    h, T, hs = heads, seq_len, head_dim
    context = torch.arange(h * T * hs, dtype=torch.float32).view(1, h, T, hs)  # (B, h, T, hs)
    swapped = context.transpose(1, 2)  # (B, T, h, hs): same memory, strides swapped
    print(f"context (B, h, T, hs) = {tuple(context.shape)}, strides {context.stride()}")
    print(context[0])
    print(f"\n.transpose(1, 2) -> {tuple(swapped.shape)}, strides {swapped.stride()}, "
          f"contiguous: {swapped.is_contiguous()}")
    print(f"shares context's memory: {swapped.data_ptr() == context.data_ptr()}")
    try:
        swapped.view(1, T, h * hs)
        view_error = ""
    except RuntimeError as error:
        view_error = str(error).split(".")[0]
    print("\n.view(B, T, h*hs) -> RuntimeError:")
    print(textwrap.fill(view_error + ".", width=72, initial_indent="  ", subsequent_indent="  "))
    reshaped = swapped.reshape(1, T, h * hs)
    fixed = swapped.contiguous().view(1, T, h * hs)
    print(f".reshape(B, T, h*hs) copied the data: {reshaped.data_ptr() != context.data_ptr()}")
    print(f".contiguous().view(...) equals .reshape(...): {torch.equal(fixed, reshaped)}")
    print(fixed[0])
    wrong = context.reshape(1, T, h * hs)  # no transpose: runs, but mixes positions
    print("\nwithout the transpose, .reshape(B, T, h*hs) runs and is wrong:")
    print(wrong[0])
    print(f"a view of the contiguous context (no copy): "
          f"{context.view(1, T, h * hs).data_ptr() == context.data_ptr()}")
    return {"context_strides": list(context.stride()), "swapped_strides": list(swapped.stride()),
            "swapped_contiguous": swapped.is_contiguous(),
            "swapped_shares_memory": swapped.data_ptr() == context.data_ptr(),
            "view_error": view_error,
            "reshape_copied": reshaped.data_ptr() != context.data_ptr(),
            "reshape_equals_contiguous_view": torch.equal(fixed, reshaped),
            "merged_first_token": fixed[0, 0].tolist(), "wrong_first_token": wrong[0, 0].tolist(),
            "wrong_max_diff": (wrong - fixed).abs().max().item()}


def retrieval_by_content(n_pairs: int = 8, key_dim: int = 16, value_dim: int = 8,
                         steps: int = 300, batch: int = 64, lr: float = 0.01,
                         log_every: int = 25, threads: int = 1) -> dict:
    """Train one attention layer to fetch the value whose key matches the query.

    Each example holds `n_pairs` tokens [key; value] with random keys and values, and a
    query token [key of one pair; zeros]. The layer's output must be that pair's value.
    Averaging (every weight 1/n_pairs) is the baseline: the best it can output is the mean
    value. Logs, on a fixed test batch, the mean weight on the matching pair, how often it is
    the largest weight, the score gap (matching score minus the largest other) and the error.
    Runs on `threads` CPU threads: tensors this small gain nothing from more, and lose a lot
    when the machine is busy.
    """
    import matplotlib.pyplot as plt

    d_in = key_dim + value_dim

    def make_batch(n):
        keys = torch.randn(n, n_pairs, key_dim)
        values = torch.randn(n, n_pairs, value_dim)
        target = torch.randint(n_pairs, (n,))
        tokens = torch.cat([keys, values], dim=-1)  # (n, P, d_in)
        query = torch.cat([keys[torch.arange(n), target], torch.zeros(n, value_dim)], dim=-1)
        return tokens, query, values[torch.arange(n), target], target

    torch.manual_seed(123)
    W_query = nn.Linear(d_in, key_dim, bias=False)
    W_key = nn.Linear(d_in, key_dim, bias=False)
    W_value = nn.Linear(d_in, value_dim, bias=False)

    def attend(tokens, query):
        q = W_query(query).unsqueeze(1)  # (n, 1, dk)
        k, v = W_key(tokens), W_value(tokens)  # (n, P, dk), (n, P, dv)
        scores = (q @ k.transpose(1, 2)).squeeze(1) / key_dim ** 0.5  # (n, P)
        weights = torch.softmax(scores, dim=-1)
        return (weights.unsqueeze(1) @ v).squeeze(1), weights, scores  # (n, dv), (n, P)

    test_tokens, test_query, test_value, test_target = make_batch(512)
    # averaging: the best output that ignores the query is the mean of the values
    average = test_tokens[..., key_dim:].mean(dim=1)
    average_error = (average - test_value).square().mean().item()
    rows = torch.arange(len(test_target))

    def evaluate(step):
        with torch.no_grad():
            out, w, s = attend(test_tokens, test_query)
        others = s.clone()
        others[rows, test_target] = float("-inf")
        return {"step": step,
                "target_weight": w[rows, test_target].mean().item(),
                "accuracy": (w.argmax(dim=-1) == test_target).float().mean().item(),
                "score_gap": (s[rows, test_target] - others.max(dim=-1).values).mean().item(),
                "error": (out - test_value).square().mean().item()}, w

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    params = [*W_query.parameters(), *W_key.parameters(), *W_value.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    history, first = [], None
    for step in range(steps + 1):
        if step % log_every == 0:
            record, w = evaluate(step)
            history.append(record)
            first = w if first is None else first
        if step == steps:
            break
        tokens, query, value, _ = make_batch(batch)
        loss = (attend(tokens, query)[0] - value).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(previous_threads)
    last = w

    print(f"{n_pairs} key/value pairs per example; the query is one of the keys")
    print(f"{'step':>6}{'weight on match':>17}{'match is max':>14}{'score gap':>11}{'error':>8}")
    for r in history:
        print(f"{r['step']:>6}{r['target_weight']:>17.3f}{r['accuracy']:>14.1%}"
              f"{r['score_gap']:>11.2f}{r['error']:>8.3f}")
    print(f"averaging (every weight 1/{n_pairs}): error {average_error:.3f}")

    shown = 12  # test examples drawn in the heatmaps
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    for ax, w, title in ((axes[0], first, "step 0"), (axes[1], last, f"step {steps}")):
        ax.imshow(w[:shown].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.scatter(test_target[:shown], range(shown), marker="o", facecolors="none",
                   edgecolors="red", s=60, label="matching key")
        ax.set_title(f"attention weights, {title}", fontsize=10)
        ax.set_xlabel("position of the pair")
        ax.set_xticks(range(n_pairs))
    axes[0].set_ylabel("test example")
    axes[0].legend(fontsize=7, loc="lower left")
    ax = axes[2]
    logged = [r["step"] for r in history]
    ax.plot(logged, [r["error"] for r in history], "-o", markersize=3, label="attention: error")
    ax.axhline(average_error, color="grey", linestyle="--", label="averaging: error")
    ax.plot(logged, [r["target_weight"] for r in history], "-s", markersize=3,
            label="weight on the match")
    ax.set_xlabel("training step")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return {"n_pairs": n_pairs, "key_dim": key_dim, "value_dim": value_dim, "steps": steps,
            "uniform_weight": 1 / n_pairs, "average_error": average_error,
            "value_variance": test_value.var().item(), "history": history,
            "start": history[0], "end": history[-1],
            "error_ratio": average_error / history[-1]["error"]}


def attention_cost(lengths=(64, 128, 256, 512, 1024), heads: int = 4, head_dim: int = 64,
                   repeats: int = 7, fit_from: int = 256, threads: int = 1,
                   device: str = "cpu") -> dict:
    """Time causal attention forward + backward, explicit and sdpa, as the context T grows.

    Only the attention itself runs (queries, keys and values are given, no projections), so
    nothing linear in T hides the T^2 part. Times are the fastest of `repeats` runs; the
    exponent is the slope of log time against log T over the lengths >= `fit_from`. Memory
    is exact, not measured: the float32 bytes of one T x T score matrix per head, and of the
    scores and weights the explicit path keeps for the backward pass, over all heads.
    """
    import math
    import time

    import matplotlib.pyplot as plt

    def explicit(q, k, v):
        T = q.shape[-2]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
        scores = (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf"))  # (B, nh, T, T)
        return torch.softmax(scores / q.shape[-1] ** 0.5, dim=-1) @ v  # (B, nh, T, hs)

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def seconds(fn, q, k, v):
        q.grad = k.grad = v.grad = None
        sync()
        start = time.perf_counter()
        fn(q, k, v).sum().backward()
        sync()
        return time.perf_counter() - start

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(123)
    inputs = {T: [torch.randn(1, heads, T, head_dim, device=device, requires_grad=True)
                  for _ in range(3)] for T in lengths}
    best = {(T, name): float("inf") for T in lengths for name in ("explicit", "sdpa")}
    # rounds over every (T, path) pair, so a burst of load on a shared machine hits them all;
    # round 0 warms up and is not counted, then each keeps its fastest run
    for round_ in range(repeats + 1):
        for T, (q, k, v) in inputs.items():
            for name, fn in (("explicit", explicit), ("sdpa", sdpa)):
                elapsed = seconds(fn, q, k, v)
                if round_ > 0:
                    best[T, name] = min(best[T, name], elapsed)
    torch.set_num_threads(previous_threads)
    rows = []
    for T in lengths:
        score_bytes = T * T * 4  # one float32 T x T matrix for one head
        rows.append({"T": T, "explicit_ms": 1e3 * best[T, "explicit"],
                     "sdpa_ms": 1e3 * best[T, "sdpa"],
                     "score_matrix_bytes": score_bytes,
                     "score_matrix_mib": score_bytes / 2 ** 20,
                     "all_heads_mib": heads * score_bytes / 2 ** 20,
                     "qkv_mib": 3 * heads * T * head_dim * 4 / 2 ** 20})

    def slope(key):
        fit = [(math.log(r["T"]), math.log(r[key])) for r in rows if r["T"] >= fit_from]
        mx = sum(x for x, _ in fit) / len(fit)
        my = sum(y for _, y in fit) / len(fit)
        return (sum((x - mx) * (y - my) for x, y in fit)
                / sum((x - mx) ** 2 for x, _ in fit))

    exponents = {"explicit": slope("explicit_ms"), "sdpa": slope("sdpa_ms")}
    on = f"{threads} CPU thread{'s' if threads > 1 else ''}" if device == "cpu" else device
    print(f"causal attention, {heads} heads of {head_dim}, batch 1, forward + backward, {on}")
    print("float32 memory, exact:")
    print(f"{'T':>6}{'one T x T, one head':>22}{'T x T, all heads':>19}{'q, k, v':>12}")
    for r in rows:
        print(f"{r['T']:>6}{r['score_matrix_bytes']:>16,} bytes{r['all_heads_mib']:>15.2f} MiB"
              f"{r['qkv_mib']:>8.2f} MiB")
    print("times: see the figure (measured on the machine that built this page)")

    Ts = [r["T"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_t.plot(Ts, [r["explicit_ms"] for r in rows], "-o", markersize=4, label="explicit")
    ax_t.plot(Ts, [r["sdpa_ms"] for r in rows], "-s", markersize=4, label="sdpa")
    ref = rows[-1]["explicit_ms"]
    ax_t.plot(Ts, [ref * (t / Ts[-1]) ** 2 for t in Ts], ":", color="grey", label="∝ T²")
    ax_t.set_ylabel("forward + backward (ms)")
    ax_t.set_title("time (measured)", fontsize=10)
    ax_m.plot(Ts, [r["score_matrix_mib"] for r in rows], "-o", markersize=4,
              label="one T×T matrix, one head")
    ax_m.plot(Ts, [r["qkv_mib"] for r in rows], "-s", markersize=4, label="q, k, v, all heads")
    ax_m.set_ylabel("MiB (float32)")
    ax_m.set_title("memory (exact)", fontsize=10)
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length T")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return {"heads": heads, "head_dim": head_dim, "fit_from": fit_from, "rows": rows,
            "explicit_exponent": exponents["explicit"], "sdpa_exponent": exponents["sdpa"],
            "explicit_ms_longest": rows[-1]["explicit_ms"], "sdpa_ms_longest": rows[-1]["sdpa_ms"],
            "speedup_longest": rows[-1]["explicit_ms"] / rows[-1]["sdpa_ms"],
            "score_mib_longest": rows[-1]["score_matrix_mib"],
            "score_bytes_shortest": rows[0]["score_matrix_bytes"],
            "all_heads_mib_longest": rows[-1]["all_heads_mib"],
            "memory_ratio": rows[-1]["score_matrix_bytes"] / rows[0]["score_matrix_bytes"],
            "length_ratio": lengths[-1] / lengths[0]}

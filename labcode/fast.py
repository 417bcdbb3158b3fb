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
- `head_loss`: the output head and the cross-entropy in one step. `F.cross_entropy(model(x)
  .flatten(0, 1), y)` writes the (B*T, vocab) logits, then their log-softmax, then in the
  backward pass a gradient of zeros with one entry per row set, then the gradient of the logits:
  four new tensors of B*T*vocab numbers (400 MB for 2,048 tokens of GPT-2's vocabulary, each one
  fresh memory the kernel must hand over page by page). `head_loss` writes the logits once and
  turns them in place into log-probabilities and then into their gradient, softmax minus
  one-hot, and takes the head's two gradients from it before returning the loss; the backward
  pass only scales them. `fast_loss_batch` is `labcode.training.calc_loss_batch` with it.

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


# -- the output head and the loss in one step ---------------------------------------

class _HeadLoss(torch.autograd.Function):
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, its gradients made in the
    forward pass from the one (N, vocab) tensor it writes."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index, with_gradients):  # (N, d), (V, d), (N,)
        counted = targets != ignore_index
        n = counted.sum().clamp(min=1)
        rows = torch.arange(len(targets), device=targets.device)
        safe = targets.where(counted, 0)  # an ignored row reads column 0, then counts for nothing
        with torch.autocast(hidden.device.type, enabled=False):
            logp = hidden.to(weight.dtype) @ weight.T                  # (N, V) logits
            torch._log_softmax(logp, 1, False, out=logp)             # in place: log-probabilities
            loss = -(logp[rows, safe] * counted).sum() / n
            if with_gradients:
                grad = logp.exp_()                                     # softmax ...
                grad[rows, safe] -= counted.to(grad.dtype)             # ... minus one-hot
                grad[~counted] = 0
                grad_hidden = (grad @ weight).to(hidden.dtype)         # (N, d)
                grad_weight = grad.T @ hidden.to(weight.dtype)         # (V, d)
                ctx.save_for_backward(grad_hidden, grad_weight, n)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        if torch.is_grad_enabled():   # create_graph=True: the gradients made here are no graph
            raise RuntimeError("head_loss gives first derivatives only (its gradient is computed in "
                               "the forward pass); use F.cross_entropy for a second derivative")
        grad_hidden, grad_weight, n = ctx.saved_tensors
        scale = grad_loss / n
        return grad_hidden * scale, grad_weight * scale, None, None, None


def head_loss(hidden, weight, targets, ignore_index: int = -100) -> torch.Tensor:
    """`F.cross_entropy(hidden @ weight.T, targets, ignore_index=ignore_index)` without keeping
    the logits: hidden (N, d), weight (vocab, d), as `nn.Linear` stores it, targets (N,).

    The same number and gradients up to float rounding, computed in the weight's dtype (float32
    also under autocast). Targets equal to `ignore_index` count for nothing, as in cross_entropy;
    with every target ignored the loss is 0 (cross_entropy's is nan), and a target out of the
    vocabulary raises IndexError, as there. Under `torch.no_grad()` only the loss is computed.
    First derivatives only: a backward pass with `create_graph=True` raises.
    """
    wrong = (targets != ignore_index) & ((targets < 0) | (targets >= weight.shape[0]))
    if wrong.any():
        raise IndexError(f"target {targets[wrong][0].item()} is out of bounds for a vocabulary of "
                         f"{weight.shape[0]} (ignore_index is {ignore_index})")
    with_gradients = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _HeadLoss.apply(hidden, weight, targets, ignore_index, with_gradients)


def fast_loss_batch(input_batch, target_batch, model: GPTModel, device) -> torch.Tensor:
    """`calc_loss_batch` (mean next-token cross-entropy of one batch) by way of `head_loss`:
    the model runs up to its final norm, and the head and the loss are one step.
    For a `GPTModel`, fast or explicit, without a KV cache."""
    if input_batch.shape[1] > model.cfg.context_length:
        raise ValueError(f"sequence of {input_batch.shape[1]} tokens is longer than the context "
                         f"length {model.cfg.context_length}; crop it first")
    x = model.drop_emb(model.embed(input_batch.to(device)))  # (B, T, d): token + position
    for block in model.trf_blocks:
        x = block(x)
    x = model.final_norm(x)                                     # (B, T, d)
    return head_loss(x.flatten(0, 1), model.out_head.weight, target_batch.to(device).flatten())


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

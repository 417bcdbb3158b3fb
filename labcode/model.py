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
from labcode.figures import WIDTH, house_style
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


# === Lab entry points: the functions the posts run ==================================

PRESETS = {"small": "gpt2-small", "medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl"}


def _count(model: nn.Module) -> dict:
    """Parameter counts of a built GPTModel: all, with the head tied, and where they live."""
    total = count_parameters(model)
    return {"parameters": total,
            "tied": total - model.out_head.weight.numel(),  # head shares the token table
            "blocks": count_parameters(model.trf_blocks),
            "head": model.out_head.weight.numel()}


def parameter_table() -> dict:
    """Parameters of the four GPT-2 presets, counted on built models, and their fp32 size.

    The presets are built on PyTorch's "meta" device: every module and parameter exists with
    its shape, but nothing is allocated or initialised, so even GPT-2 XL costs nothing. GPT-2
    small is also built for real on the CPU, to check the meta count, and once more without
    Q/K/V biases (the configuration the book builds).
    """
    result = {}
    # short preset names, the counts before the shape, so a phone shows the counts
    print(f"{'preset':<7}{'parameters':>14}{'tied head':>15}{'fp32 MiB':>9}{'layers':>7}{'width':>6}")
    for key, name in PRESETS.items():
        cfg = GPTConfig.preset(name)
        with torch.device("meta"):
            counts = _count(GPTModel(cfg))
        assert counts["parameters"] == parameter_count(cfg), "formula and model disagree"
        counts["fp32_mib"] = counts["parameters"] * 4 / 2**20  # untied weights, 2**20 bytes a MiB
        counts.update(layers=cfg.n_layers, width=cfg.emb_dim, heads=cfg.n_heads)
        counts["blocks_share"] = counts["blocks"] / counts["tied"]
        result[key] = counts
        print(f"{name.removeprefix('gpt2-'):<7}{counts['parameters']:>14,}{counts['tied']:>15,}"
              f"{counts['fp32_mib']:>9,.1f}{cfg.n_layers:>7}{cfg.emb_dim:>6}")

    torch.manual_seed(0)
    built = count_parameters(GPTModel(GPTConfig.preset("gpt2-small")))  # real weights, ~0.6 GB
    with torch.device("meta"):
        no_qkv_bias = count_parameters(GPTModel(GPTConfig.preset("gpt2-small", qkv_bias=False)))
    print(f"gpt2-small built on the CPU: {built:,}")
    print(f"  parameters, {'the same as' if built == result['small']['parameters'] else 'NOT'}"
          f" the meta count")
    print(f"gpt2-small without Q/K/V biases: {no_qkv_bias:,}")
    result["small_built"] = built
    result["small_no_qkv_bias"] = no_qkv_bias
    result["qkv_bias_params"] = result["small"]["parameters"] - no_qkv_bias
    return result


# A small untrained GPT with GPT-2's vocabulary: the post's "before training" model.
UNTRAINED_TINY = GPTConfig(vocab_size=50257, context_length=128, emb_dim=128, n_heads=4,
                           n_layers=2, drop_rate=0.0)


def untrained_loss_demo(device: str = "cpu") -> dict:
    """An untrained model's loss on random tokens is about ln(vocab_size): it guesses uniformly."""
    torch.manual_seed(123)
    model = GPTModel(UNTRAINED_TINY).to(device).eval()
    ids = torch.randint(0, UNTRAINED_TINY.vocab_size, (4, UNTRAINED_TINY.context_length + 1),
                        device=device)
    with torch.no_grad():
        logits = model(ids[:, :-1])  # (B, T, V)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).item()
    ln_v = math.log(UNTRAINED_TINY.vocab_size)
    print(f"loss of the untrained model: {loss:.3f}")
    print(f"ln(vocab_size) = ln({UNTRAINED_TINY.vocab_size}): {ln_v:.3f}")
    return {"loss": loss, "ln_vocab": ln_v, "vocab_size": UNTRAINED_TINY.vocab_size,
            "excess": loss - ln_v, "layers": UNTRAINED_TINY.n_layers,
            "width": UNTRAINED_TINY.emb_dim}



def _where_parameters_live(model: GPTModel) -> dict:
    """Parameters of a GPTModel by place: embeddings, blocks, final norm, head (0 if tied)."""
    tied = model.out_head.weight is model.embed.tok_emb.weight
    return {"embeddings": count_parameters(model.embed),  # token table + position table
            "blocks": count_parameters(model.trf_blocks),
            "final_norm": count_parameters(model.final_norm),
            "head": 0 if tied else model.out_head.weight.numel()}


def _adamw_state_bytes(model: nn.Module) -> int:
    """Bytes AdamW keeps after one step: its two moments (and a step counter per tensor)."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.step()
    return sum(t.numel() * t.element_size() for state in opt.state.values()
               for t in state.values() if torch.is_tensor(t) and t.dim() > 0)  # moments only


def training_memory_table(gpu_gib: float = 80.0) -> dict:
    """Parameters and memory of every GPT-2 preset, built on the meta device.

    Each preset is built with and without a tied head, with and without Q/K/V biases.
    Memory is weights only (fp32, bf16), then what training with AdamW holds before any
    activation: weights + gradients + AdamW's two moments, measured on a tiny model.
    """
    import matplotlib.pyplot as plt

    gib = 2**30
    # AdamW's moments, measured: a tiny real model, one step, count the state it allocated
    tiny_cfg = GPTConfig(vocab_size=100, context_length=16, emb_dim=32, n_heads=2, n_layers=2)
    moments = {}  # bytes of AdamW state per parameter, for fp32 and bf16 weights
    for dtype in (torch.float32, torch.bfloat16):
        tiny = GPTModel(tiny_cfg).to(dtype)
        moments[dtype] = _adamw_state_bytes(tiny) / count_parameters(tiny)
    # bytes per parameter: weights + gradients + AdamW's moments (+ an fp32 master copy)
    per_param = {"fp32": 4 + 4 + moments[torch.float32],
                 "mixed": 2 + 2 + 4 + moments[torch.float32],  # bf16 weights and grads
                 "bf16": 2 + 2 + moments[torch.bfloat16]}  # everything in bf16
    result = {"moments_fp32_bytes": moments[torch.float32],
              "moments_bf16_bytes": moments[torch.bfloat16],
              "train_bytes": per_param, "gpu_gib": gpu_gib}
    rows = []
    for key, name in PRESETS.items():
        counts = {}
        for bias in (True, False):
            with torch.device("meta"):
                model = GPTModel(GPTConfig.preset(name, qkv_bias=bias))
            counts[(False, bias)] = count_parameters(model)
            if bias:  # bytes of the untied weights, as stored
                fp32_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
                bf16_bytes = sum(p.numel() * 2 for p in model.parameters())
            model.out_head.weight = model.embed.tok_emb.weight  # one tensor, two roles
            counts[(True, bias)] = count_parameters(model)
            if bias:
                where = _where_parameters_live(model)
        n = counts[(True, True)]  # GPT-2 as released: tied head, Q/K/V biases
        row = {"preset": name, "untied": counts[(False, True)], "tied": n,
               "tied_no_qkv_bias": counts[(True, False)],
               "untied_no_qkv_bias": counts[(False, False)],
               "fp32_gib": n * 4 / gib, "bf16_gib": n * 2 / gib,
               **{f"train_{k}_gib": n * b / gib for k, b in per_param.items()},
               "untied_fp32_gib": fp32_bytes / gib, "untied_bf16_gib": bf16_bytes / gib,
               **where, "embedding_share": where["embeddings"] / n,
               "head_if_untied": counts[(False, True)] - n, "qkv_bias": n - counts[(True, False)]}
        rows.append(row)
        result[key] = row

    # short preset names, training memory and embedding share first: they fit a phone
    print("GPT-2 as released (tied head, Q/K/V biases)")
    print("GiB = 2**30 bytes")
    print(f"{'':<7}{'training, AdamW':^20}{'embed':>7}{'':>15}{'weights':^12}".rstrip())
    print(f"{'preset':<7}{'fp32':>6}{'mixed':>7}{'bf16':>7}{'share':>7}{'parameters':>15}"
          f"{'fp32':>6}{'bf16':>6}")
    for r in rows:
        print(f"{r['preset'].removeprefix('gpt2-'):<7}{r['train_fp32_gib']:>6.2f}"
              f"{r['train_mixed_gib']:>7.2f}{r['train_bf16_gib']:>7.2f}{r['embedding_share']:>7.1%}"
              f"{r['tied']:>15,}{r['fp32_gib']:>6.2f}{r['bf16_gib']:>6.2f}")
    print(f"\n{'':<7}{'':>14}{'tied,':>14}{'untied,':>14}")
    print(f"{'preset':<7}{'untied':>14}{'no QKV bias':>14}{'no QKV bias':>14}")
    for r in rows:
        print(f"{r['preset'].removeprefix('gpt2-'):<7}{r['untied']:>14,}"
              f"{r['tied_no_qkv_bias']:>14,}{r['untied_no_qkv_bias']:>14,}")
    print("\nAdamW's two moments, measured after one step:")
    print(f"  fp32 weights {moments[torch.float32]:g} bytes a parameter,"
          f" bf16 {moments[torch.bfloat16]:g}")
    print("bytes a parameter in training (no activations):")
    print("  " + ", ".join(f"{k} {b:g}" for k, b in per_param.items()))

    # the largest model whose weights, grads and moments fit on one GPU (no activations)
    result["max_billions"] = {k: gpu_gib * gib / b / 1e9 for k, b in per_param.items()}
    result["max_billions"]["bf16_weights_only"] = gpu_gib * gib / 2 / 1e9
    result["xl_train_fp32_share_of_gpu"] = result["xl"]["train_fp32_gib"] / gpu_gib
    result["embedding_share_drop"] = result["small"]["embedding_share"] / result["xl"]["embedding_share"]

    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 6.0), sharex=True)
    names = [r["preset"].removeprefix("gpt2-") for r in rows]
    parts = [("embeddings", "C0"), ("blocks", "C1"), ("head", "C2")]
    for ax, scale, ylabel in ((axes[0], 1e6, "parameters (millions)"), (axes[1], None, "share")):
        bottom = [0.0] * len(rows)
        for part, colour in parts:
            # the untied head is drawn on top of the tied model, in its own colour
            values = [(r[part] if part != "head" else r["untied"] - r["tied"]) for r in rows]
            if scale:
                values = [v / scale for v in values]
            else:
                values = [v / r["untied"] for v, r in zip(values, rows)]
            ax.bar(names, values, bottom=bottom, color=colour,
                   label=part if part != "head" else "head (if untied)")
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y")
    axes[1].set_ylim(0, 1)
    axes[0].legend()
    axes[0].set_title("where the parameters live")
    axes[1].set_title("as a share of the untied model")
    fig.suptitle("Parameters of each GPT-2 size")
    house_style(fig)
    return result


def tied_head_demo(vocab_size: int = 2000, emb_dim: int = 128, n_tokens: int = 256,
                   device: str = "cpu") -> dict:
    """Tie a small GPT's output head to its token embedding, and see what tying does at init.

    Two models from the same seed: one keeps its own head, one points the head at the token
    table. For `n_tokens` tokens, the head is applied to the final norm of the token's own
    embedding: under tying, the token's logit for itself is a squared norm, not a random number.
    """
    cfg = GPTConfig(vocab_size=vocab_size, context_length=64, emb_dim=emb_dim, n_heads=4,
                    n_layers=2, drop_rate=0.0)
    torch.manual_seed(123)
    untied = GPTModel(cfg).to(device).eval()
    torch.manual_seed(123)
    tied = GPTModel(cfg).to(device).eval()
    tied.out_head.weight = tied.embed.tok_emb.weight  # one Parameter, used twice

    same_tensor = tied.out_head.weight is tied.embed.tok_emb.weight
    same_memory = tied.out_head.weight.data_ptr() == tied.embed.tok_emb.weight.data_ptr()
    n_untied, n_tied = count_parameters(untied), count_parameters(tied)
    print(f"tied: out_head.weight is tok_emb.weight: {same_tensor}")
    print(f"  same data_ptr: {same_memory}")
    print(f"parameters: untied {n_untied:,}, tied {n_tied:,},")
    print(f"  saved {n_untied - n_tied:,} = {vocab_size} x {emb_dim}")
    print(f"state_dict keys still name both: "
          f"{'out_head.weight' in tied.state_dict() and 'embed.tok_emb.weight' in tied.state_dict()}")

    ids = torch.arange(n_tokens, device=device)  # the first n_tokens of the vocabulary
    result = {"same_tensor": same_tensor, "same_data_ptr": same_memory,
              "params_untied": n_untied, "params_tied": n_tied,
              "params_saved": n_untied - n_tied, "vocab_size": vocab_size, "width": emb_dim,
              "n_tokens": n_tokens}
    print(f"\n{'':<8}{'own':>11}{'other':>12}{'own is':>8}{'next =':>8}")
    print(f"{'model':<8}{'logit':>11}{'logits':>12}{'top-1':>8}{'input':>8}")
    with torch.no_grad():
        for name, model in (("untied", untied), ("tied", tied)):
            # 1. the head applied straight to a token's own (normalised) embedding
            logits = model.out_head(model.final_norm(model.embed.tok_emb(ids)))  # (n, V)
            own = logits[ids, ids]  # (n,): token i's logit for token i
            others = logits.clone()
            others[ids, ids] = float("nan")
            top1 = (logits.argmax(dim=-1) == ids).float().mean().item()
            # 2. the whole untrained model: how often is the predicted next token the input?
            seqs = torch.randint(0, vocab_size, (8, cfg.context_length), device=device)
            full = model(seqs)  # (8, T, V)
            repeat = (full.argmax(dim=-1) == seqs).float().mean().item()
            result[name] = {"own_logit_mean": own.mean().item(),
                            "own_logit_std": own.std().item(),
                            "other_logit_mean": others.nanmean().item(),
                            "other_logit_std": (others[~others.isnan()]).std().item(),
                            "own_is_top1": top1, "next_is_input": repeat}
            r = result[name]
            print(f"{name:<8}{r['own_logit_mean']:>5.2f} ±{r['own_logit_std']:.2f}"
                  f"{r['other_logit_mean']:>6.2f} ±{r['other_logit_std']:.2f}"
                  f"{top1:>8.1%}{repeat:>8.1%}")
    emb_std = tied.embed.tok_emb.weight.std().item()
    result["emb_std"] = emb_std
    result["predicted_own_logit"] = emb_dim * emb_std  # |e|^2 / std(e) = d * std(e)
    result["predicted_other_std"] = emb_dim ** 0.5 * emb_std
    result["chance_top1"] = 1 / vocab_size
    result["own_in_other_stds"] = ((result["tied"]["own_logit_mean"]
                                    - result["tied"]["other_logit_mean"])
                                   / result["tied"]["other_logit_std"])
    return result

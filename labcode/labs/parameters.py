"""Labs of the post "Parameters and memory of every GPT-2 size": where the parameters of each
preset live, and what training it with AdamW holds in memory before any activation.
"""
import matplotlib.pyplot as plt
import torch
from torch import nn

from labcode.labs.figures import WIDTH, house_style
from labcode.model import GPTConfig, GPTModel, count_parameters


PRESETS = {"small": "gpt2-small", "medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl"}


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

"""Labs of the post "Assembling the GPT model": GELU, the shapes through the assembled model,
the parameter count, and what the untrained model does (its loss and its text).
"""
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from labcode.gelu import GELU
from labcode.generation import generate
from labcode.labs.figures import WIDTH, house_style
from labcode.model import GPTConfig, GPTModel, count_parameters, parameter_count
from labcode.tokenizer import gpt2_tokenizer


def gelu_vs_relu_plot() -> dict:
    """Plot GELU next to ReLU on [-3, 3]; return where GELU dips below zero, and how far."""
    x = torch.linspace(-3, 3, 100)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    ax.plot(x, GELU()(x), label="GELU")
    ax.plot(x, nn.ReLU()(x), label="ReLU", linestyle="--")
    ax.set_xlabel("x")
    ax.set_ylabel("activation")
    ax.grid(True)
    ax.legend()
    ax.set_title("GELU beside ReLU")
    house_style(fig)

    fine = torch.linspace(-3, 0, 30_001)  # steps of 1e-4, to locate the dip
    values = GELU()(fine)
    lowest = values.argmin()
    dip = {"min_value": values[lowest].item(), "min_at": fine[lowest].item()}
    print("GELU is smooth and lets small negative values through; ReLU cuts them to 0.")
    print(f"GELU's lowest point: {dip['min_value']:.4f} at x = {dip['min_at']:.4f}")
    return dip


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


def forward_shapes_demo(texts: tuple = ("Every effort moves you", "Every day holds a"),
                        device: str = "cpu") -> dict:
    """The shape of what each stage of an untrained GPT hands the next, for a batch of `texts`.

    Forward hooks record the output of the embeddings, of every block, of the final norm and
    of the head; every stage but the head keeps the shape (B, T, d).
    """
    enc = gpt2_tokenizer()
    ids = torch.tensor([enc.encode(t) for t in texts], device=device)  # (B, T): equal lengths
    torch.manual_seed(123)
    model = GPTModel(UNTRAINED_TINY).to(device).eval()
    stages = [("embeddings", model.embed)]
    stages += [(f"block {i}", block) for i, block in enumerate(model.trf_blocks)]
    stages += [("final norm", model.final_norm), ("head", model.out_head)]
    shapes = {}
    hooks = [module.register_forward_hook(
        lambda _m, _inp, out, name=name: shapes.__setitem__(name, list(out.shape)))
        for name, module in stages]
    with torch.no_grad():
        logits = model(ids)
    for hook in hooks:
        hook.remove()
    print(f"ids {list(ids.shape)}  (batch of {len(texts)}, {ids.shape[1]} tokens each)")
    for name, shape in shapes.items():
        print(f"{name:<12}{shape}")
    kept = [shape for name, shape in shapes.items() if name != "head"]
    return {"batch": ids.shape[0], "tokens": ids.shape[1], "width": UNTRAINED_TINY.emb_dim,
            "vocab_size": UNTRAINED_TINY.vocab_size, "layers": UNTRAINED_TINY.n_layers,
            "ids_shape": list(ids.shape), "shapes": shapes, "logits_shape": list(logits.shape),
            "width_kept": all(shape == kept[0] for shape in kept)}


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


def untrained_text_demo(prompt: str = "The next token is", max_new_tokens: int = 15,
                        device: str = "cpu") -> dict:
    """What an untrained GPT with GPT-2's vocabulary writes after `prompt`: greedy, then sampled."""
    enc = gpt2_tokenizer()
    torch.manual_seed(123)
    model = GPTModel(UNTRAINED_TINY).to(device).eval()
    ids = torch.tensor([enc.encode(prompt)], device=device)  # (1, T)
    greedy = enc.decode(generate(model, ids, max_new_tokens)[0, ids.shape[1]:].tolist())
    sampled = enc.decode(generate(model, ids, max_new_tokens, temperature=1.0)[0, ids.shape[1]:]
                         .tolist())
    # unwrapped: the page wraps long lines itself
    print(f"prompt:  {prompt}")
    for label, text in (("greedy:", greedy), ("sampled:", sampled)):
        print(f"{label:<9}{prompt + text}")
    return {"prompt": prompt, "greedy": greedy, "sampled": sampled}

"""Labs of the post "Loading GPT-2's checkpoint layout": a tiny GPT-2 written in Hugging Face's
layout, loaded with `labcode.load_gpt2`, and checked against GPT-2's forward pass run on the raw
tensors of the file.
"""
import copy
import json
import math
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from labcode.gpt2_weights import _MASK_BUFFER, load_gpt2
from labcode.model import GPTModel


def _tiny_hf_checkpoint(folder: Path, vocab_size: int, context_length: int, emb_dim: int,
                        n_heads: int, n_layers: int) -> dict:
    """Write random tensors to `folder` exactly as Hugging Face stores GPT-2; return the tensors.

    Real key names (with the `transformer.` prefix and the mask buffers), Conv1D weights as
    (in, out), no `lm_head.weight` (tied). Scaled so the logits are not all near zero.
    """
    V, C, d = vocab_size, context_length, emb_dim
    sd = {"wte.weight": torch.randn(V, d) * 0.3, "wpe.weight": torch.randn(C, d) * 0.1}
    for i in range(n_layers):
        h = f"h.{i}."
        sd |= {h + "ln_1.weight": 1 + 0.1 * torch.randn(d), h + "ln_1.bias": 0.1 * torch.randn(d),
               h + "attn.c_attn.weight": torch.randn(d, 3 * d) * 0.3,      # (in, out) = (d, 3d)
               h + "attn.c_attn.bias": 0.1 * torch.randn(3 * d),
               h + "attn.c_proj.weight": torch.randn(d, d) * 0.3,
               h + "attn.c_proj.bias": 0.1 * torch.randn(d),
               h + "ln_2.weight": 1 + 0.1 * torch.randn(d), h + "ln_2.bias": 0.1 * torch.randn(d),
               h + "mlp.c_fc.weight": torch.randn(d, 4 * d) * 0.3,         # (d, 4d)
               h + "mlp.c_fc.bias": 0.1 * torch.randn(4 * d),
               h + "mlp.c_proj.weight": torch.randn(4 * d, d) * 0.3,       # (4d, d)
               h + "mlp.c_proj.bias": 0.1 * torch.randn(d)}
    sd |= {"ln_f.weight": 1 + 0.1 * torch.randn(d), "ln_f.bias": 0.1 * torch.randn(d)}

    stored = {"transformer." + k: v.contiguous() for k, v in sd.items()}
    for i in range(n_layers):  # the causal-mask buffers older exports carry
        stored[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(C, C)).view(1, 1, C, C)
    save_file(stored, str(folder / "model.safetensors"))
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
              "n_positions": C, "n_ctx": C, "n_embd": d, "n_head": n_heads, "n_layer": n_layers,
              "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return sd


def gpt2_reference_logits(sd: dict, ids: torch.Tensor, n_heads: int, n_layers: int) -> torch.Tensor:
    """GPT-2's forward pass on the raw checkpoint tensors, in GPT-2's own conventions.

    Conv1D is `x @ W + b` with W stored (in, out); c_attn's output splits into q | k | v.
    ids: (B, T) -> logits (B, T, V). No labcode module is used.
    """
    B, T = ids.shape
    d = sd["wte.weight"].shape[1]
    hs = d // n_heads

    def ln(x, name):
        return F.layer_norm(x, (d,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-5)

    def conv1d(x, name):
        return x @ sd[name + ".weight"] + sd[name + ".bias"]

    x = sd["wte.weight"][ids] + sd["wpe.weight"][:T]                               # (B, T, d)
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for i in range(n_layers):
        h = f"h.{i}."
        q, k, v = conv1d(ln(x, h + "ln_1"), h + "attn.c_attn").split(d, dim=-1)   # 3 x (B, T, d)
        q, k, v = (t.view(B, T, n_heads, hs).transpose(1, 2) for t in (q, k, v))   # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)                             # (B, nh, T, T)
        att = torch.softmax(att.masked_fill(future, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, d)                              # (B, T, d)
        x = x + conv1d(y, h + "attn.c_proj")
        m = conv1d(ln(x, h + "ln_2"), h + "mlp.c_fc")                               # (B, T, 4d)
        m = F.gelu(m, approximate="tanh")                                           # "gelu_new"
        x = x + conv1d(m, h + "mlp.c_proj")
    return ln(x, "ln_f") @ sd["wte.weight"].T                                       # tied head


def _mapping_rows(model: GPTModel, sd: dict, layer: int = 0) -> list[dict]:
    """One row per tensor of the checkpoint (layer `layer` and the shared ones): where it goes."""
    h = f"h.{layer}."
    ours = {  # checkpoint key (without prefix) -> (our parameter name, transposed?)
        "wte.weight": ("embed.tok_emb.weight (and out_head.weight)", False),
        "wpe.weight": ("embed.pos_emb.weight", False),
        h + "ln_1.weight": (f"trf_blocks.{layer}.norm1.scale", False),
        h + "ln_1.bias": (f"trf_blocks.{layer}.norm1.shift", False),
        h + "attn.c_attn.weight": (f"trf_blocks.{layer}.att.W_query|W_key|W_value.weight", True),
        h + "attn.c_attn.bias": (f"trf_blocks.{layer}.att.W_query|W_key|W_value.bias", False),
        h + "attn.c_proj.weight": (f"trf_blocks.{layer}.att.out_proj.weight", True),
        h + "attn.c_proj.bias": (f"trf_blocks.{layer}.att.out_proj.bias", False),
        h + "ln_2.weight": (f"trf_blocks.{layer}.norm2.scale", False),
        h + "ln_2.bias": (f"trf_blocks.{layer}.norm2.shift", False),
        h + "mlp.c_fc.weight": (f"trf_blocks.{layer}.ff.layers.0.weight", True),
        h + "mlp.c_fc.bias": (f"trf_blocks.{layer}.ff.layers.0.bias", False),
        h + "mlp.c_proj.weight": (f"trf_blocks.{layer}.ff.layers.2.weight", True),
        h + "mlp.c_proj.bias": (f"trf_blocks.{layer}.ff.layers.2.bias", False),
        "ln_f.weight": ("final_norm.scale", False),
        "ln_f.bias": ("final_norm.shift", False),
    }
    params = dict(model.named_parameters())
    rows = []
    for key, (name, transposed) in ours.items():
        first = name.split(" ")[0].replace("W_query|W_key|W_value", "W_query")
        our_shape = tuple(params[first].shape)
        shape_text = f"3 x {our_shape}" if "c_attn" in key else str(our_shape)  # q, k, v
        rows.append({"checkpoint key": "transformer." + key, "their shape": str(tuple(sd[key].shape)),
                     "our parameter": name, "our shape": shape_text,
                     "transposed": "yes" if transposed else "no"})
    return rows


def load_tiny_gpt2_checkpoint(vocab_size: int = 64, context_length: int = 16, emb_dim: int = 32,
                              n_heads: int = 4, n_layers: int = 2, batch: int = 2,
                              seq_len: int = 12) -> dict:
    """Write a tiny GPT-2 in Hugging Face's layout, load it with `load_gpt2`, check its logits.

    The logits of the loaded `GPTModel` are compared with `gpt2_reference_logits`, GPT-2's
    forward pass run straight on the tensors in the file.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sd = _tiny_hf_checkpoint(folder, vocab_size, context_length, emb_dim, n_heads, n_layers)
        with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
            stored_keys = sorted(f.keys())
        model = load_gpt2(folder)
        files = sorted(p.name for p in folder.iterdir())

    ids = torch.randint(0, vocab_size, (batch, seq_len))
    with torch.no_grad():
        ours = model(ids)
        theirs = gpt2_reference_logits(sd, ids, n_heads, n_layers)
    max_diff = (ours - theirs).abs().max().item()
    same_argmax = bool(torch.equal(ours.argmax(-1), theirs.argmax(-1)))

    rows = _mapping_rows(model, sd, layer=0)
    mask_keys = [k for k in stored_keys if _MASK_BUFFER.fullmatch(k.removeprefix("transformer."))]
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once
    n_stored = sum(t.numel() for t in sd.values())

    # The mistake a shape check cannot catch: c_proj is square, so forgetting its transpose loads.
    careless = copy.deepcopy(model)
    with torch.no_grad():
        for block in careless.trf_blocks:
            block.att.out_proj.weight.copy_(block.att.out_proj.weight.T.clone())
        careless_diff = (careless(ids) - theirs).abs().max().item()

    # each key on one line and its target under it: short lines that fit a phone
    print(f"folder: {', '.join(files)}")
    print(f"{len(stored_keys)} tensors, {len(mask_keys)} of them mask buffers (skipped)")
    print("block 0 shown (the other blocks repeat it);")
    print("keys after 'transformer.', our parameter")
    print("under each, .T where it is transposed:")
    w = max(len(r["checkpoint key"]) for r in rows) - len("transformer.")
    for r in rows:
        name = r["our parameter"].replace("W_query|W_key|W_value", "W_{query,key,value}")
        print(f"{r['checkpoint key'].removeprefix('transformer.'):<{w}} {r['their shape']}")
        print(f"{'.T' if r['transposed'] == 'yes' else '':<3}{name}")
    print(f"max |diff| of the logits {tuple(ours.shape)}")
    print("against the raw tensors:")
    print(f"  loaded model:                  {max_diff:.1e}")
    print(f"  with c_proj left untransposed: {careless_diff:.1e}")
    return {
        "mapping": rows,
        "tensors_stored": len(stored_keys),
        "mask_buffers": len(mask_keys),
        "weights_stored": len(stored_keys) - len(mask_keys),
        "transposed_per_block": sum(r["transposed"] == "yes" for r in rows),
        "parameters_loaded": n_params,
        "numbers_stored": n_stored,
        "logits_shape": list(ours.shape),
        "max_abs_diff": max_diff,
        "max_abs_logit": theirs.abs().max().item(),
        "same_argmax": same_argmax,
        "untransposed_c_proj_diff": careless_diff,
        "n_layers": n_layers,
        "emb_dim": emb_dim,
        "vocab_size": vocab_size,
        "context_length": context_length,
        "n_heads": n_heads,
    }

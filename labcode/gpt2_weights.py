"""Loading OpenAI's GPT-2 weights into our `GPTModel`.

Hugging Face publishes GPT-2 as a folder with `config.json` (the sizes) and
`model.safetensors` (the tensors). Our model has the same maths under different
names, so loading is a table: for every tensor of ours, which tensor of theirs
goes there and how it must be turned.

Three things need care:

- GPT-2 stores its linear layers as `Conv1D`, which computes `x @ W + b` with
  W of shape (in, out); `nn.Linear` computes `x @ W.T + b` with W of shape
  (out, in). So every weight matrix is transposed on the way in.
- GPT-2 packs the query, key and value projections into one `c_attn` matrix of
  shape (d, 3d): q, k and v are its three column blocks, in that order.
- The output head shares its weights with the token embedding ("tied"), so the
  checkpoint may have no `lm_head.weight` at all.

Checkpoints come with or without a `transformer.` prefix on every key, and some
also carry the causal mask as a buffer (`h.{i}.attn.bias`, `h.{i}.attn.masked_bias`);
our attention builds its own mask, so those are skipped.
"""
import json
import re
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file

from labcode.model import GPTConfig, GPTModel


# The causal mask some checkpoints store as a buffer; our attention builds its own.
_MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(masked_)?bias")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model its config describes."""


def config_from_hf(hf: dict, source: str = "config.json") -> GPTConfig:
    """Hugging Face's GPT2Config keys -> our `GPTConfig` (no dropout: loaded models are for inference)."""
    def need(*names):
        for name in names:
            if name in hf:
                return hf[name]
        raise CheckpointError(f"{source}: missing key {names[0]!r}")

    return GPTConfig(
        vocab_size=need("vocab_size"),
        context_length=need("n_positions", "n_ctx"),
        emb_dim=need("n_embd"),
        n_heads=need("n_head"),
        n_layers=need("n_layer"),
        drop_rate=0.0,
        qkv_bias=True,
    )


def load_gpt2(path, device="cpu", attention: str = "explicit") -> GPTModel:
    """Load a Hugging Face GPT-2 folder (`config.json` + `model.safetensors`) into a `GPTModel`.

    Returns the model on `device`, in eval mode, with its output head tied to the
    token embedding. `attention="sdpa"` picks the fused attention kernel.
    """
    folder = Path(path)
    config_file, weights_file = folder / "config.json", folder / "model.safetensors"
    for f in (config_file, weights_file):
        if not f.is_file():
            raise FileNotFoundError(f"GPT-2 checkpoint incomplete: {f} does not exist")

    hf_config = json.loads(config_file.read_text(encoding="utf-8"))
    cfg = replace(config_from_hf(hf_config, source=str(config_file)), attention=attention)
    model = GPTModel(cfg)
    for module in model.modules():  # GPT-2's epsilon (1e-5 in every released size)
        if hasattr(module, "eps"):
            module.eps = hf_config.get("layer_norm_epsilon", 1e-5)

    state = load_file(weights_file)
    load_hf_state_dict(model, state, source=str(weights_file))
    return model.to(device).eval()


def load_hf_state_dict(model: GPTModel, state: dict, source: str = "model.safetensors") -> None:
    """Copy Hugging Face GPT-2 tensors into `model`, key by key, checking every shape."""
    # Keys with or without the "transformer." prefix; drop the mask buffers.
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not _MASK_BUFFER.fullmatch(k)}

    cfg = model.cfg
    d = cfg.emb_dim
    used = set()

    def take(key: str, shape: tuple) -> torch.Tensor:
        """The checkpoint's tensor `key`, which must have `shape` (in GPT-2's own layout)."""
        if key not in state:
            raise CheckpointError(f"{source}: missing key {key!r}")
        tensor = state[key]
        if tuple(tensor.shape) != tuple(shape):
            raise CheckpointError(f"{source}: {key!r} has shape {tuple(tensor.shape)}, "
                                  f"the config expects {tuple(shape)}")
        used.add(key)
        return tensor

    def put(param: torch.nn.Parameter, tensor: torch.Tensor) -> None:
        with torch.no_grad():
            param.copy_(tensor)

    # Embeddings: same layout on both sides.
    put(model.embed.tok_emb.weight, take("wte.weight", (cfg.vocab_size, d)))      # (V, d)
    put(model.embed.pos_emb.weight, take("wpe.weight", (cfg.context_length, d)))  # (C, d)

    for i, block in enumerate(model.trf_blocks):
        h = f"h.{i}."
        # LayerNorm before attention: weight -> scale, bias -> shift.
        put(block.norm1.scale, take(h + "ln_1.weight", (d,)))
        put(block.norm1.shift, take(h + "ln_1.bias", (d,)))

        # c_attn: one Conv1D (d, 3d) holding q | k | v side by side.
        q_w, k_w, v_w = take(h + "attn.c_attn.weight", (d, 3 * d)).split(d, dim=1)  # 3 x (d, d)
        q_b, k_b, v_b = take(h + "attn.c_attn.bias", (3 * d,)).split(d)            # 3 x (d,)
        put(block.att.W_query.weight, q_w.T)  # Conv1D (in, out) -> Linear (out, in)
        put(block.att.W_key.weight, k_w.T)
        put(block.att.W_value.weight, v_w.T)
        put(block.att.W_query.bias, q_b)
        put(block.att.W_key.bias, k_b)
        put(block.att.W_value.bias, v_b)

        # c_proj: mixes the heads back into the residual stream.
        put(block.att.out_proj.weight, take(h + "attn.c_proj.weight", (d, d)).T)
        put(block.att.out_proj.bias, take(h + "attn.c_proj.bias", (d,)))

        # LayerNorm before the feed-forward.
        put(block.norm2.scale, take(h + "ln_2.weight", (d,)))
        put(block.norm2.shift, take(h + "ln_2.bias", (d,)))

        # Feed-forward: c_fc (d -> 4d) is layers[0], c_proj (4d -> d) is layers[2].
        put(block.ff.layers[0].weight, take(h + "mlp.c_fc.weight", (d, 4 * d)).T)    # -> (4d, d)
        put(block.ff.layers[0].bias, take(h + "mlp.c_fc.bias", (4 * d,)))
        put(block.ff.layers[2].weight, take(h + "mlp.c_proj.weight", (4 * d, d)).T)  # -> (d, 4d)
        put(block.ff.layers[2].bias, take(h + "mlp.c_proj.bias", (d,)))

    put(model.final_norm.scale, take("ln_f.weight", (d,)))
    put(model.final_norm.shift, take("ln_f.bias", (d,)))

    # The output head is the token embedding, shared (one tensor, two uses).
    tok_emb = model.embed.tok_emb.weight
    model.out_head.weight = tok_emb
    if "lm_head.weight" in state:
        lm_head = take("lm_head.weight", (cfg.vocab_size, d))
        if not torch.equal(lm_head.to(tok_emb.dtype), tok_emb.detach()):
            raise CheckpointError(f"{source}: 'lm_head.weight' differs from 'wte.weight'; "
                                  "GPT-2's output head is tied to its token embedding")

    unexpected = sorted(set(state) - used)
    if unexpected:
        raise CheckpointError(f"{source}: unexpected keys (does config.json match?): "
                              f"{', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")


# === Lab entry points: the functions the posts run ==================================

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
    from safetensors.torch import save_file
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
    import math
    import torch.nn.functional as F

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
    import tempfile

    from safetensors import safe_open

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
    import copy
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

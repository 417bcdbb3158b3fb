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

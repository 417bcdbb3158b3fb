"""Loading GPT-2 checkpoints: tiny ones built here in Hugging Face's exact layout.

The logits are checked against a forward pass written below with plain tensors
and GPT-2's own conventions (Conv1D: x @ W + b, packed q|k|v), no labcode modules.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from labcode.gpt2_weights import CheckpointError, load_gpt2

V, C, D, H, L = 50, 16, 8, 2, 2  # vocab, context, embedding, heads, layers
HF_CONFIG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
             "n_positions": C, "n_ctx": C, "n_embd": D, "n_head": H, "n_layer": L,
             "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}


def hf_state_dict(seed=0):
    """Random tensors under GPT-2's Hugging Face names and shapes (Conv1D weights are (in, out))."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.3

    sd = {"wte.weight": rand(V, D), "wpe.weight": rand(C, D)}
    for i in range(L):
        p = f"h.{i}."
        sd.update({
            p + "ln_1.weight": 1 + rand(D), p + "ln_1.bias": rand(D),
            p + "attn.c_attn.weight": rand(D, 3 * D), p + "attn.c_attn.bias": rand(3 * D),
            p + "attn.c_proj.weight": rand(D, D), p + "attn.c_proj.bias": rand(D),
            p + "ln_2.weight": 1 + rand(D), p + "ln_2.bias": rand(D),
            p + "mlp.c_fc.weight": rand(D, 4 * D), p + "mlp.c_fc.bias": rand(4 * D),
            p + "mlp.c_proj.weight": rand(4 * D, D), p + "mlp.c_proj.bias": rand(D),
        })
    sd.update({"ln_f.weight": 1 + rand(D), "ln_f.bias": rand(D)})
    return sd


def write_checkpoint(folder, sd, prefix=False, mask_buffers=False, lm_head=False, config=HF_CONFIG):
    """Save `sd` as Hugging Face does: config.json + model.safetensors."""
    tensors = {("transformer." + k if prefix else k): v.contiguous() for k, v in sd.items()}
    if mask_buffers:
        for i in range(L):
            tensors[("transformer." if prefix else "") + f"h.{i}.attn.bias"] = \
                torch.tril(torch.ones(C, C)).view(1, 1, C, C)
            tensors[("transformer." if prefix else "") + f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    if lm_head:
        tensors["lm_head.weight"] = sd["wte.weight"].clone()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def reference_logits(sd, ids):
    """GPT-2's forward pass in plain tensors. ids: (B, T) -> logits (B, T, V)."""
    B, T = ids.shape
    hs = D // H

    def ln(x, name):
        return F.layer_norm(x, (D,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-5)

    def conv1d(x, name):  # GPT-2's Conv1D: x @ W + b, W is (in, out)
        return x @ sd[name + ".weight"] + sd[name + ".bias"]

    x = sd["wte.weight"][ids] + sd["wpe.weight"][:T]  # (B, T, D)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for i in range(L):
        p = f"h.{i}."
        q, k, v = conv1d(ln(x, p + "ln_1"), p + "attn.c_attn").split(D, dim=-1)  # (B, T, D) each
        q, k, v = (t.view(B, T, H, hs).transpose(1, 2) for t in (q, k, v))     # (B, H, T, hs)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)                       # (B, H, T, T)
        weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(B, T, D)                      # (B, T, D)
        x = x + conv1d(y, p + "attn.c_proj")
        hidden = F.gelu(conv1d(ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
        x = x + conv1d(hidden, p + "mlp.c_proj")
    return ln(x, "ln_f") @ sd["wte.weight"].T  # tied head: (B, T, V)


IDS = torch.tensor([[1, 7, 3, 49, 0, 22, 5, 5, 8, 13, 2, 40, 9, 11, 31, 4],
                    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]])


@pytest.mark.parametrize("prefix", [False, True], ids=["no-prefix", "transformer-prefix"])
@pytest.mark.parametrize("mask_buffers", [False, True], ids=["no-buffers", "mask-buffers"])
def test_logits_match_gpt2_maths(tmp_path, prefix, mask_buffers):
    sd = hf_state_dict()
    model = load_gpt2(write_checkpoint(tmp_path / "ckpt", sd, prefix, mask_buffers))
    with torch.no_grad():
        logits = model(IDS)
    assert logits.shape == (2, C, V)
    torch.testing.assert_close(logits, reference_logits(sd, IDS), rtol=1e-5, atol=1e-5)


def test_model_is_in_eval_mode_on_the_device_with_a_tied_head(tmp_path):
    model = load_gpt2(write_checkpoint(tmp_path / "ckpt", hf_state_dict(), lm_head=True), device="cpu")
    assert not model.training
    assert model.out_head.weight is model.embed.tok_emb.weight
    assert model.embed.tok_emb.weight.device.type == "cpu"
    assert (model.cfg.vocab_size, model.cfg.context_length, model.cfg.emb_dim,
            model.cfg.n_heads, model.cfg.n_layers, model.cfg.qkv_bias) == (V, C, D, H, L, True)


def test_sdpa_attention_gives_the_same_logits(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", hf_state_dict())
    with torch.no_grad():
        explicit = load_gpt2(folder)(IDS)
        fused = load_gpt2(folder, attention="sdpa")(IDS)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_n_ctx_alone_gives_the_context_length(tmp_path):
    config = {k: v for k, v in HF_CONFIG.items() if k != "n_positions"}
    model = load_gpt2(write_checkpoint(tmp_path / "ckpt", hf_state_dict(), config=config))
    assert model.cfg.context_length == C


def test_half_precision_checkpoint_loads_into_fp32(tmp_path):
    sd = {k: v.to(torch.float16) for k, v in hf_state_dict().items()}
    model = load_gpt2(write_checkpoint(tmp_path / "ckpt", sd))
    assert model.embed.tok_emb.weight.dtype == torch.float32
    with torch.no_grad():
        logits = model(IDS)
    reference = reference_logits({k: v.float() for k, v in sd.items()}, IDS)
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)


def test_missing_key_names_the_file_and_the_key(tmp_path):
    sd = hf_state_dict()
    del sd["h.1.mlp.c_fc.bias"]
    folder = write_checkpoint(tmp_path / "ckpt", sd, prefix=True)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing key 'h\.1\.mlp\.c_fc\.bias'"):
        load_gpt2(folder)


def test_wrong_shape_names_the_key_and_both_shapes(tmp_path):
    sd = hf_state_dict()
    sd["h.0.attn.c_attn.weight"] = sd["h.0.attn.c_attn.weight"].T  # as if stored nn.Linear-style
    with pytest.raises(CheckpointError, match=r"'h\.0\.attn\.c_attn\.weight' has shape \(24, 8\).*\(8, 24\)"):
        load_gpt2(write_checkpoint(tmp_path / "ckpt", sd))


def test_config_with_fewer_layers_than_the_weights_is_refused(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", hf_state_dict(), config={**HF_CONFIG, "n_layer": 1})
    with pytest.raises(CheckpointError, match="unexpected keys.*h.1."):
        load_gpt2(folder)


def test_untied_lm_head_is_refused(tmp_path):
    sd = hf_state_dict()
    folder = write_checkpoint(tmp_path / "ckpt", sd, lm_head=True)
    tensors = {**sd, "lm_head.weight": torch.zeros(V, D)}
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        load_gpt2(folder)


def test_missing_config_key_and_missing_files_are_clear(tmp_path):
    config = {k: v for k, v in HF_CONFIG.items() if k != "n_head"}
    with pytest.raises(CheckpointError, match=r"config\.json: missing key 'n_head'"):
        load_gpt2(write_checkpoint(tmp_path / "a", hf_state_dict(), config=config))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "config.json").write_text(json.dumps(HF_CONFIG))
        load_gpt2(tmp_path / "b")


def test_lab_loads_its_own_checkpoint_and_matches_the_raw_tensors():
    from labcode.labs.gpt2_weights import load_tiny_gpt2_checkpoint

    torch.manual_seed(0)
    r = load_tiny_gpt2_checkpoint(n_layers=2)
    assert r["max_abs_diff"] < 1e-4 and r["same_argmax"]
    assert r["untransposed_c_proj_diff"] > 1000 * r["max_abs_diff"]  # the square transpose matters
    assert r["weights_stored"] == 12 * 2 + 4 and r["mask_buffers"] == 2
    keys = [row["checkpoint key"] for row in r["mapping"]]
    assert "transformer.h.0.attn.c_attn.weight" in keys and len(keys) == 16
    assert r["transposed_per_block"] == 4
    assert r["parameters_loaded"] == r["numbers_stored"]  # tied head: nothing extra, nothing lost


def test_reference_forward_agrees_with_the_test_reference(tmp_path):
    from labcode.labs.gpt2_weights import gpt2_reference_logits

    sd = hf_state_dict(seed=3)
    ids = torch.randint(0, V, (2, 7))
    torch.testing.assert_close(gpt2_reference_logits(sd, ids, n_heads=H, n_layers=L),
                               reference_logits(sd, ids))

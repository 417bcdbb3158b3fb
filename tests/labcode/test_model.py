"""GPTModel: shapes, the names the weight loader relies on, parameter counts, untrained loss."""
import math

import pytest
import torch
from torch import nn

import labcode
from labcode.embeddings import TokenPositionEmbedding
from labcode.labs.gpt_model import parameter_table
from labcode.model import (
    GPTConfig,
    GPTModel,
    count_parameters,
    memory_estimate,
    parameter_count,
)

TINY = dict(vocab_size=100, context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)


def test_public_names_come_from_the_package():
    assert labcode.GPTConfig is GPTConfig and labcode.GPTModel is GPTModel


def test_forward_maps_ids_to_logits():
    model = GPTModel(GPTConfig(**TINY))
    assert model(torch.randint(0, 100, (3, 11))).shape == (3, 11, 100)


def test_model_has_the_attribute_names_the_gpt2_loader_uses():
    model = GPTModel(GPTConfig(**TINY, qkv_bias=True))
    assert isinstance(model.embed, TokenPositionEmbedding)
    assert isinstance(model.embed.tok_emb, nn.Embedding)
    assert isinstance(model.embed.pos_emb, nn.Embedding)
    assert isinstance(model.drop_emb, nn.Dropout)
    assert isinstance(model.out_head, nn.Linear) and model.out_head.bias is None
    assert model.final_norm.scale.shape == (32,) and model.final_norm.shift.shape == (32,)
    assert len(model.trf_blocks) == 2
    for block in model.trf_blocks:
        for name in ("W_query", "W_key", "W_value", "out_proj"):
            assert isinstance(getattr(block.att, name), nn.Linear)
        assert block.att.W_query.bias is not None
        assert isinstance(block.ff.layers[0], nn.Linear) and isinstance(block.ff.layers[2], nn.Linear)
        assert block.norm1.scale.shape == block.norm2.shift.shape == (32,)
    # the causal masks are buffers, not part of the saved weights
    assert not any("mask" in key for key in model.state_dict())


def test_presets_have_gpt2_sizes():
    sizes = {name: (GPTConfig.preset(name).emb_dim, GPTConfig.preset(name).n_layers,
                    GPTConfig.preset(name).n_heads)
             for name in ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl")}
    assert sizes == {"gpt2-small": (768, 12, 12), "gpt2-medium": (1024, 24, 16),
                     "gpt2-large": (1280, 36, 20), "gpt2-xl": (1600, 48, 25)}
    small = GPTConfig.preset("gpt2-small", attention="sdpa")
    assert (small.vocab_size, small.context_length, small.attention) == (50257, 1024, "sdpa")
    with pytest.raises(ValueError):
        GPTConfig.preset("gpt2-tiny")


def test_preset_parameter_counts_are_gpt2s_with_a_tied_head():
    table = parameter_table()
    assert table["small"]["tied"] == 124_439_808  # the figure Hugging Face reports
    assert round(table["medium"]["tied"] / 1e6) == 355
    assert round(table["large"]["tied"] / 1e6) == 774
    assert round(table["xl"]["tied"] / 1e6) == 1558
    assert table["small_built"] == table["small"]["parameters"]  # meta count = real count
    assert table["small_no_qkv_bias"] == 163_009_536  # the book's GPTModel, no Q/K/V biases
    assert table["qkv_bias_params"] == 12 * 3 * 768


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_formula_counts_match_the_built_module(qkv_bias):
    cfg = GPTConfig(**TINY, qkv_bias=qkv_bias)
    model = GPTModel(cfg)
    assert count_parameters(model) == parameter_count(cfg) == count_parameters(cfg)
    model.out_head.weight = model.embed.tok_emb.weight  # tie the head as GPT-2 does
    assert count_parameters(model) == parameter_count(cfg, tied=True)


def test_memory_estimate_is_parameters_times_bytes_per_value():
    cfg = GPTConfig(**TINY)
    model = GPTModel(cfg)
    real = sum(p.numel() * p.element_size() for p in model.parameters())
    assert memory_estimate(cfg) == real
    assert memory_estimate(cfg, dtype=torch.bfloat16) == real // 2


def test_untrained_loss_on_random_tokens_is_close_to_ln_vocab():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=1000, context_length=32, emb_dim=64, n_heads=2, n_layers=2)
    model = GPTModel(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (4, 33))
    with torch.no_grad():
        logits = model(ids[:, :-1])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.2


def test_untrained_loss_demo_is_close_to_ln_vocab():
    from labcode.labs.gpt_model import untrained_loss_demo

    result = untrained_loss_demo()
    assert abs(result["loss"] - math.log(50257)) < 0.2
    assert result["excess"] == pytest.approx(result["loss"] - result["ln_vocab"])


def test_sdpa_model_matches_explicit_model():
    torch.manual_seed(0)
    explicit = GPTModel(GPTConfig(**TINY, attention="explicit"))
    sdpa = GPTModel(GPTConfig(**TINY, attention="sdpa"))
    sdpa.load_state_dict(explicit.state_dict())
    ids = torch.randint(0, 100, (2, 16))
    assert torch.allclose(explicit(ids), sdpa(ids), atol=1e-5)


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
def test_model_with_kv_cache_matches_full_forward(attention):
    torch.manual_seed(0)
    model = GPTModel(GPTConfig(**TINY, attention=attention)).eval()
    ids = torch.randint(0, 100, (2, 16))
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache()
        steps = [model(ids[:, :10], cache=cache)] + [
            model(ids[:, t:t + 1], cache=cache) for t in range(10, 16)]
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_sequences_longer_than_the_context_are_refused():
    model = GPTModel(GPTConfig(**TINY))
    with pytest.raises(ValueError, match="context length"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_training_memory_table_counts_and_bytes():
    from labcode.labs.parameters import training_memory_table

    t = training_memory_table()
    assert t["moments_fp32_bytes"] == 8 and t["moments_bf16_bytes"] == 4  # two moments
    assert t["train_bytes"] == {"fp32": 16, "mixed": 16, "bf16": 8}
    small = t["small"]
    assert small["tied"] == 124_439_808 and small["untied"] == 163_037_184
    assert small["untied_no_qkv_bias"] == 163_009_536
    assert small["embeddings"] + small["blocks"] + small["final_norm"] == small["tied"]
    assert small["train_fp32_gib"] == pytest.approx(16 * small["tied"] / 2**30)
    shares = [t[k]["embedding_share"] for k in ("small", "medium", "large", "xl")]
    assert shares == sorted(shares, reverse=True)  # embeddings matter less as models grow
    assert t["xl"]["train_fp32_gib"] < t["gpu_gib"]


def test_tied_head_is_one_tensor_and_favours_the_input_token():
    from labcode.labs.weight_tying import tied_head_demo

    r = tied_head_demo(vocab_size=500, emb_dim=64, n_tokens=64)
    assert r["same_tensor"] and r["same_data_ptr"]
    assert r["params_saved"] == 500 * 64 == r["params_untied"] - r["params_tied"]
    assert r["tied"]["own_is_top1"] > 0.9 and r["untied"]["own_is_top1"] < 0.1
    assert r["tied"]["own_logit_mean"] == pytest.approx(r["predicted_own_logit"], rel=0.1)
    assert r["tied"]["next_is_input"] > 0.5 > r["untied"]["next_is_input"]

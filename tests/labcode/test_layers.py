"""LayerNorm, GELU, feed-forward, embeddings and the transformer block."""
import math

import pytest
import torch
import torch.nn.functional as F

from labcode.block import TransformerBlock
from labcode.embeddings import TokenPositionEmbedding
from labcode.feedforward import FeedForward
from labcode.gelu import GELU
from labcode.labs.attention import embedding_demo
from labcode.labs.gpt_model import forward_shapes_demo
from labcode.layernorm import LayerNorm
from labcode.model import GPTConfig

TINY = GPTConfig(vocab_size=100, context_length=16, emb_dim=32, n_heads=2, n_layers=2,
                 drop_rate=0.0)


def test_layernorm_matches_torch_layer_norm_with_learnt_scale_and_shift():
    torch.manual_seed(0)
    norm = LayerNorm(32)
    with torch.no_grad():
        norm.scale.normal_()
        norm.shift.normal_()
    x = torch.randn(2, 5, 32) * 3 + 1
    expected = F.layer_norm(x, (32,), norm.scale, norm.shift, eps=1e-5)
    assert torch.allclose(norm(x), expected, atol=1e-5)
    assert norm.eps == 1e-5


def test_gelu_is_gpt2s_tanh_approximation():
    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(GELU()(x), F.gelu(x, approximate="tanh"), atol=1e-6)


def test_gelu_vs_relu_plot_returns_a_line_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labcode.labs.gpt_model import gelu_vs_relu_plot

    dip = gelu_vs_relu_plot()
    assert len(plt.gcf().axes[0].get_lines()) == 2
    assert dip["min_value"] == pytest.approx(-0.17, abs=1e-3)
    assert dip["min_at"] == pytest.approx(-0.75, abs=1e-2)
    plt.close("all")


def test_feedforward_expands_four_times_and_keeps_the_shape():
    ff = FeedForward(32)
    assert ff.layers[0].out_features == 128 and ff.layers[2].in_features == 128
    assert ff(torch.randn(2, 5, 32)).shape == (2, 5, 32)


def test_embeddings_add_position_vectors_to_token_vectors():
    emb = TokenPositionEmbedding(10, 8, 4)
    ids = torch.tensor([[3, 3, 3]])
    out = emb(ids)
    assert torch.allclose(out[0, 1] - out[0, 0], emb.pos_emb.weight[1] - emb.pos_emb.weight[0])
    result = embedding_demo()
    assert result["shape"] == [2, 4, 3]
    assert result["positions_equal_across_sequences"] == [0]  # same id, same position


def test_transformer_block_keeps_the_shape_and_has_the_named_parts():
    block = TransformerBlock(TINY)
    assert block(torch.randn(2, 7, 32)).shape == (2, 7, 32)
    for name in ("att", "ff", "norm1", "norm2", "drop_shortcut"):
        assert hasattr(block, name)


def test_every_stage_of_the_model_but_the_head_keeps_batch_tokens_and_width(gpt2_env):
    result = forward_shapes_demo(texts=("one two three", "four five six"))
    stages = list(result["shapes"])
    assert stages[0] == "embeddings" and stages[-2:] == ["final norm", "head"]
    assert len(stages) == result["layers"] + 3
    assert result["width_kept"]
    assert result["shapes"]["final norm"] == [2, result["tokens"], result["width"]]
    assert result["logits_shape"] == [2, result["tokens"], result["vocab_size"]]


# -- the labs of "Layer normalisation, measured" -------------------------------------------

@pytest.fixture
def no_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_layernorm_gives_every_token_mean_0_and_variance_1_unless_it_is_tiny(no_figures):
    from labcode.labs.layernorm import normalise_activations_demo

    torch.manual_seed(0)
    result = normalise_activations_demo(emb_dim=256)
    assert result["var_ratio_before"] > 50  # the tokens really differ in size
    assert result["after_mean_absmax"] < 1e-5
    assert 0.99 < result["after_var_min"] <= result["after_var_max"] < 1.0 + 1e-4
    # the tiny token's variance is comparable to eps, so it comes out below 1, as predicted
    predicted = result["tiny_var_before"] / (result["tiny_var_before"] + 1e-5)
    assert result["tiny_var_after"] == pytest.approx(predicted, rel=1e-3)
    assert result["tiny_var_after"] < 0.99


def test_uniform_scale_and_shift_set_each_tokens_std_and_mean():
    from labcode.labs.layernorm import scale_shift_demo

    torch.manual_seed(0)
    result = scale_shift_demo(emb_dim=128)
    assert result["uniform_mean_min"] == pytest.approx(0.5, abs=1e-5)
    assert result["uniform_mean_max"] == pytest.approx(0.5, abs=1e-5)
    assert result["uniform_std_min"] == pytest.approx(2.0, abs=1e-3)
    assert result["invariance_max_diff"] < 1e-4  # LN(3x + 1) == LN(x), up to eps


def test_eps_follows_var_over_var_plus_eps_and_saves_a_constant_vector(no_figures):
    from labcode.labs.layernorm import eps_demo

    result = eps_demo(emb_dim=128)
    assert result["max_diff_from_formula"] < 1e-5
    assert result["var_after_std_0_001"] == pytest.approx(1e-6 / (1e-6 + 1e-5), rel=1e-3)
    assert result["constant_with_eps"] == 0.0
    assert result["constant_without_eps_nan"]


def test_our_layernorm_agrees_with_torch_nn_layernorm_forward_and_backward():
    from labcode.labs.layernorm import compare_with_torch

    result = compare_with_torch()
    assert result["forward_max_diff"] < 1e-5 and result["grad_max_diff"] < 1e-4
    assert result["forward64_max_diff"] < 1e-12
    assert result["unbiased_max_diff"] > 100 * result["forward_max_diff"]


def test_post_norm_keeps_the_stream_at_std_1_and_pre_norm_lets_it_grow(no_figures):
    from labcode.labs.layernorm import pre_vs_post_norm_demo

    result = pre_vs_post_norm_demo(n_layers=12, emb_dim=64, draws=2)
    assert result["post_std_last_min"] == pytest.approx(1.0, abs=1e-3)
    assert result["post_std_last_max"] == pytest.approx(1.0, abs=1e-3)
    assert result["pre_std_last_min"] > 2 * result["pre_std_first"]
    # pre-norm: the blocks near the input get the larger gradients
    assert result["pre_ratio_max"] < 0.6


# -- the labs of "Shortcut connections and the gradients they carry" --------

def test_shortcuts_keep_the_gradient_from_vanishing_in_a_deep_stack(no_figures):
    from labcode.labs.shortcuts import gradient_flow_demo

    torch.manual_seed(0)
    result = gradient_flow_demo(n_layers=16, width=16)
    assert result["plain_bottom"] < 1e-6 * result["top"]  # vanished
    assert result["plain_factor"] == pytest.approx(result["plain_factor_predicted"], rel=0.25)
    assert result["full_bottom"] > result["top"]  # shortcuts alone: it grows instead
    assert 0.5 < result["scaled_growth"] < 2  # scaled branches: it arrives about as it left
    assert result["scaled_cosine"] > 0.8  # and mostly along the identity path

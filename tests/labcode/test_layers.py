"""LayerNorm, GELU, feed-forward, embeddings and the transformer block."""
import math

import pytest
import torch
import torch.nn.functional as F

from labcode.block import TransformerBlock, shortcut_demo
from labcode.embeddings import TokenPositionEmbedding, embedding_demo
from labcode.feedforward import FeedForward
from labcode.gelu import GELU
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

    from labcode.gelu import gelu_vs_relu_plot

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


def test_shortcuts_keep_the_first_layers_gradient_from_vanishing():
    result = shortcut_demo()
    assert result["with"][0] > 10 * result["without"][0]
    assert result["gain_min"] > 10

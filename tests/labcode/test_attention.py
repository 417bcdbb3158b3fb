"""Every attention variant computes the same thing; the causal ones never look ahead."""
import pytest
import torch

from labcode.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention,
    copy_heads_into_fused,
    simple_attention,
)
from labcode.labs.attention import attention_variants_agree

D, T, HEADS = 32, 12, 2


def _run(module, x):
    """Output and input gradient of a scalar loss on module(x)."""
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.square().sum().backward()
    return out.detach(), x.grad


def _variants(qkv_bias=False):
    torch.manual_seed(0)
    wrapper = MultiHeadAttentionWrapper(D, D, T, 0.0, HEADS, qkv_bias=qkv_bias)
    fused = {}
    for attention in ("explicit", "sdpa"):
        fused[attention] = MultiHeadAttention(D, D, T, 0.0, HEADS, qkv_bias=qkv_bias,
                                              attention=attention)
        copy_heads_into_fused(wrapper, fused[attention])
    return wrapper, fused


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_wrapper_and_fused_explicit_and_sdpa_agree_forward_and_backward(qkv_bias):
    wrapper, fused = _variants(qkv_bias)
    x = torch.randn(2, T, D)
    ref_out, ref_grad = _run(wrapper, x)
    for module in fused.values():
        out, grad = _run(module, x)
        assert (out - ref_out).abs().max() < 1e-5
        assert (grad - ref_grad).abs().max() < 1e-5


def test_sdpa_and_explicit_weight_gradients_agree_with_random_out_proj():
    torch.manual_seed(0)
    explicit = MultiHeadAttention(D, D, T, 0.0, HEADS, qkv_bias=True, attention="explicit")
    sdpa = MultiHeadAttention(D, D, T, 0.0, HEADS, qkv_bias=True, attention="sdpa")
    sdpa.load_state_dict(explicit.state_dict())
    x = torch.randn(2, T, D)
    out_e, grad_e = _run(explicit, x)
    out_s, grad_s = _run(sdpa, x)
    assert (out_e - out_s).abs().max() < 1e-5
    assert (grad_e - grad_s).abs().max() < 1e-5
    for (name, p_e), p_s in zip(explicit.named_parameters(), sdpa.parameters()):
        assert (p_e.grad - p_s.grad).abs().max() < 1e-5, name


def test_single_causal_head_equals_one_head_wrapper():
    torch.manual_seed(0)
    head = CausalAttention(D, 8, T, 0.0)
    wrapper = MultiHeadAttentionWrapper(D, 8, T, 0.0, num_heads=1)
    wrapper.heads[0].load_state_dict(head.state_dict())
    x = torch.randn(1, T, D)
    assert torch.equal(head(x), wrapper(x))


def test_causal_attention_without_mask_is_self_attention_on_the_last_token():
    # the last token sees every token, so its row equals unmasked self-attention
    torch.manual_seed(0)
    causal = CausalAttention(D, 8, T, 0.0)
    plain = SelfAttention(D, 8)
    plain.load_state_dict(causal.state_dict())
    x = torch.randn(1, T, D)
    assert torch.allclose(causal(x)[:, -1], plain(x)[:, -1], atol=1e-6)


def test_simple_attention_weights_are_a_softmax_of_dot_products():
    inputs = torch.rand(5, 3)
    context, weights = simple_attention(inputs)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(5))
    assert torch.allclose(context, torch.softmax(inputs @ inputs.T, dim=-1) @ inputs)


@pytest.mark.parametrize("make", [
    lambda: CausalAttention(D, D, T, 0.0),
    lambda: MultiHeadAttentionWrapper(D, D, T, 0.0, HEADS),
    lambda: MultiHeadAttention(D, D, T, 0.0, HEADS, attention="explicit"),
    lambda: MultiHeadAttention(D, D, T, 0.0, HEADS, attention="sdpa"),
])
def test_causal_variants_never_look_ahead(make):
    torch.manual_seed(0)
    module = make()
    x = torch.randn(1, T, D)
    changed = x.clone()
    changed[:, 7:] = torch.randn(1, T - 7, D)  # change tokens 7 onwards
    with torch.no_grad():
        before, after = module(x), module(changed)
    assert torch.equal(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
def test_dropout_is_off_in_eval_and_on_in_training(attention):
    torch.manual_seed(0)
    module = MultiHeadAttention(D, D, T, 0.5, HEADS, attention=attention)
    x = torch.randn(2, T, D)
    module.eval()
    assert torch.equal(module(x), module(x))
    module.train()
    assert not torch.equal(module(x), module(x))


@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
def test_kv_cache_gives_the_same_outputs_as_the_full_sequence(attention):
    from labcode.attention import LayerKVCache

    torch.manual_seed(0)
    module = MultiHeadAttention(D, D, T, 0.0, HEADS, qkv_bias=True, attention=attention).eval()
    x = torch.randn(2, T, D)
    with torch.no_grad():
        full = module(x)
        cache = LayerKVCache()
        # a prefill of 5 tokens, a chunk of 3, then one token at a time
        pieces = [module(x[:, :5], cache=cache), module(x[:, 5:8], cache=cache)]
        pieces += [module(x[:, t:t + 1], cache=cache) for t in range(8, T)]
    assert len(cache) == T
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-6)


def test_attention_variants_agree_lab_reports_tiny_differences():
    result = attention_variants_agree()
    assert set(result) == {"wrapper", "explicit", "sdpa", "largest"}
    assert result["wrapper"] == {"output_diff": 0.0, "grad_diff": 0.0}
    assert result["largest"] < 1e-5


def test_attention_labs_return_what_the_post_shows():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labcode.labs.attention import causal_dropout_demo, causal_weights_demo, simple_attention_demo

    simple = simple_attention_demo()
    assert len(simple["weights"]) == 6 and simple["rows_sum_to_one"]
    assert 0 < simple["min_weight"] <= simple["uniform_weight"] <= simple["max_weight"] < 1
    dropout = causal_dropout_demo(p=0.5)
    assert dropout["scale"] == 2.0
    assert dropout["eval_row_sums"] == pytest.approx([1.0] * 6)
    assert dropout["train_row_sums"] != pytest.approx([1.0] * 6)
    weights = causal_weights_demo(seq_len=4)
    assert weights.shape == (4, 4)
    assert torch.all(weights.triu(diagonal=1) == 0)
    assert torch.allclose(weights.sum(dim=-1), torch.ones(4))
    plt.close("all")


def test_trainable_attention_by_hand_is_what_the_module_computes():
    from labcode.labs.attention import trainable_attention_demo

    result = trainable_attention_demo(d_out=3, query=2)
    # the hand-made context vector of one word is the module's row for it
    assert result["by_hand_diff"] < 1e-6
    assert sum(result["weights"]) == pytest.approx(1.0)
    assert result["weight_shape"] == [3, 3] and len(result["context"]) == 3
    # plain dot products score symmetrically; learnt projections need not
    assert result["plain_asymmetry"] == 0
    assert result["trained_asymmetry"] > 0
    assert result["query_word"] == "starts"


def test_causal_attention_dropout_is_off_in_eval():
    torch.manual_seed(0)
    head = CausalAttention(D, 8, T, dropout=0.5)
    x = torch.randn(2, T, D)
    head.eval()
    assert torch.equal(head(x), head(x))
    head.train()
    assert not torch.equal(head(x), head(x))


def test_scaling_by_sqrt_dk_keeps_softmax_rows_unsaturated_as_dk_grows():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labcode.labs.attention_scaling import softmax_saturation_demo

    result = softmax_saturation_demo(dims=(4, 64, 1024), n_rows=128)
    plt.close("all")
    # var(q·k) grows like d_k; dividing by sqrt(d_k) brings it back to about 1
    for d_k, var, scaled in zip(result["dims"], result["score_var"], result["scaled_score_var"]):
        assert 0.7 * d_k < var < 1.3 * d_k
        assert 0.7 < scaled < 1.3
    none, sqrt, by_dk = result["none"], result["sqrt"], result["d_k"]
    # unscaled rows saturate: the largest weight heads for 1, the gradient for 0
    assert none["max_weight"] == sorted(none["max_weight"]) and none["max_weight"][-1] > 0.9
    assert none["grad"][-1] < 1e-3 < sqrt["grad"][-1]
    # scaled rows look the same at every d_k; dividing by d_k flattens them towards uniform
    assert max(sqrt["max_weight"]) - min(sqrt["max_weight"]) < 0.05
    assert max(sqrt["saturated"]) == 0.0
    assert by_dk["max_weight"][-1] < 1.2 * result["uniform"]["max_weight"]


def test_saturated_row_passes_gradient_to_few_keys_but_cross_entropy_does_not_vanish():
    from labcode.labs.attention_scaling import saturated_row_gradient

    result = saturated_row_gradient(d_k=256, n_keys=8)
    assert result["none"]["live_keys"] < result["sqrt"]["live_keys"] == 8
    assert result["none"]["max_weight"] > result["sqrt"]["max_weight"]
    assert result["none"]["ce_max_grad"] > 0.9  # w - onehot: no vanishing through the log


def test_multihead_shapes_demo_matches_the_module_and_the_separate_heads():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from labcode.labs.attention_heads import multihead_shapes_demo

    result = multihead_shapes_demo(batch=2, seq_len=5, d_in=8, d_out=12, num_heads=3)
    plt.close("all")
    assert result["shapes"][".transpose(1, 2)  -> queries"] == [2, 3, 5, 4]
    assert result["shapes"]["queries @ keys.transpose(2, 3)  -> scores"] == [2, 3, 5, 5]
    assert result["shapes"][".contiguous().view(B, T, d_out)"] == [2, 5, 12]
    assert result["query_is_slice"]
    assert result["step_by_step_diff"] == 0.0
    assert result["largest_head_diff"] < 1e-6 and result["wrapper_diff"] < 1e-6
    assert result["grad_diff"] < 1e-5


def test_view_reshape_demo_shows_view_fails_and_the_missing_transpose_scrambles():
    from labcode.labs.attention_heads import view_reshape_demo

    result = view_reshape_demo(heads=2, seq_len=3, head_dim=2)
    assert not result["swapped_contiguous"] and result["swapped_shares_memory"]
    assert "view size is not compatible" in result["view_error"]
    assert result["reshape_copied"] and result["reshape_equals_contiguous_view"]
    # token 0 is head 0's vector then head 1's; without the transpose it is head 0's tokens 0 and 1
    assert result["merged_first_token"] == [0.0, 1.0, 6.0, 7.0]
    assert result["wrong_first_token"] == [0.0, 1.0, 2.0, 3.0]


def test_trained_attention_concentrates_on_the_matching_key_and_beats_averaging():
    from labcode.labs.attention_retrieval import retrieval_by_content

    result = retrieval_by_content(steps=150, log_every=50)
    start, end = result["start"], result["end"]
    assert abs(start["target_weight"] - result["uniform_weight"]) < 0.05  # starts near an average
    assert end["target_weight"] > 0.8 and end["accuracy"] > 0.9
    assert end["score_gap"] > start["score_gap"] + 3
    assert end["error"] < result["average_error"] / 5
    # averaging's error is 1 - 1/P for unit-variance values
    assert abs(result["average_error"] - (1 - 1 / result["n_pairs"])) < 0.05


def test_attention_cost_counts_the_score_matrix_exactly():
    from labcode.labs.attention_cost import attention_cost

    result = attention_cost(lengths=(32, 64, 128), repeats=1, fit_from=32)
    for row in result["rows"]:
        assert row["score_matrix_bytes"] == 4 * row["T"] ** 2
        assert row["all_heads_mib"] == result["heads"] * row["score_matrix_bytes"] / 2 ** 20
        assert row["explicit_ms"] > 0 and row["sdpa_ms"] > 0
    assert result["memory_ratio"] == result["length_ratio"] ** 2


def test_attention_cost_puts_the_thread_count_back():
    from labcode.labs.attention_cost import attention_cost

    before = torch.get_num_threads()
    attention_cost(lengths=(16, 32), repeats=1, fit_from=16, threads=1)
    assert torch.get_num_threads() == before


def test_softmax_jacobian_is_what_autograd_computes():
    from labcode.labs.attention_scaling import softmax_jacobian

    scores = torch.randn(5)
    expected = torch.autograd.functional.jacobian(lambda s: torch.softmax(s, dim=-1), scores)
    assert torch.allclose(softmax_jacobian(torch.softmax(scores, dim=-1)), expected, atol=1e-6)


def test_the_cost_labs_explicit_and_sdpa_attention_agree():
    from labcode.labs.attention_cost import explicit_attention, sdpa_attention

    q, k, v = (torch.randn(2, 3, 10, 8, requires_grad=True) for _ in range(3))
    out_explicit, out_sdpa = explicit_attention(q, k, v), sdpa_attention(q, k, v)
    assert torch.allclose(out_explicit, out_sdpa, atol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), (q, k, v)) for out in (out_explicit, out_sdpa)]
    for g_explicit, g_sdpa in zip(*grads):
        assert torch.allclose(g_explicit, g_sdpa, atol=1e-4)

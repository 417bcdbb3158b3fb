"""The fast twins compute what the explicit layers compute, forward and backward, and a fast GPT
is the explicit GPT with its weights moved, not changed.

Tolerances (fp32): outputs within 1e-5, gradients within 1e-5 absolute plus 1e-5 relative (a
parameter's gradient is a sum over every position, so it grows with the batch); the fused
kernels only change the order of the same additions.
"""
import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

import labcode
from labcode.attention import KVCache, MultiHeadAttention
from labcode.fast import (
    FastGELU,
    FastLayerNorm,
    FusedAttention,
    fast_gpt,
    fast_layer_norm,
    fast_loss_batch,
    fuse_qkv,
    head_loss,
    make_fast,
    split_qkv,
)
from labcode.gelu import GELU
from labcode.generation import generate
from labcode.gpt2_weights import load_gpt2
from labcode.layernorm import LayerNorm
from labcode.model import GPTConfig, GPTModel
from labcode.training import calc_loss_batch, make_optimizer
from test_gpt2_weights import IDS, hf_state_dict, reference_logits, write_checkpoint

TOL = {"rtol": 1e-5, "atol": 1e-5}
CFG = GPTConfig(vocab_size=100, context_length=16, emb_dim=32, n_heads=4, n_layers=2,
                drop_rate=0.0)


def grads(output, inputs, seed=0):
    """Gradients of a fixed random projection of `output` with respect to `inputs`."""
    g = torch.randn(output.shape, generator=torch.Generator().manual_seed(seed))
    return torch.autograd.grad(output, inputs, g)


def twin_pair(cfg=CFG, seed=0):
    """An explicit GPT with random weights and a fast GPT loaded with the same weights."""
    torch.manual_seed(seed)
    explicit = GPTModel(cfg).eval()
    with torch.no_grad():  # biases and norms away from their zero/one init, so mistakes show
        for p in explicit.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    fast = fast_gpt(cfg).eval()
    fast.load_state_dict(fuse_qkv(explicit.state_dict()))
    return explicit, fast


def test_the_names_are_public_and_fast_comes_after_the_chapters_it_twins():
    assert labcode.fast_gpt is fast_gpt and labcode.make_fast is make_fast
    order = labcode.CHAPTERS.index
    assert all(order(chapter) < order("fast") for chapter in ("attention", "layernorm", "gelu", "model", "gpt2_weights"))


def test_fast_gelu_matches_the_explicit_tanh_gelu_forward_and_backward():
    x = (torch.linspace(-8, 8, 4001) * torch.linspace(0.5, 1.5, 4001)).requires_grad_()
    slow, fast = GELU()(x), FastGELU()(x)
    torch.testing.assert_close(fast, slow, **TOL)
    torch.testing.assert_close(grads(fast, x)[0], grads(slow, x)[0], **TOL)


def test_fast_layer_norm_has_the_explicit_parameters_and_agrees_forward_and_backward():
    torch.manual_seed(0)
    slow = LayerNorm(48, eps=1e-3)
    with torch.no_grad():
        slow.scale.normal_()
        slow.shift.normal_()
    fast = fast_layer_norm(slow)
    assert isinstance(fast, FastLayerNorm) and fast.eps == 1e-3
    assert fast.scale is slow.scale and fast.shift is slow.shift  # shared, not copied
    assert fast.state_dict().keys() == slow.state_dict().keys() == {"scale", "shift"}

    x = (torch.randn(3, 20, 48) * 4 + 2).requires_grad_()
    torch.testing.assert_close(fast(x), slow(x), **TOL)
    for g_fast, g_slow in zip(grads(fast(x), [x, fast.scale, fast.shift]),
                              grads(slow(x), [x, slow.scale, slow.shift])):
        torch.testing.assert_close(g_fast, g_slow, **TOL)


def test_a_fresh_fast_layer_norm_loads_an_explicit_layer_norms_state_dict():
    slow = LayerNorm(8)
    with torch.no_grad():
        slow.scale.uniform_()
    fast = FastLayerNorm(8)
    fast.load_state_dict(slow.state_dict())  # strict: same names, same shapes
    x = torch.randn(2, 8)
    torch.testing.assert_close(fast(x), slow(x), **TOL)


@pytest.mark.parametrize("qkv_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("attention", ["explicit", "sdpa"])
def test_fused_attention_agrees_with_separate_projections_forward_and_backward(qkv_bias, attention):
    torch.manual_seed(0)
    separate = MultiHeadAttention(24, 24, context_length=10, dropout=0.0, num_heads=3,
                                  qkv_bias=qkv_bias, attention=attention)
    if qkv_bias:
        with torch.no_grad():
            for layer in (separate.W_query, separate.W_key, separate.W_value):
                layer.bias.normal_()
    fused = FusedAttention.from_separate(separate)
    assert fused.out_proj is separate.out_proj
    x = torch.randn(2, 10, 24, requires_grad=True)
    torch.testing.assert_close(fused(x), separate(x), **TOL)

    params = ["weight"] + (["bias"] if qkv_bias else [])
    g_fused = grads(fused(x), [x] + [getattr(fused.qkv, p) for p in params])
    g_separate = grads(separate(x), [x] + [getattr(layer, p) for p in params for layer in
                                           (separate.W_query, separate.W_key, separate.W_value)])
    torch.testing.assert_close(g_fused[0], g_separate[0], **TOL)
    for i, _ in enumerate(params):  # qkv's gradient is the three gradients stacked q | k | v
        stacked = torch.cat(g_separate[1 + 3 * i:4 + 3 * i])
        torch.testing.assert_close(g_fused[1 + i], stacked, **TOL)


def test_fused_attention_with_a_cache_matches_the_full_sequence_in_any_chunks():
    """Chunks of 3, then single tokens: a chunk after cached tokens needs the shifted mask."""
    torch.manual_seed(0)
    fused = FusedAttention(16, 16, dropout=0.0, num_heads=2, qkv_bias=True).eval()
    x = torch.randn(2, 9, 16)
    full = fused(x)
    cache = KVCache(1).layers[0]
    pieces = [fused(x[:, a:b], cache=cache) for a, b in ((0, 3), (3, 6), (6, 7), (7, 8), (8, 9))]
    assert len(cache) == 9
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, **TOL)


def test_fused_attention_dropout_is_off_in_eval_and_on_in_training():
    torch.manual_seed(0)
    fused = FusedAttention(16, 16, dropout=0.5, num_heads=2)
    x = torch.randn(1, 8, 16)
    fused.eval()
    assert torch.equal(fused(x), fused(x))
    fused.train()
    assert not torch.equal(fused(x), fused(x))


def test_fast_gpt_gives_the_explicit_gpts_logits_and_gradients_with_the_same_weights():
    explicit, fast = twin_pair()
    ids = torch.randint(0, CFG.vocab_size, (3, CFG.context_length))
    torch.testing.assert_close(fast(ids), explicit(ids), **TOL)

    loss_explicit = torch.nn.functional.cross_entropy(explicit(ids).flatten(0, 1), ids.flatten())
    loss_fast = torch.nn.functional.cross_entropy(fast(ids).flatten(0, 1), ids.flatten())
    loss_explicit.backward()
    loss_fast.backward()
    g_explicit = {k: p.grad for k, p in explicit.named_parameters()}
    g_fast = split_qkv({k: p.grad for k, p in fast.named_parameters()})
    assert g_fast.keys() == g_explicit.keys()
    for key in g_explicit:
        torch.testing.assert_close(g_fast[key], g_explicit[key], **TOL, msg=key)


def test_a_training_step_moves_both_twins_to_the_same_weights():
    explicit, fast = twin_pair(cfg=GPTConfig(**{**CFG.__dict__, "attention": "sdpa"}))
    ids = torch.randint(0, CFG.vocab_size, (2, CFG.context_length + 1))
    for model in (explicit, fast):
        model.train()
        optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1)
        logits = model(ids[:, :-1])
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
        optimizer.step()
    after_fast = split_qkv(fast.state_dict())
    # The key bias's gradient is zero in exact arithmetic (it adds the same number to every
    # score of a row, which softmax ignores); AdamW divides by the gradient's size, so it turns
    # the twins' different rounding noise into full steps of +-lr. Compare the rest.
    for key, tensor in explicit.state_dict().items():
        if not key.endswith("W_key.bias"):
            torch.testing.assert_close(after_fast[key], tensor, **TOL, msg=key)


def test_make_fast_swaps_every_layer_in_place_and_keeps_the_weights():
    explicit, _ = twin_pair()
    model = copy.deepcopy(explicit)
    ids = torch.randint(0, CFG.vocab_size, (2, 12))
    assert make_fast(model) is model
    kinds = {type(m) for m in model.modules()}
    assert {FastGELU, FastLayerNorm, FusedAttention} <= kinds
    assert not kinds & {GELU, LayerNorm, MultiHeadAttention}
    torch.testing.assert_close(model(ids), explicit(ids), **TOL)


def test_make_fast_keeps_dropout_and_moves_nothing_off_the_models_dtype():
    model = make_fast(GPTModel(GPTConfig(**{**CFG.__dict__, "drop_rate": 0.2})).double())
    att = model.trf_blocks[0].att
    assert att.dropout_p == 0.2
    assert {p.dtype for p in model.parameters()} == {torch.float64}


def test_greedy_generation_with_the_kv_cache_gives_the_explicit_models_tokens():
    explicit, fast = twin_pair()
    prompt = torch.randint(0, CFG.vocab_size, (2, 5))
    # 5 + 30 tokens: the window slides past context_length=16 and the cache is rebuilt
    expected = generate(explicit, prompt, max_new_tokens=30, use_cache=True)
    assert torch.equal(generate(fast, prompt, max_new_tokens=30, use_cache=True), expected)
    assert torch.equal(generate(fast, prompt, max_new_tokens=30, use_cache=False), expected)


def test_state_dicts_convert_both_ways_exactly():
    explicit, fast = twin_pair()
    sd = explicit.state_dict()
    fused = fuse_qkv(sd)
    assert fused.keys() == fast.state_dict().keys()
    assert "trf_blocks.0.att.qkv.weight" in fused and "trf_blocks.0.att.W_key.bias" not in fused
    assert fused["trf_blocks.1.att.qkv.bias"].shape == (3 * CFG.emb_dim,)
    back = split_qkv(fused)
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)

    other = GPTModel(CFG).eval()
    other.load_state_dict(split_qkv(fast.state_dict()))  # strict: every key, every shape
    ids = torch.randint(0, CFG.vocab_size, (1, 9))
    assert torch.equal(other(ids), explicit(ids))


def test_a_split_state_dict_saves_as_safetensors(tmp_path):
    _, fast = twin_pair()
    save_file(split_qkv(fast.state_dict()), str(tmp_path / "model.safetensors"))  # no shared memory
    explicit = GPTModel(CFG).eval()
    explicit.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    ids = torch.randint(0, CFG.vocab_size, (1, 9))
    torch.testing.assert_close(explicit(ids), fast(ids), **TOL)


def test_gpt2_weights_load_then_fuse_into_c_attns_own_layout(tmp_path):
    """GPT-2's c_attn (d, 3d) holds q | k | v as columns: the fused qkv weight is its transpose."""
    sd = hf_state_dict()
    model = make_fast(load_gpt2(write_checkpoint(tmp_path / "ckpt", sd)))
    for i, block in enumerate(model.trf_blocks):
        assert torch.equal(block.att.qkv.weight, sd[f"h.{i}.attn.c_attn.weight"].T)
        assert torch.equal(block.att.qkv.bias, sd[f"h.{i}.attn.c_attn.bias"])
    assert model.out_head.weight is model.embed.tok_emb.weight  # still tied
    with torch.no_grad():
        torch.testing.assert_close(model(IDS), reference_logits(sd, IDS), **TOL)


def test_a_tied_fast_gpt_shares_one_tensor_between_embedding_and_head():
    model = fast_gpt(CFG, tied_head=True)
    assert model.out_head.weight is model.embed.tok_emb.weight
    untied = sum(p.numel() for p in fast_gpt(CFG).parameters())
    assert sum(p.numel() for p in model.parameters()) == untied - CFG.vocab_size * CFG.emb_dim


@pytest.mark.parametrize("ignored", [0, 3])
def test_head_loss_is_cross_entropy_of_the_logits_with_its_gradients(ignored):
    torch.manual_seed(0)
    hidden = torch.randn(12, 32, requires_grad=True)
    weight = (torch.randn(100, 32) * 0.3).requires_grad_()
    targets = torch.randint(0, 100, (12,))
    targets[:ignored] = -100  # e.g. padding or a masked prompt: counts for nothing
    ours = head_loss(hidden, weight, targets)
    reference = torch.nn.functional.cross_entropy(hidden @ weight.T, targets)
    torch.testing.assert_close(ours, reference, **TOL)
    mine = grads(ours * 3, (hidden, weight))  # an incoming gradient other than 1 is applied
    for ours_grad, theirs in zip(mine, grads(reference * 3, (hidden, weight))):
        torch.testing.assert_close(ours_grad, theirs, **TOL)
    assert (mine[0][:ignored] == 0).all()


def test_head_loss_needs_no_gradient_and_counts_nothing_when_every_target_is_ignored():
    hidden, weight = torch.randn(4, 8), torch.randn(10, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            head_loss(hidden, weight, torch.tensor([1, 2, 3, 4])),
            torch.nn.functional.cross_entropy(hidden @ weight.T, torch.tensor([1, 2, 3, 4])))
    assert head_loss(hidden, weight, torch.full((4,), -100)).item() == 0.0


def test_fast_loss_batch_gives_calc_loss_batchs_loss_and_the_same_training_step():
    _, fast = twin_pair()
    twin = copy.deepcopy(fast).train()
    fast.train()
    ids = torch.randint(0, CFG.vocab_size, (3, CFG.context_length + 1),
                        generator=torch.Generator().manual_seed(1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    losses = []
    for model, loss_of in ((fast, calc_loss_batch), (twin, fast_loss_batch)):
        optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1)
        loss = loss_of(inputs, targets, model, "cpu")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    for (key, before), after in zip(fast.state_dict().items(), twin.state_dict().values()):
        if not key.endswith("qkv.bias"):  # its key third: rounding noise, as above
            torch.testing.assert_close(after, before, **TOL, msg=key)


def test_fast_loss_batch_trains_a_tied_head_through_both_of_its_uses():
    model = fast_gpt(CFG, tied_head=True)
    ids = torch.randint(0, CFG.vocab_size, (2, CFG.context_length + 1))
    fast_loss_batch(ids[:, :-1], ids[:, 1:], model, "cpu").backward()
    mine = model.embed.tok_emb.weight.grad.clone()
    model.zero_grad()
    calc_loss_batch(ids[:, :-1], ids[:, 1:], model, "cpu").backward()
    torch.testing.assert_close(mine, model.embed.tok_emb.weight.grad, **TOL)


def test_fast_loss_batch_refuses_a_sequence_longer_than_the_context():
    model = fast_gpt(CFG)
    ids = torch.zeros(1, CFG.context_length + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="longer than the context length 16; crop it first"):
        fast_loss_batch(ids, ids, model, "cpu")


def test_head_loss_refuses_what_cross_entropy_refuses():
    hidden = torch.randn(3, 8, requires_grad=True)
    weight = torch.randn(10, 8, requires_grad=True)
    for bad in (-1, 10):  # a negative target is not taken as counting from the end
        with pytest.raises(IndexError, match=f"target {bad} is out of bounds for a vocabulary of 10"):
            head_loss(hidden, weight, torch.tensor([1, bad, 2]))
    # a second derivative (a gradient penalty) would silently be zero: it raises instead
    loss = head_loss(hidden, weight, torch.tensor([1, 2, 3]))
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(loss, weight, create_graph=True)

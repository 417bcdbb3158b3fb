"""generate: greedy, sampling, filters, eos, and a KV cache that changes nothing but speed."""
import pytest
import torch

import labcode
from labcode.generation import generate, top_k_filter, top_p_filter
from labcode.model import GPTConfig, GPTModel


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=100, context_length=16, emb_dim=32, n_heads=2, n_layers=2,
                    drop_rate=0.0)
    return GPTModel(cfg).eval()


@pytest.fixture(scope="module")
def sdpa_model(model):
    cfg = GPTConfig(**{**model.cfg.__dict__, "attention": "sdpa"})
    sdpa = GPTModel(cfg).eval()
    sdpa.load_state_dict(model.state_dict())
    return sdpa


def test_generate_is_the_public_name():
    assert labcode.generate is generate


def test_returns_prompt_plus_new_tokens(model):
    prompt = torch.randint(0, 100, (3, 5))
    out = generate(model, prompt, max_new_tokens=4)
    assert out.shape == (3, 9)
    assert torch.equal(out[:, :5], prompt)


@pytest.mark.parametrize("which", ["explicit", "sdpa"])
def test_cached_greedy_is_identical_to_uncached_past_the_context_length(model, sdpa_model, which):
    m = model if which == "explicit" else sdpa_model
    prompt = torch.randint(0, 100, (2, 6))
    # 6 + 30 tokens: the window slides past context_length=16 for many steps
    cached = generate(m, prompt, max_new_tokens=30, use_cache=True)
    uncached = generate(m, prompt, max_new_tokens=30, use_cache=False)
    assert cached.shape == (2, 36)
    assert torch.equal(cached, uncached)


def test_a_prompt_longer_than_the_context_is_cropped(model):
    prompt = torch.randint(0, 100, (1, 40))
    out = generate(model, prompt, max_new_tokens=3)
    expected = generate(model, prompt[:, -16:], max_new_tokens=3)
    assert torch.equal(out[:, 40:], expected[:, 16:])


def test_top_k_of_one_is_greedy(model):
    prompt = torch.randint(0, 100, (2, 4))
    greedy = generate(model, prompt, max_new_tokens=8)
    torch.manual_seed(1)
    sampled = generate(model, prompt, max_new_tokens=8, temperature=1.5, top_k=1)
    assert torch.equal(greedy, sampled)


def test_temperature_sampling_is_reproducible_with_a_seed(model):
    prompt = torch.randint(0, 100, (2, 4))
    runs = []
    for _ in range(2):
        torch.manual_seed(42)
        runs.append(generate(model, prompt, max_new_tokens=10, temperature=1.0, top_p=0.9))
    assert torch.equal(runs[0], runs[1])
    torch.manual_seed(43)
    other = generate(model, prompt, max_new_tokens=10, temperature=1.0, top_p=0.9)
    assert not torch.equal(runs[0], other)


def test_cached_and_uncached_sampling_agree_with_the_same_seed(model):
    prompt = torch.randint(0, 100, (2, 4))
    outs = []
    for use_cache in (True, False):
        torch.manual_seed(7)
        outs.append(generate(model, prompt, 20, temperature=0.8, top_k=20, use_cache=use_cache))
    assert torch.equal(outs[0], outs[1])


class CountingModel(torch.nn.Module):
    """A stand-in model whose greedy next token is always the last token + 1."""

    cfg = GPTConfig(vocab_size=50, context_length=8)

    def new_cache(self):
        return None  # generate re-prefills every step: fine for a stand-in

    def forward(self, idx, cache=None):
        return torch.nn.functional.one_hot((idx + 1) % 50, 50).float()  # (B, T, V)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_stops_once_every_row_produced_eos(use_cache):
    prompt = torch.tensor([[9, 10], [5, 8]])
    out = generate(CountingModel(), prompt, max_new_tokens=10, eos_id=13, use_cache=use_cache)
    # row 0 reaches 13 after 3 tokens and is padded with eos; row 1 after 5, then all stop
    assert out.tolist() == [[9, 10, 11, 12, 13, 13, 13], [5, 8, 9, 10, 11, 12, 13]]
    # without eos it runs the full length
    assert generate(CountingModel(), prompt, 10, use_cache=use_cache).shape == (2, 12)


def test_top_k_filter_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0]])
    kept = top_k_filter(logits, 2)
    assert torch.equal(torch.isfinite(kept), torch.tensor([[False, True, False, True]]))


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.05, 0.5, 0.25, 0.2]])
    logits = probs.log()
    # 0.5 alone < 0.6; 0.5 + 0.25 reaches it, so exactly those two stay
    kept = torch.isfinite(top_p_filter(logits, 0.6))
    assert kept.tolist() == [[False, True, True, False]]
    # the most likely token is always kept
    assert torch.isfinite(top_p_filter(logits, 0.01)).tolist() == [[False, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()


# -- the decoding post's labs ------------------------------------------------------------

@pytest.fixture
def no_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_decoding_demo_top_p_keeps_the_smallest_set_whose_mass_reaches_p(no_figures):
    from labcode.labs.decoding import decoding_distribution_demo

    r = decoding_distribution_demo(top_k=3, top_p=0.9)
    # the kept tokens are the most likely ones, and one token fewer would fall short of p
    assert r["top_p_kept"] == r["tokens"][:r["top_p_kept_count"]]
    assert r["top_p_mass"] >= 0.9 > r["top_p_mass_one_fewer"]
    assert r["top_k_kept"] == r["tokens"][:3]
    assert r["top_k_first_prob"] == pytest.approx(r["probs"][0] / r["top_k_mass"])
    assert r["greedy"] == r["tokens"][0]


def test_decoding_demo_higher_temperature_flattens_and_widens_the_nucleus(no_figures):
    from labcode.labs.decoding import decoding_distribution_demo

    rows = decoding_distribution_demo(temperatures=(0.5, 1.0, 2.0))["by_temperature"]
    assert [sum(r["probs"]) for r in rows] == pytest.approx([1.0, 1.0, 1.0])
    top, entropy, nucleus = ([r[k] for r in rows] for k in ("top_prob", "entropy", "nucleus_size"))
    assert top == sorted(top, reverse=True) and entropy == sorted(entropy)
    assert nucleus == sorted(nucleus) and nucleus[0] < nucleus[-1]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from labcode.tiny_gpt import save_tiny_gpt, train_tiny_gpt

    text = "Attention lets every token look back. The model learns the next one. " * 40
    folder = tmp_path_factory.mktemp("tiny")
    (folder / "corpus.txt").write_text(text, encoding="utf-8")
    save_tiny_gpt(folder / "tiny.pt", train_tiny_gpt(text, steps=3, vocab_size=300))
    return folder


def test_decoding_on_tiny_gpt_greedy_writes_one_text_and_sampling_is_seeded(tiny_checkpoint):
    from labcode.labs.decoding import decoding_on_tiny_gpt

    args = dict(checkpoint=str(tiny_checkpoint / "tiny.pt"), prompt="The model",
                max_new_tokens=12, num_samples=3)
    first, again = decoding_on_tiny_gpt(**args), decoding_on_tiny_gpt(**args)
    assert first == again
    assert first["greedy"]["distinct_samples"] == 1
    assert [r["name"] for r in first["settings"]] == ["greedy", "cool", "plain", "top_k",
                                                      "top_p", "hot"]
    assert all(r["text"].startswith("The model") and r["own_loss"] > 0 for r in first["settings"])
    top_p = first["top_p"]
    assert 1 <= top_p["nucleus_min"] <= top_p["nucleus_median"] <= top_p["nucleus_max"] <= 300


def test_stopped_rows_match_the_unstopped_run_up_to_the_stop_then_pad(tiny_checkpoint):
    from labcode.labs.decoding import stop_at_end_of_text

    r = stop_at_end_of_text(str(tiny_checkpoint / "tiny.pt"), prompt="The model",
                            max_new_tokens=20, num_samples=4, stop=".",
                            corpus=str(tiny_checkpoint / "corpus.txt"))
    assert r["same_prefix"]
    assert r["eot_in_corpus"] == 0 and 0 <= r["eot_rows"] <= 4
    assert r["steps_run"] == r["longest"] <= 20
    assert r["padding"] == r["steps_run"] - r["shortest"]


# -- the KV-cache post's lab -------------------------------------------------------------

def test_kv_cache_measured_is_identical_and_rebuilds_once_per_slid_step(no_figures):
    from labcode.labs.kv_cache import kv_cache_measured

    torch.manual_seed(0)
    r = kv_cache_measured(max_new_tokens=24, context_length=16, prompt_tokens=4, repeats=1)
    assert r["mismatches"] == 0 and r["identical"]
    assert r["steps_before_slide"] == 16 - 4 + 1
    assert r["rebuilds"] == r["tokens_past_context"] == 24 - 13
    # before the slide the cache feeds the prompt once, then one position a step
    assert r["positions_cache_before_slide"] == 4 + 12
    assert r["positions_no_cache_before_slide"] == sum(range(4, 17))
    assert r["positions_cache"] == 16 + 11 * 16
    assert len(r["seconds_cache"]) == len(r["token_counts"]) == 1


def test_a_rolling_cache_agrees_until_the_window_slides_then_drifts(model):
    from labcode.labs.kv_cache import greedy_with_rolling_cache

    torch.manual_seed(3)
    prompt = torch.randint(0, 100, (1, 6))
    exact = generate(model, prompt, max_new_tokens=40)
    rolling = greedy_with_rolling_cache(model, prompt, max_new_tokens=40)
    assert torch.equal(rolling[:, :17], exact[:, :17])  # 17 tokens: the window never slid
    assert not torch.equal(rolling, exact)


def test_step_log_counts_what_generate_feeds_the_model(model):
    from labcode.labs.kv_cache import StepLog

    log = StepLog(model)
    generate(log, torch.zeros(1, 5, dtype=torch.long), max_new_tokens=4)
    assert log.positions == [5, 1, 1, 1] and log.prefills == 1 and len(log.ends) == 4


def test_repeating_phrase_finds_the_loop_greedy_decoding_fell_into():
    from labcode.generation import repeating_phrase

    looped = "The model is the same perate, and the same size, and the same size, and the same " \
             "size, and the same size, and the same sumns"
    assert repeating_phrase(looped) == {"phrase": "and the same size", "repeats": 4}
    assert repeating_phrase("to be or not to be") == {"phrase": "", "repeats": 1}
    # the loop that covers the most text wins: 9 words of "c" over 8 of "x y z w,"
    assert repeating_phrase("x y z w, x y z w, c c c c c c c c c") == {"phrase": "c", "repeats": 9}
    assert repeating_phrase("x y z w, x y z w, c c c") == {"phrase": "x y z w", "repeats": 2}

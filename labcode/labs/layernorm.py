"""Labs of the post "Layer normalisation, measured": what `labcode.layernorm.LayerNorm` does
to a layer's outputs, what its scale, shift and eps do, how it compares with torch's, and where
a block puts it (pre-norm against post-norm).
"""
import matplotlib.pyplot as plt
import torch
from torch import nn

from labcode.attention import MultiHeadAttention
from labcode.feedforward import FeedForward
from labcode.gelu import GELU
from labcode.labs.figures import WIDTH, house_style
from labcode.layernorm import LayerNorm


def _token_stats(x) -> tuple[list[float], list[float]]:
    """Per-token mean and (biased) variance over the last dimension, as lists."""
    return (x.mean(dim=-1).tolist(), x.var(dim=-1, unbiased=False).tolist())


def normalise_activations_demo(emb_dim: int = 768) -> dict:
    """Per-token mean and variance of a layer's outputs, before and after LayerNorm.

    Six tokens go through one Linear+GELU layer; each token's input is scaled by its own
    factor, as tokens in a residual stream end up at very different sizes. The last factor
    is tiny on purpose, to show where eps starts to matter.
    """
    sizes = [0.25, 0.5, 1.0, 2.0, 4.0, 0.01]  # each token's input scale
    layer = nn.Sequential(nn.Linear(emb_dim, emb_dim), GELU())
    x = torch.randn(len(sizes), emb_dim) * torch.tensor(sizes)[:, None]  # (tokens, d)
    with torch.no_grad():
        h = layer(x)  # the activations LayerNorm receives
        out = LayerNorm(emb_dim)(h)  # scale = 1, shift = 0: the state at initialisation
    mean_before, var_before = _token_stats(h)
    mean_after, var_after = _token_stats(out)

    rows = [{"token": i, "input scale": s, "mean before": mb, "var before": vb,
             "mean after": ma, "var after": va}
            for i, (s, mb, vb, ma, va) in enumerate(
                zip(sizes, mean_before, var_before, mean_after, var_after))]
    # narrow columns under two group headings, so the table fits a phone
    print(f"{'':>5}{'input':>6}{'before LayerNorm':>20}{'after':>16}")
    print(f"{'token':>5}{'scale':>6}{'mean':>10}{'var':>10}{'mean':>9}{'var':>7}")
    for r in rows:
        print(f"{r['token']:>5}{r['input scale']:>6.2f}{r['mean before']:>10.2e}"
              f"{r['var before']:>10.2e}{r['mean after']:>9.1e}{r['var after']:>7.4f}")

    medians_after = out.median(dim=-1).values.tolist()
    print("medians after: " + "  ".join(f"{m:+.3f}" for m in medians_after))

    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 6.0), sharex=True)
    for ax, values, title in ((axes[0], h, "before LayerNorm"), (axes[1], out, "after LayerNorm")):
        ax.boxplot([v.numpy() for v in values], showfliers=False)
        ax.set_xticks(range(1, len(sizes) + 1), [str(i) for i in range(len(sizes))])
        ax.set_title(title)
        ax.set_ylabel("activation value")
        ax.grid(True, axis="y")
    axes[1].set_xlabel("token")
    fig.suptitle("Each token's activations before and after LayerNorm")
    house_style(fig)

    normal = slice(0, len(sizes) - 1)  # every token but the tiny one
    return {"rows": rows, "emb_dim": emb_dim,
            "before_mean_min": min(mean_before[normal]), "before_mean_max": max(mean_before[normal]),
            "before_var_min": min(var_before[normal]), "before_var_max": max(var_before[normal]),
            "var_ratio_before": max(var_before[normal]) / min(var_before[normal]),
            "after_mean_absmax": max(abs(m) for m in mean_after),
            "median_after_max": max(medians_after[normal]), "median_after_min": min(medians_after[normal]),
            "tiny_median_after": medians_after[-1],
            "after_var_min": min(var_after[normal]), "after_var_max": max(var_after[normal]),
            "after_std_max": max(v ** 0.5 for v in var_after[normal]),
            "tiny_var_before": var_before[-1], "tiny_var_after": var_after[-1]}


def scale_shift_demo(emb_dim: int = 768) -> dict:
    """What `scale` and `shift` can change, and what LayerNorm has already thrown away.

    A uniform scale and shift set every token's standard deviation and mean; random
    per-feature ones (what training produces) give each feature its own size. Neither can
    tell apart two tokens that differ only by a scale and an offset: x and 3x + 1.
    """
    norm = LayerNorm(emb_dim)
    x = torch.randn(4, emb_dim) * 2 + 0.5  # (tokens, d)
    with torch.no_grad():
        norm.scale.fill_(2.0)
        norm.shift.fill_(0.5)
        uniform = norm(x)
        mean_u, var_u = _token_stats(uniform)
        norm.scale.copy_(torch.rand(emb_dim) * 2)  # per-feature, in [0, 2)
        norm.shift.copy_(torch.randn(emb_dim) * 0.1)
        learnt = norm(x)
        feature_std = learnt.std(dim=0, unbiased=False)  # across tokens, per feature
        # two tokens that differ by a per-token scale and offset come out the same
        invariance = (norm(3 * x + 1) - norm(x)).abs().max().item()
    print("scale = 2, shift = 0.5 for every feature:")
    print(f"  each token's mean: {', '.join(f'{m:.4f}' for m in mean_u)}")
    print(f"  each token's std:  {', '.join(f'{v ** 0.5:.4f}' for v in var_u)}")
    print("random per-feature scale and shift:")
    print(f"  std of a feature across tokens ranges {feature_std.min():.3f} to "
          f"{feature_std.max():.3f}")
    print(f"max |LN(3x + 1) - LN(x)| = {invariance:.1e}")
    return {"set_scale": 2.0, "set_shift": 0.5, "uniform_mean_min": min(mean_u), "uniform_mean_max": max(mean_u),
            "uniform_std_min": min(v ** 0.5 for v in var_u),
            "uniform_std_max": max(v ** 0.5 for v in var_u),
            "feature_std_min": feature_std.min().item(),
            "feature_std_max": feature_std.max().item(),
            "invariance_max_diff": invariance}


def eps_demo(emb_dim: int = 768) -> dict:
    """The variance after LayerNorm, as a token's size shrinks towards sqrt(eps); and eps = 0.

    The output's variance is var / (var + eps): 1 for ordinary tokens, falling to 0 for tokens
    whose own standard deviation is near sqrt(eps) or smaller. A constant vector is 0 / 0
    without eps.
    """
    base = torch.randn(emb_dim)
    base = (base - base.mean()) / base.std(unbiased=False)  # mean 0, std exactly 1
    stds = torch.logspace(-5, 1, 61)  # 1e-5 ... 10
    norm = LayerNorm(emb_dim)  # eps = 1e-5
    with torch.no_grad():
        var_after = torch.stack([norm(base * s).var(unbiased=False) for s in stds])
        constant = torch.full((emb_dim,), 3.0)
        with_eps = norm(constant)
        norm.eps = 0.0
        without_eps = norm(constant)
    predicted = stds**2 / (stds**2 + 1e-5)

    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    ax.semilogx(stds, var_after, label="measured")
    ax.semilogx(stds, predicted, linestyle="--", label="var / (var + eps)")
    ax.axvline(1e-5 ** 0.5, color="grey", linewidth=0.8)
    ax.set_xlabel("std of the token's activations")
    ax.set_ylabel("variance after LayerNorm")
    ax.grid(True)
    ax.legend()
    ax.set_title("What eps does to a nearly constant token")
    house_style(fig)

    def after(std):
        return var_after[(stds - std).abs().argmin()].item()

    print(f"eps = 1e-5, sqrt(eps) = {1e-5 ** 0.5:.5f}")
    print(f"variance after LayerNorm for a token of std 1: {after(1.0):.6f}, "
          f"0.01: {after(0.01):.4f}, 0.001: {after(0.001):.4f}")
    print(f"a constant vector with eps:    {with_eps[:3].tolist()} ...")
    print(f"a constant vector without eps: {without_eps[:3].tolist()} ...")
    return {"probed_std": [1.0, 0.01, 0.001], "var_after_std1": after(1.0), "var_after_std_0_01": after(0.01),
            "var_after_std_0_001": after(0.001), "sqrt_eps": 1e-5 ** 0.5,
            "max_diff_from_formula": (var_after - predicted).abs().max().item(),
            "constant_with_eps": with_eps.abs().max().item(),
            "constant_without_eps_nan": bool(without_eps.isnan().all())}


def compare_with_torch(device: str = "cpu") -> dict:
    """Our LayerNorm against torch.nn.LayerNorm with the same scale and shift, both ways.

    torch calls the two vectors `weight` and `bias`; GPT-2's checkpoints call them
    `ln_1.weight` and `ln_1.bias`, which the weight loader maps onto `scale` and `shift`.
    """
    d = 768
    ours = LayerNorm(d).to(device)
    theirs = nn.LayerNorm(d, eps=1e-5).to(device)
    with torch.no_grad():
        ours.scale.normal_(1.0, 0.2)
        ours.shift.normal_(0.0, 0.2)
        theirs.weight.copy_(ours.scale)
        theirs.bias.copy_(ours.shift)
    x = (torch.randn(8, 64, d) * 3 + 1).to(device).requires_grad_()  # (B, T, d)

    y_ours = ours(x)
    (g_ours,) = torch.autograd.grad(y_ours.square().sum(), x)
    y_theirs = theirs(x)
    (g_theirs,) = torch.autograd.grad(y_theirs.square().sum(), x)
    forward = (y_ours - y_theirs).abs().max().item()
    backward = (g_ours - g_theirs).abs().max().item()
    with torch.no_grad():  # the same comparison in float64: the difference is rounding
        x64 = x.double()
        forward64 = (ours.double()(x64) - theirs.double()(x64)).abs().max().item()
        # dividing by n - 1 instead of n: torch.var's default, and a common slip
        mean = x64.mean(-1, keepdim=True)
        unbiased = (x64 - mean) / torch.sqrt(x64.var(-1, keepdim=True) + 1e-5)
        biased = (x64 - mean) / torch.sqrt(x64.var(-1, keepdim=True, unbiased=False) + 1e-5)
        unbiased_diff = (unbiased - biased).abs().max().item()
    print("max |ours - torch.nn.LayerNorm|:")
    print(f"  float32 forward:   {forward:.2e}")
    print(f"  float32 gradient:  {backward:.2e}")
    print(f"  float64 forward:   {forward64:.2e}")
    print("max change from dividing by n - 1")
    print(f"  instead of n:      {unbiased_diff:.2e}")
    return {"forward_max_diff": forward, "grad_max_diff": backward,
            "forward64_max_diff": forward64, "unbiased_max_diff": unbiased_diff,
            "emb_dim": d}


class NormPlacementBlock(nn.Module):
    """A transformer block with its norms before the sublayers or after the sums.

    pre-norm (GPT-2):             x = x + att(LN1(x)); x = x + ff(LN2(x))
    post-norm (2017 transformer): x = LN1(x + att(x)); x = LN2(x + ff(x))
    """

    def __init__(self, att: nn.Module, ff: nn.Module, emb_dim: int, pre_norm: bool):
        super().__init__()
        self.att, self.ff, self.pre_norm = att, ff, pre_norm
        self.norm1, self.norm2 = LayerNorm(emb_dim), LayerNorm(emb_dim)

    def forward(self, x):  # (B, T, d) -> (B, T, d)
        if self.pre_norm:  # the shortcut path never meets a norm
            x = x + self.att(self.norm1(x))
            return x + self.ff(self.norm2(x))
        x = self.norm1(x + self.att(x))  # every sum is normalised, shortcut included
        return self.norm2(x + self.ff(x))


def _norm_placement_run(pre_norm: bool, n_layers: int, emb_dim: int, seed: int) -> dict:
    """Gradient norm of each block's parameters, and the stream's std after each block."""
    seq_len, heads = 16, 4
    torch.manual_seed(seed)  # the same weights and inputs for both placements
    blocks = nn.ModuleList([
        NormPlacementBlock(MultiHeadAttention(emb_dim, emb_dim, seq_len, 0.0, heads),
                           FeedForward(emb_dim), emb_dim, pre_norm)
        for _ in range(n_layers)])
    for module in blocks.modules():
        if isinstance(module, nn.Linear):  # each sublayer writes about as much as it reads
            nn.init.normal_(module.weight, 0.0, module.in_features ** -0.5)
            nn.init.zeros_(module.bias) if module.bias is not None else None
    x = torch.randn(4, seq_len, emb_dim)  # (B, T, d)
    readout = torch.randn(emb_dim)  # the loss: a fixed random readout of the output
    stream_std = []
    for block in blocks:
        x = block(x)
        stream_std.append(x.std().item())
    out = LayerNorm(emb_dim)(x) if pre_norm else x  # pre-norm needs a final norm, as GPT-2
    (out @ readout).mean().backward()
    grads = [sum(p.grad.square().sum() for p in b.parameters()).sqrt().item() for b in blocks]
    return {"grad": grads, "stream_std": stream_std}


def pre_vs_post_norm_demo(n_layers: int = 24, emb_dim: int = 64, draws: int = 3) -> dict:
    """Pre-norm and post-norm stacks with the same weights: gradients per block, stream size.

    Weights are drawn with std 1/sqrt(fan_in), so each sublayer writes about as much as it
    reads, as trained sublayers do. Each placement is run on `draws` draws of weights; the
    plot shows their mean, the table each draw.
    """
    runs = {place: [_norm_placement_run(place == "pre", n_layers, emb_dim, seed)
                    for seed in range(draws)] for place in ("pre", "post")}

    def mean_curve(place, key):
        return [sum(vals) / draws for vals in zip(*(run[key] for run in runs[place]))]

    fig, (ax_g, ax_s) = plt.subplots(2, 1, figsize=(WIDTH, 6.0), sharex=True)
    for place, style in (("pre", "-"), ("post", "--")):
        ax_g.semilogy(range(n_layers), mean_curve(place, "grad"), style, label=f"{place}-norm")
        ax_s.plot(range(n_layers), mean_curve(place, "stream_std"), style, label=f"{place}-norm")
    ax_g.set_ylabel("gradient norm of the block")
    ax_s.set_ylabel("std of the stream after it")
    ax_s.set_xlabel("block")
    for ax in (ax_g, ax_s):
        ax.grid(True)
        ax.legend()
    fig.suptitle("Pre-norm against post-norm, block by block")
    house_style(fig)

    result = {"n_layers": n_layers, "emb_dim": emb_dim, "draws": draws}
    print(f"{n_layers} blocks of width {emb_dim};")
    print("weights with std 1/sqrt(fan_in)")
    print(f"{'':<10}{'':>5}{'grad,':>9}{'grad,':>8}{'last /':>8}{'stream':>8}")
    print(f"{'':<10}{'draw':>5}{'block 0':>9}{'last':>8}{'first':>8}{'std':>8}")
    for place, place_runs in runs.items():
        ratios = [run["grad"][-1] / run["grad"][0] for run in place_runs]
        for seed, (run, ratio) in enumerate(zip(place_runs, ratios)):
            print(f"{place + '-norm':<10}{seed:>5}{run['grad'][0]:>9.3f}{run['grad'][-1]:>8.3f}"
                  f"{ratio:>8.2f}{run['stream_std'][-1]:>8.2f}")
        result[f"{place}_ratio_min"] = min(ratios)
        result[f"{place}_ratio_max"] = max(ratios)
        stds = [run["stream_std"][-1] for run in place_runs]
        result[f"{place}_std_last_min"] = min(stds)
        result[f"{place}_std_last_max"] = max(stds)
        result[f"{place}_std_first"] = mean_curve(place, "stream_std")[0]
    return result

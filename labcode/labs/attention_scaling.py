"""Why attention divides its scores by sqrt(d_k): unscaled, the softmax saturates.

With q and k of independent unit-variance components, q·k is a sum of d_k products, so its
variance is d_k. Wide heads give wide scores, the softmax of wide scores is nearly one-hot, and
a nearly one-hot softmax passes almost no gradient back to the scores: its Jacobian,
`softmax_jacobian`, is diag(w) - w w^T, which is near zero when one weight is near 1.
Dividing by sqrt(d_k) brings the variance back to 1 at every width.

The labs measure this over many rows (`softmax_saturation_demo`) and inside one row, key by
key (`saturated_row_gradient`).
"""
import math

import matplotlib.pyplot as plt
import torch

from labcode.labs.figures import WIDTH, house_style


def softmax_jacobian(weights):
    """d softmax / d scores for rows of softmax `weights`: (..., n) -> (..., n, n).

    Entry (i, j) is w_i (1[i = j] - w_j): every gradient reaching the scores is multiplied
    by it, and it is near zero when the row is nearly one-hot.
    """
    return torch.diag_embed(weights) - weights.unsqueeze(-1) * weights.unsqueeze(-2)


def softmax_saturation_demo(dims=(4, 16, 64, 256, 1024), n_keys: int = 16,
                            n_rows: int = 256) -> dict:
    """Softmax rows of q·k scores as d_k grows: unscaled, divided by sqrt(d_k), divided by d_k.

    q and k have independent unit-variance components, as at initialisation. For each d_k:
    the variance of q·k, and over `n_rows` rows of `n_keys` scores, the mean largest weight,
    the mean entropy, the share of saturated rows (largest weight > 0.99) and the median size
    (Frobenius norm) of the softmax Jacobian, the factor every gradient reaching the scores
    is multiplied by.
    """
    torch.manual_seed(123)
    scalings = {"none": lambda d: 1.0, "sqrt": lambda d: d ** 0.5, "d_k": lambda d: float(d)}
    result = {"dims": list(dims), "n_keys": n_keys, "n_rows": n_rows,
              "score_var": [], "scaled_score_var": []}
    for name in scalings:
        result[name] = {"max_weight": [], "entropy": [], "saturated": [], "grad": [],
                        "grad_mean": []}
    for d_k in dims:
        q = torch.randn(n_rows, 1, d_k)  # one query per row...
        k = torch.randn(n_rows, n_keys, d_k)  # ...and its own n_keys keys
        scores = (q * k).sum(dim=-1)  # (n_rows, n_keys): q·k for every key
        result["score_var"].append(scores.var().item())
        result["scaled_score_var"].append((scores / d_k ** 0.5).var().item())
        for name, divisor in scalings.items():
            w = torch.softmax(scores / divisor(d_k), dim=-1)  # (n_rows, n_keys)
            largest = w.max(dim=-1).values
            entropy = -torch.special.xlogy(w, w).sum(dim=-1)  # 0 one-hot, ln(n_keys) uniform
            # near zero when w is nearly one-hot
            size = softmax_jacobian(w).norm(dim=(-2, -1))  # (n_rows,)
            stats = result[name]
            stats["max_weight"].append(largest.mean().item())
            stats["entropy"].append(entropy.mean().item())
            stats["saturated"].append((largest > 0.99).float().mean().item())
            stats["grad"].append(size.median().item())
            stats["grad_mean"].append(size.mean().item())
    result["uniform"] = {"max_weight": 1 / n_keys, "entropy": math.log(n_keys),
                         "grad": (n_keys - 1) ** 0.5 / n_keys}

    print(f"{n_rows} rows of {n_keys} scores q·k per d_k,")
    print("q, k ~ N(0, 1)")
    # two narrow tables rather than one wide one, so each fits a phone
    print("\nmean largest weight; unscaled rows > 0.99")
    print(f"{'d_k':>5}{'var(q·k)':>9}  {'none':>7}{'sqrt':>7}{'d_k':>7}{'>0.99':>7}")
    for i, d_k in enumerate(dims):
        print(f"{d_k:>5}{result['score_var'][i]:>9.1f}  "
              + "".join(f"{result[n]['max_weight'][i]:>7.3f}" for n in scalings)
              + f"{result['none']['saturated'][i]:>7.0%}")
    print(f"{'uniform row':<16}{1 / n_keys:>7.3f}")
    print("\nmedian |d softmax / d s|")
    print(f"{'d_k':>5}  {'none':>9}{'sqrt':>9}{'d_k':>9}")
    for i, d_k in enumerate(dims):
        print(f"{d_k:>5}  " + "".join(f"{result[n]['grad'][i]:>9.1e}" for n in scalings))
    print(f"{'uniform row':<25}{result['uniform']['grad']:>9.1e}")

    labels = {"none": "q·k", "sqrt": "q·k / √d_k", "d_k": "q·k / d_k"}
    fig, axes = plt.subplots(3, 1, figsize=(WIDTH, 8.4), sharex=True)
    panels = (("max_weight", "mean largest weight"), ("entropy", "mean entropy (nats)"),
              ("grad", "median |Jacobian of softmax|"))
    for ax, (key, title) in zip(axes, panels):
        for name, style in zip(scalings, ("-o", "-s", "--^")):
            ax.plot(dims, result[name][key], style, label=labels[name], markersize=4)
        ax.axhline(result["uniform"][key], color="grey", linestyle=":", linewidth=1,
                   label="uniform row")
        ax.set_xscale("log", base=2)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[2].set_xlabel("d_k")
    axes[2].set_yscale("log")
    axes[0].legend()
    fig.suptitle("Unscaled scores saturate the softmax as d_k grows")
    house_style(fig)
    return result


def saturated_row_gradient(d_k: int = 256, n_keys: int = 8, d_v: int = 4) -> dict:
    """One query against `n_keys` keys, unscaled and scaled: weights and the gradient each score gets.

    The loss is linear in the attention output (L = (w @ V) · g for a random upstream
    gradient g), as it is inside a network. For contrast, the gradient of -log w[target]
    (how the output layer's softmax is trained) on the least attended key. A key whose
    score gets a gradient below 1e-4 is counted as out of reach of learning.
    """
    torch.manual_seed(123)
    q, keys = torch.randn(d_k), torch.randn(n_keys, d_k)
    values, upstream = torch.randn(n_keys, d_v), torch.randn(d_v)
    result = {"d_k": d_k, "n_keys": n_keys}
    for name, divisor in (("none", 1.0), ("sqrt", d_k ** 0.5)):
        query = q.clone().requires_grad_(True)
        scores = keys @ query / divisor  # (n_keys,)
        scores.retain_grad()
        w = torch.softmax(scores, dim=-1)
        (w @ values @ upstream).backward()  # the loss: output · upstream gradient
        target = w.argmin()  # the key the output softmax would be asked to pick
        ce_grad = w.detach().clone()
        ce_grad[target] -= 1  # d(-log w[target]) / d scores = w - onehot(target)
        result[name] = {"scores": scores.tolist(), "weights": w.tolist(),
                        "score_grads": scores.grad.tolist(),
                        "max_weight": w.max().item(),
                        "max_score_grad": scores.grad.abs().max().item(),
                        "live_keys": (scores.grad.abs() > 1e-4).sum().item(),
                        "largest_dead_grad": max([g for g in scores.grad.abs().tolist()
                                                  if g <= 1e-4], default=0.0),
                        "least_attended_grad": scores.grad[target].abs().item(),
                        "query_grad": query.grad.norm().item(),
                        "ce_max_grad": ce_grad.abs().max().item()}
    none, sqrt = result["none"], result["sqrt"]
    result["grad_ratio"] = sqrt["max_score_grad"] / none["max_score_grad"]
    result["query_grad_ratio"] = sqrt["query_grad"] / none["query_grad"]

    print(f"one query, {n_keys} keys, d_k = {d_k}")
    for r, title in ((none, "unscaled q·k"), (sqrt, "scaled q·k / √d_k")):  # one narrow table each
        print(f"\n{title}")
        print(f"{'key':>4}{'score':>9}{'weight':>9}{'dL/ds':>12}")
        for j in range(n_keys):
            print(f"{j:>4}{r['scores'][j]:>9.2f}{r['weights'][j]:>9.4f}{r['score_grads'][j]:>12.1e}")
    print(f"\n{'':<27}{'unscaled':>9}{'scaled':>9}")
    print(f"{'largest |dL/ds|':<27}{none['max_score_grad']:>9.1e}{sqrt['max_score_grad']:>9.1e}")
    print(f"{'keys with |dL/ds| > 1e-4':<27}{none['live_keys']:>9}{sqrt['live_keys']:>9}")
    print(f"{'|dL/dq|, what reaches W_q':<27}{none['query_grad']:>9.1e}{sqrt['query_grad']:>9.1e}")
    print("largest |d(-log w)/ds|,")
    print(f"{'  least attended key':<27}{none['ce_max_grad']:>9.2f}{sqrt['ce_max_grad']:>9.2f}")
    return result

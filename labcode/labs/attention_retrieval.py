"""Why attention works: one layer learns to fetch a value by its key.

The task strips attention to its job. Each example is a set of pairs, each pair one token
[key; value], and a query token that repeats one pair's key (its value part zero). The answer
is that pair's value. Averaging the values, which is what attention does with untrained,
uniform weights, can do no better than their mean; a layer that scores the query against
each key and puts its weight on the best match can fetch the value exactly. `QueryAttention`
is that layer for a single query, and `retrieval_by_content` trains it and watches the
weights concentrate on the matching pair.
"""
import matplotlib.pyplot as plt
import torch
from torch import nn

from labcode.labs.figures import WIDTH, house_style


def retrieval_batch(n: int, n_pairs: int, key_dim: int, value_dim: int):
    """`n` examples: pair tokens (n, P, d_in), a query (n, d_in), the answer, the pair's index."""
    keys = torch.randn(n, n_pairs, key_dim)
    values = torch.randn(n, n_pairs, value_dim)
    target = torch.randint(n_pairs, (n,))
    tokens = torch.cat([keys, values], dim=-1)  # (n, P, d_in)
    query = torch.cat([keys[torch.arange(n), target], torch.zeros(n, value_dim)], dim=-1)
    return tokens, query, values[torch.arange(n), target], target


class QueryAttention(nn.Module):
    """Scaled dot-product attention of one query token over a set of tokens."""

    def __init__(self, d_in: int, key_dim: int, value_dim: int):
        super().__init__()
        self.W_query = nn.Linear(d_in, key_dim, bias=False)
        self.W_key = nn.Linear(d_in, key_dim, bias=False)
        self.W_value = nn.Linear(d_in, value_dim, bias=False)

    def forward(self, tokens, query):  # tokens: (n, P, d_in), query: (n, d_in)
        q = self.W_query(query).unsqueeze(1)  # (n, 1, dk)
        k, v = self.W_key(tokens), self.W_value(tokens)  # (n, P, dk), (n, P, dv)
        scores = (q @ k.transpose(1, 2)).squeeze(1) / k.shape[-1] ** 0.5  # (n, P)
        weights = torch.softmax(scores, dim=-1)
        return (weights.unsqueeze(1) @ v).squeeze(1), weights, scores  # (n, dv), (n, P)


def retrieval_by_content(n_pairs: int = 8, key_dim: int = 16, value_dim: int = 8,
                         steps: int = 300, batch: int = 64, lr: float = 0.01,
                         log_every: int = 25, threads: int = 1) -> dict:
    """Train `QueryAttention` to fetch the value whose key matches the query.

    Each example holds `n_pairs` tokens [key; value] and a query token [key of one pair;
    zeros] (`retrieval_batch`); the layer's output must be that pair's value. Averaging
    (every weight 1/n_pairs) is the baseline: the best it can output is the mean value.
    Logs, on a fixed test batch, the mean weight on the matching pair, how often it is the
    largest weight, the score gap (matching score minus the largest other) and the error.
    Runs on `threads` CPU threads: tensors this small gain nothing from more, and lose a lot
    when the machine is busy.
    """
    torch.manual_seed(123)
    layer = QueryAttention(key_dim + value_dim, key_dim, value_dim)
    test = retrieval_batch(512, n_pairs, key_dim, value_dim)  # the same test batch throughout
    test_tokens, test_query, test_value, test_target = test
    # averaging: the best output that ignores the query is the mean of the values
    average = test_tokens[..., key_dim:].mean(dim=1)
    average_error = (average - test_value).square().mean().item()
    rows = torch.arange(len(test_target))
    # the ideal A = cI scores pair j by the dot product of its key with the query's key: how
    # often is the matching key the largest, whatever c is?
    test_keys = test_tokens[..., :key_dim]
    ideal_scores = (test_keys @ test_query[:, :key_dim].unsqueeze(-1)).squeeze(-1)  # (n, P)
    ideal_accuracy = (ideal_scores.argmax(dim=-1) == test_target).float().mean().item()

    def evaluate(step):
        with torch.no_grad():
            out, w, s = layer(test_tokens, test_query)
        others = s.clone()
        others[rows, test_target] = float("-inf")
        return {"step": step,
                "target_weight": w[rows, test_target].mean().item(),
                "accuracy": (w.argmax(dim=-1) == test_target).float().mean().item(),
                "score_gap": (s[rows, test_target] - others.max(dim=-1).values).mean().item(),
                "error": (out - test_value).square().mean().item()}, w

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    history, first = [], None
    for step in range(steps + 1):
        if step % log_every == 0:
            record, w = evaluate(step)
            history.append(record)
            first = w if first is None else first
        if step == steps:
            break
        tokens, query, value, _ = retrieval_batch(batch, n_pairs, key_dim, value_dim)
        loss = (layer(tokens, query)[0] - value).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(previous_threads)
    last = w

    print(f"{n_pairs} key/value pairs per example; the query is one of the keys")
    print(f"{'step':>6}{'weight on match':>17}{'match is max':>14}{'score gap':>11}{'error':>8}")
    for r in history:
        print(f"{r['step']:>6}{r['target_weight']:>17.3f}{r['accuracy']:>14.1%}"
              f"{r['score_gap']:>11.2f}{r['error']:>8.3f}")
    print(f"averaging (every weight 1/{n_pairs}): error {average_error:.3f}")
    print(f"the ideal A = cI puts the match on top in {ideal_accuracy:.1%} of the test examples")

    shown = 12  # test examples drawn in the heatmaps
    fig, axes = plt.subplots(3, 1, figsize=(WIDTH, 9.6), gridspec_kw={"height_ratios": [1, 1, 1.1]})
    for ax, w, title in ((axes[0], first, "step 0"), (axes[1], last, f"step {steps}")):
        ax.imshow(w[:shown].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.scatter(test_target[:shown], range(shown), marker="o", facecolors="none",
                   edgecolors="red", s=60, label="matching key")
        ax.set_title(f"attention weights, {title}")
        ax.set_xlabel("position of the pair")
        ax.set_ylabel("test example")
        ax.set_xticks(range(n_pairs))
    axes[0].legend(loc="lower left")
    ax = axes[2]
    logged = [r["step"] for r in history]
    ax.plot(logged, [r["error"] for r in history], "-o", markersize=3, label="attention: error")
    ax.axhline(average_error, color="grey", linestyle="--", label="averaging: error")
    ax.plot(logged, [r["target_weight"] for r in history], "-s", markersize=3,
            label="weight on the match")
    ax.set_xlabel("training step")
    ax.set_title("error and weight on the match while training")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.suptitle("Attention learns to retrieve by content")
    house_style(fig)
    return {"n_pairs": n_pairs, "key_dim": key_dim, "value_dim": value_dim, "steps": steps,
            "uniform_weight": 1 / n_pairs, "average_error": average_error,
            "ideal_accuracy": ideal_accuracy,
            "value_variance": test_value.var().item(), "history": history,
            "start": history[0], "end": history[-1],
            "error_ratio": average_error / history[-1]["error"]}

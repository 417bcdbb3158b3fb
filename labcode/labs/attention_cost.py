"""What attention costs as the context grows: time and memory against T.

Every query scores every key, so one head builds a T x T matrix: the explicit path
materialises it (and keeps it for the backward pass), so time and memory grow like T^2.
`F.scaled_dot_product_attention` computes the same result in a fused kernel that can skip
storing the whole matrix, but it still does the T^2 work. The two functions below are what
is timed: the attention alone, with no projections, so nothing linear in T hides the T^2 part.
"""
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from labcode.labs.figures import WIDTH, house_style


def explicit_attention(q, k, v):
    """Causal attention spelt out: (B, nh, T, hs) queries, keys, values -> (B, nh, T, hs)."""
    T = q.shape[-2]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
    scores = (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf"))  # (B, nh, T, T)
    return torch.softmax(scores / q.shape[-1] ** 0.5, dim=-1) @ v  # (B, nh, T, hs)


def sdpa_attention(q, k, v):
    """The same causal attention through PyTorch's fused kernel."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_cost(lengths=(64, 128, 256, 512, 1024), heads: int = 4, head_dim: int = 64,
                   repeats: int = 7, fit_from: int = 256, threads: int = 1,
                   device: str = "cpu") -> dict:
    """Time causal attention forward + backward, explicit and sdpa, as the context T grows.

    Only the attention itself runs (queries, keys and values are given, no projections), so
    nothing linear in T hides the T^2 part. Times are the fastest of `repeats` runs; the
    exponent is the slope of log time against log T over the lengths >= `fit_from`. Memory
    is exact, not measured: the float32 bytes of one T x T score matrix per head, and of the
    scores and weights the explicit path keeps for the backward pass, over all heads.
    """
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def seconds(fn, q, k, v):
        q.grad = k.grad = v.grad = None
        sync()
        start = time.perf_counter()
        fn(q, k, v).sum().backward()
        sync()
        return time.perf_counter() - start

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(123)
    inputs = {T: [torch.randn(1, heads, T, head_dim, device=device, requires_grad=True)
                  for _ in range(3)] for T in lengths}
    best = {(T, name): float("inf") for T in lengths for name in ("explicit", "sdpa")}
    # rounds over every (T, path) pair, so a burst of load on a shared machine hits them all;
    # round 0 warms up and is not counted, then each keeps its fastest run
    for round_ in range(repeats + 1):
        for T, (q, k, v) in inputs.items():
            for name, fn in (("explicit", explicit_attention), ("sdpa", sdpa_attention)):
                elapsed = seconds(fn, q, k, v)
                if round_ > 0:
                    best[T, name] = min(best[T, name], elapsed)
    torch.set_num_threads(previous_threads)
    rows = []
    for T in lengths:
        score_bytes = T * T * 4  # one float32 T x T matrix for one head
        rows.append({"T": T, "explicit_ms": 1e3 * best[T, "explicit"],
                     "sdpa_ms": 1e3 * best[T, "sdpa"],
                     "score_matrix_bytes": score_bytes,
                     "score_matrix_mib": score_bytes / 2 ** 20,
                     "all_heads_mib": heads * score_bytes / 2 ** 20,
                     "qkv_mib": 3 * heads * T * head_dim * 4 / 2 ** 20})

    def slope(key):
        fit = [(math.log(r["T"]), math.log(r[key])) for r in rows if r["T"] >= fit_from]
        mx = sum(x for x, _ in fit) / len(fit)
        my = sum(y for _, y in fit) / len(fit)
        return (sum((x - mx) * (y - my) for x, y in fit)
                / sum((x - mx) ** 2 for x, _ in fit))

    exponents = {"explicit": slope("explicit_ms"), "sdpa": slope("sdpa_ms")}
    on = f"{threads} CPU thread{'s' if threads > 1 else ''}" if device == "cpu" else device
    print(f"causal attention, {heads} heads of {head_dim}, batch 1, forward + backward, {on}")
    print("float32 memory, exact:")
    print(f"{'T':>6}{'one T x T, one head':>22}{'T x T, all heads':>19}{'q, k, v':>12}")
    for r in rows:
        print(f"{r['T']:>6}{r['score_matrix_bytes']:>16,} bytes{r['all_heads_mib']:>15.2f} MiB"
              f"{r['qkv_mib']:>8.2f} MiB")
    print("times: see the figure (measured on the machine that built this page)")

    Ts = [r["T"] for r in rows]
    fig, (ax_t, ax_m) = plt.subplots(2, 1, figsize=(WIDTH, 6.4), sharex=True)
    ax_t.plot(Ts, [r["explicit_ms"] for r in rows], "-o", markersize=4, label="explicit")
    ax_t.plot(Ts, [r["sdpa_ms"] for r in rows], "-s", markersize=4, label="sdpa")
    ref = rows[-1]["explicit_ms"]
    ax_t.plot(Ts, [ref * (t / Ts[-1]) ** 2 for t in Ts], ":", color="grey", label="∝ T²")
    ax_t.set_ylabel("forward + backward (ms)")
    ax_t.set_title("time (measured)")
    crossover = 3 * head_dim  # h T^2 = 3 h T d: all heads' score matrices outgrow q, k, v
    ax_m.plot(Ts, [r["all_heads_mib"] for r in rows], "-o", markersize=4,
              label=f"T×T scores, all {heads} heads")
    ax_m.plot(Ts, [r["qkv_mib"] for r in rows], "-s", markersize=4, label="q, k, v, all heads")
    ax_m.axvline(crossover, color="grey", linestyle=":", label=f"T = 3d = {crossover}")
    ax_m.set_ylabel("MiB (float32)")
    ax_m.set_title("memory (exact)")
    ax_m.set_xlabel("context length T")
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("Causal attention cost as the context grows")
    house_style(fig)
    return {"heads": heads, "head_dim": head_dim, "fit_from": fit_from, "rows": rows,
            "crossover_T": crossover,
            "explicit_exponent": exponents["explicit"], "sdpa_exponent": exponents["sdpa"],
            "explicit_ms_longest": rows[-1]["explicit_ms"], "sdpa_ms_longest": rows[-1]["sdpa_ms"],
            "speedup_longest": rows[-1]["explicit_ms"] / rows[-1]["sdpa_ms"],
            "score_mib_longest": rows[-1]["score_matrix_mib"],
            "score_bytes_shortest": rows[0]["score_matrix_bytes"],
            "all_heads_mib_longest": rows[-1]["all_heads_mib"],
            "memory_ratio": rows[-1]["score_matrix_bytes"] / rows[0]["score_matrix_bytes"],
            "length_ratio": lengths[-1] / lengths[0]}

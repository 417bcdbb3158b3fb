"""sdpa vs explicit attention, forward + backward, fp32 (SPEC 8: at least 1.2x at context 1024).

    .venv/bin/python bench/bench_attention.py

Times one MultiHeadAttention layer of GPT-2 small's width (emb 768, 12 heads) with the
same weights on both paths, and checks the outputs and gradients agree.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from labcode.attention import MultiHeadAttention  # noqa: E402

EMB, HEADS, BATCH = 768, 12, 2


def time_forward_backward(module, x, repeats):
    """Median seconds of one forward + backward pass."""
    times = []
    for i in range(repeats + 1):  # the first run warms up and is not counted
        inp = x.clone().requires_grad_(True)
        start = time.perf_counter()
        module(inp).sum().backward()
        if i:
            times.append(time.perf_counter() - start)
        module.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


def main():
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, "
          f"emb {EMB}, {HEADS} heads, batch {BATCH}")
    print(f"{'context':>8} {'explicit ms':>12} {'sdpa ms':>9} {'speed-up':>9} "
          f"{'max |out diff|':>15} {'max |grad diff|':>16}")
    for context, repeats in ((256, 10), (1024, 5)):
        explicit = MultiHeadAttention(EMB, EMB, context, 0.0, HEADS, qkv_bias=True,
                                      attention="explicit")
        sdpa = MultiHeadAttention(EMB, EMB, context, 0.0, HEADS, qkv_bias=True, attention="sdpa")
        sdpa.load_state_dict(explicit.state_dict())
        x = torch.randn(BATCH, context, EMB)

        outs, grads = [], []
        for module in (explicit, sdpa):
            inp = x.clone().requires_grad_(True)
            out = module(inp)
            out.square().sum().backward()
            outs.append(out.detach())
            grads.append(inp.grad)
        out_diff = (outs[0] - outs[1]).abs().max().item()
        grad_diff = (grads[0] - grads[1]).abs().max().item()

        t_explicit = time_forward_backward(explicit, x, repeats)
        t_sdpa = time_forward_backward(sdpa, x, repeats)
        print(f"{context:>8} {t_explicit * 1e3:>12.1f} {t_sdpa * 1e3:>9.1f} "
              f"{t_explicit / t_sdpa:>8.2f}x {out_diff:>15.1e} {grad_diff:>16.1e}")
    print("goal (SPEC 8): equal within 1e-5, at least 1.2x at context 1024")


if __name__ == "__main__":
    main()

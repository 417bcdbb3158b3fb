"""Labs of the post "bf16 autocast and torch.compile beside their twins": what bfloat16 does to
numbers, and a compiled model beside the plain one.
"""
import math
import os
import tempfile
import time

import torch
import torch.nn.functional as F

from labcode.device import one_cpu_thread
from labcode.model import GPTConfig, GPTModel


def bf16_beside_fp32(size: int = 256, device: str = "cpu") -> dict:
    """What bfloat16 does to numbers: one value, a matmul, and a small model's loss.

    Errors are measured against float64, so fp32's own rounding is seen too.
    """
    rows = []
    for x in (1 / 3, 3.14159265, 1000.5, 1 + 2 ** -9):
        as_bf16 = torch.tensor(x, dtype=torch.bfloat16).item()
        as_fp32 = torch.tensor(x, dtype=torch.float32).item()
        rows.append({"value": x, "fp32": as_fp32, "bf16": as_bf16,
                     "bf16 relative error": abs(as_bf16 - x) / x})
    a = torch.randn(size, size, dtype=torch.float64, device=device)
    b = torch.randn(size, size, dtype=torch.float64, device=device)
    exact = a @ b                                                 # (size, size) float64
    scale = exact.abs().max().item()

    def rel_err(approx):
        return (approx.double() - exact).abs().max().item() / scale

    matmul_fp32 = rel_err(a.float() @ b.float())
    matmul_bf16 = rel_err(a.bfloat16() @ b.bfloat16())
    # the inputs rounded to fp32 but summed in float64: what the rounding alone costs
    fp32_inputs_only = rel_err(a.float().double() @ b.float().double())

    cfg = GPTConfig(vocab_size=256, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    drop_rate=0.0, qkv_bias=False)
    model = GPTModel(cfg).to(device).eval()
    ids = torch.randint(0, 256, (8, 33), device=device)            # (B, T+1)
    with torch.no_grad():
        logits32 = model(ids[:, :-1])
        loss32 = F.cross_entropy(logits32.flatten(0, 1), ids[:, 1:].flatten()).item()
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
            logits16 = model(ids[:, :-1])
        loss16 = F.cross_entropy(logits16.float().flatten(0, 1), ids[:, 1:].flatten()).item()
    logits_diff = (logits16.float() - logits32).abs().max().item()
    # the rounded values are the returned table; print only what it does not show
    print(f"{size}x{size} matmul, max error / max |entry|:")
    print(f"  fp32 {matmul_fp32:.1e}, bf16 {matmul_bf16:.1e}")
    print(f"  fp32 inputs summed in float64 {fp32_inputs_only:.1e}")
    print(f"tiny GPT loss: fp32 {loss32:.6f},")
    print(f"  bf16 autocast {loss16:.6f}"
          f" (logits {str(logits16.dtype).replace('torch.', '')})")
    return {"rows": rows, "bf16_eps": torch.finfo(torch.bfloat16).eps,
            "fp32_eps": torch.finfo(torch.float32).eps,
            "bf16_digits": math.log10(2 ** 8), "fp32_digits": math.log10(2 ** 24),
            "matmul_fp32_error": matmul_fp32, "matmul_bf16_error": matmul_bf16,
            "matmul_ratio": matmul_bf16 / matmul_fp32, "loss_fp32": loss32,
            "matmul_fp32_input_error": fp32_inputs_only,
            "matmul_fp32_input_share": fp32_inputs_only / matmul_fp32,
            "loss_bf16": loss16, "loss_difference": abs(loss16 - loss32),
            "logits_max_diff": logits_diff, "logits_max": logits32.abs().max().item(),
            "autocast_logits_dtype": str(logits16.dtype).replace("torch.", "")}


def compile_beside_eager(backend: str = "inductor", repeats: int = 20, device: str = "cpu") -> dict:
    """`torch.compile` of a small GPT beside the plain model: outputs, and time per call.

    The default backend, "inductor", generates fused code (C++ on a CPU, which needs a C++
    compiler, Triton on a GPU); `backend="eager"` only captures the graph (TorchDynamo) and runs
    the same kernels as the plain model. Inductor compiles into a cache folder of its own, made
    for this run and removed after it: the first call pays for a cold compile every time, as a
    reader's first run would, and no code compiled for another CPU setting is reused. It compiles
    on this thread (`compile_threads=1`), so no pool of compile workers outlives the lab.
    """
    cfg = GPTConfig(vocab_size=256, context_length=32, emb_dim=64, n_heads=4, n_layers=2,
                    drop_rate=0.0, qkv_bias=False)
    model = GPTModel(cfg).to(device).eval()
    ids = torch.randint(0, 256, (8, 32), device=device)             # (B, T)
    torch._dynamo.reset()  # no graph cached from an earlier call
    compiled = torch.compile(model, backend=backend)

    def best_time(fn):
        fastest = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn(ids)
            fastest = min(fastest, time.perf_counter() - start)
        return fastest

    with (torch.no_grad(), one_cpu_thread(device), tempfile.TemporaryDirectory() as cache,
          torch._inductor.config.patch(compile_threads=1)):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        start = time.perf_counter()
        out_compiled = compiled(ids)                                 # (B, T, V); compiles here
        first_call = time.perf_counter() - start
        out_eager = model(ids)
        eager_s, compiled_s = best_time(model), best_time(compiled)
    diff = (out_compiled - out_eager).abs().max().item()
    print(f"backend {backend!r}: outputs {tuple(out_eager.shape)}, max |difference| {diff:.1e}")
    return {"backend": backend, "max_diff": diff, "identical": diff == 0.0,
            "first_call_s": first_call, "eager_ms": eager_s * 1e3,
            "compiled_ms": compiled_s * 1e3, "speedup": eager_s / compiled_s}

"""Device helpers: what can be checked on a CPU-only machine."""
import contextlib

import pytest
import torch

from labcode.device import autocast, best_device, device_name, maybe_compile


def test_explicit_device_is_honoured():
    assert best_device("cpu") == torch.device("cpu")
    assert best_device(torch.device("cpu")) == torch.device("cpu")


def test_best_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert best_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert best_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert best_device() == torch.device("cuda")


def test_autocast_is_a_no_op_off_cuda():
    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    a = torch.randn(4, 4)
    with autocast("cpu"):
        assert (a @ a).dtype == torch.float32


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_autocast_is_bf16_on_cuda():
    ctx = autocast("cuda")
    assert isinstance(ctx, torch.autocast)
    assert ctx.fast_dtype == torch.bfloat16


def test_compile_is_opt_in():
    model = torch.nn.Linear(2, 2)
    assert maybe_compile(model) is model
    assert maybe_compile(model, enabled=False) is model


def test_device_names_are_human():
    assert device_name("cpu") == "CPU"
    assert device_name(torch.device("mps")) == "Apple MPS"


def test_cuda_device_name_comes_from_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3")
    assert device_name("cuda") == "NVIDIA H100 80GB HBM3"


def test_bf16_keeps_about_three_digits_and_its_matmul_is_far_less_exact_than_fp32():
    from labcode.labs.device import bf16_beside_fp32

    result = bf16_beside_fp32(size=64)
    assert result["bf16_eps"] == 2 ** -7 and result["fp32_eps"] == 2 ** -23
    assert all(row["bf16 relative error"] <= result["bf16_eps"] / 2 for row in result["rows"])
    assert result["matmul_bf16_error"] > 100 * result["matmul_fp32_error"]
    assert result["autocast_logits_dtype"] == "bfloat16"
    assert result["loss_difference"] < 1e-2


def test_compile_with_the_eager_backend_gives_the_same_logits():
    from labcode.labs.device import compile_beside_eager

    result = compile_beside_eager(backend="eager", repeats=2)
    assert result["identical"] and result["max_diff"] == 0.0

"""Device: where the tensors live, and the switches that make a GPU fast.

Every lab runs on the best device the machine has (CUDA, then Apple's MPS, then
the CPU) unless told otherwise. The fast paths are opt-in and have no effect
where they do not apply, so the same lab code runs everywhere:

- `autocast(device)`: bf16 mixed precision on CUDA, plain fp32 elsewhere.
- `maybe_compile(model, enabled)`: `torch.compile` only when asked for.
- `one_cpu_thread(device)`: a tiny model's CPU work on one thread, the same numbers anywhere.
"""
import contextlib

import torch


def best_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: `requested` if given, else CUDA, then MPS, then CPU."""
    if requested is not None:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: str | torch.device):
    """A context that runs matmuls in bfloat16 on CUDA; on any other device it does nothing."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_compile(model: torch.nn.Module, enabled: bool = False) -> torch.nn.Module:
    """`torch.compile(model)` when `enabled`, else the model unchanged."""
    return torch.compile(model) if enabled else model


def device_name(device: str | torch.device) -> str:
    """A human label for a device: "CPU", "Apple MPS", or the GPU's name ("NVIDIA H100 80GB HBM3")."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    if device.type == "cpu":
        return "CPU"
    return device.type.upper()


@contextlib.contextmanager
def one_cpu_thread(device):
    """Run a tiny model's CPU work on one thread, then restore the thread count.

    Matrices 128 wide gain little from a second thread; one thread gives the same numbers on
    any machine, and avoids threads spinning against each other on a busy 2-core build.
    """
    threads = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

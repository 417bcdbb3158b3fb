"""Data-parallel training with torch.distributed: the few pieces the training loop needs.

`torchrun --nproc_per_node N` starts N copies of the same script and tells each one who it is
through environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
Each copy (a "rank") holds a full model. Every step:

1. all ranks draw the same global batch (same seed, same order) and each keeps its own slice;
2. each rank runs forward and backward on its slice;
3. DistributedDataParallel averages the gradients across ranks during backward (all-reduce);
4. each rank applies the same optimizer step to the same weights, so the copies stay equal.

Averaging the gradients of equal slices is the gradient of the mean loss over the whole batch,
so N ranks with a batch of B do exactly what one process with a batch of B would do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Who this process is: its rank among `world_size` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and prints; the others stay quiet."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment says we are one of several processes (torchrun sets these)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    gloo works on CPU tensors, NCCL on CUDA tensors. With no torchrun environment this is a
    no-op returning rank 0 of 1, so the same script runs alone or data-parallel.
    """
    if dist.is_available() and dist.is_initialized():
        return dist_info()
    if not launched_by_torchrun():
        return DistInfo()
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    info = dist_info()
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


def setup_distributed(device: str | torch.device = "cpu") -> tuple[torch.device, DistInfo]:
    """`init_distributed`, then the device this rank computes on (its own GPU under torchrun)."""
    device = torch.device(device)
    info = init_distributed(device)
    if device.type == "cuda" and info.world_size > 1:
        device = torch.device("cuda", info.local_rank)  # one GPU per rank
    return device, info


def data_parallel(model: torch.nn.Module, device: torch.device, info: DistInfo) -> torch.nn.Module:
    """Wrap `model` in DistributedDataParallel when there are several ranks, else return it.

    DDP copies rank 0's weights to every rank, then averages gradients during backward.
    """
    if info.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def dist_info() -> DistInfo:
    """This process's rank and the world size (0 of 1 when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
    )


def shard_batch(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous slice of a global batch: rows [rank*b, (rank+1)*b) of B = world*b."""
    if info.world_size == 1:
        return tensor
    batch_size = tensor.shape[0]
    if batch_size % info.world_size:
        raise ValueError(
            f"batch size {batch_size} must be divisible by the number of processes "
            f"({info.world_size}) so every rank gets an equal slice"
        )
    per_rank = batch_size // info.world_size
    return tensor[info.rank * per_rank : (info.rank + 1) * per_rank]


def mean_across_ranks(value: float, info: DistInfo) -> float:
    """Average a Python number over all ranks (each rank's loss is for its slice only)."""
    if info.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / info.world_size


def barrier(info: DistInfo) -> None:
    """Wait for every rank (e.g. until rank 0 has finished writing a checkpoint)."""
    if info.world_size > 1:
        dist.barrier()


def cleanup_distributed() -> None:
    """Leave the process group, if we joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# === Lab entry points: the functions the posts run ==================================

def train_tiny_and_save(out_dir: str, steps: int, batch_size: int, lr: float = 3e-3) -> None:
    """What every process runs: train a tiny GPT on fixed random batches, save weights and time.

    The same code runs alone (one process, the whole batch) or as one rank of several under
    torchrun, where `train` shards each batch and DDP averages the gradients. Seeds are fixed
    here, so every process starts from the same weights and draws the same batches.
    """
    import time
    from pathlib import Path

    from torch.utils.data import DataLoader, TensorDataset

    from labcode.model import GPTConfig, GPTModel
    from labcode.training import train

    torch.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=64, context_length=16, emb_dim=32, n_heads=4,
                               n_layers=2, drop_rate=0.0, qkv_bias=False))
    ids = torch.randint(0, 64, (4 * batch_size + 17,), generator=torch.Generator().manual_seed(1))
    x = torch.stack([ids[i:i + 16] for i in range(4 * batch_size)])      # (N, T) inputs
    y = torch.stack([ids[i + 1:i + 17] for i in range(4 * batch_size)])  # (N, T) next tokens
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(5))

    info = init_distributed("cpu")  # rendezvous first: the clock times training, not start-up
    barrier(info)
    start = time.perf_counter()
    history = train(model, loader, steps=steps, lr=lr, warmup_steps=2, grad_clip=1.0,
                    device="cpu")  # under torchrun: shards each batch, wraps in DDP
    seconds = time.perf_counter() - start
    torch.save({"model": model.state_dict(), "loss": history.train_loss, "seconds": seconds,
                "rank": info.rank, "world_size": info.world_size},
               Path(out_dir) / f"world{info.world_size}_rank{info.rank}.pt")
    cleanup_distributed()


def _loopback_interface() -> str | None:
    """The name of this machine's loopback interface ("lo" on Linux, "lo0" on macOS), if any."""
    import socket

    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((n for n in ("lo", "lo0") if n in names), None)


def _torchrun(nproc: int, out_dir: str, steps: int, batch_size: int, attempts: int = 2) -> float:
    """Launch `train_tiny_and_save` on `nproc` CPU processes with torchrun; wait for all of them.

    Every rank is on this machine, so gloo talks over the loopback interface, whatever the host
    name resolves to. Each rank's output goes to a log file; if the launch fails, the error
    carries the tail of every rank's log (torchrun's own report only names the signal). A
    failed launch is tried once more on a fresh port, and says so on stderr.
    """
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    loopback = _loopback_interface()
    if loopback:
        env["GLOO_SOCKET_IFNAME"] = loopback
    failures = []
    for attempt in range(1, attempts + 1):
        with socket.socket() as s:  # a free port on the loopback interface for the rendezvous
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        logs = Path(out_dir) / f"torchrun-logs-{attempt}"
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                   "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                   "--master_port", str(port), "--log-dir", str(logs), "--redirects", "3",
                   "-m", "labcode.distributed", out_dir, str(steps), str(batch_size)]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=repo, capture_output=True, text=True,
                              timeout=120)
        seconds = time.perf_counter() - start
        if done.returncode == 0:
            return seconds
        ranks = [f"--- rank {log.parent.name} "
                 f"{log.name} ---\n{log.read_text(errors='replace')[-1500:]}"
                 for log in sorted(logs.glob("**/attempt_*/*/std*.log")) if log.stat().st_size]
        headline = f"torchrun --nproc_per_node {nproc} failed (exit {done.returncode})"
        failures.append(headline + ":\n" + ("\n".join(ranks) or done.stderr[-2000:]))
        if attempt < attempts:
            print(f"warning: {headline}; trying once more on a new port", file=sys.stderr)
    raise RuntimeError("\n".join(failures))


def ddp_matches_one_process(steps: int = 10, batch_size: int = 16) -> dict:
    """Train the same tiny GPT with 2 gloo processes under torchrun (each half of every batch) and
    in this process alone (the whole batch); compare the final weights and the time each took.

    The two ranks are joined (torchrun waits for both) before the comparison starts.
    """
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as out:
        launch_2 = _torchrun(2, out, steps, batch_size)
        ranks = [torch.load(Path(out) / f"world2_rank{r}.pt") for r in range(2)]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as each rank has (OMP_NUM_THREADS=1): one core per process
        try:
            train_tiny_and_save(out, steps, batch_size)  # here, alone: world size 1
        finally:
            torch.set_num_threads(threads)
        single = torch.load(Path(out) / "world1_rank0.pt")

    def max_diff(a: dict, b: dict) -> float:
        return max((a[k] - b[k]).abs().max().item() for k in a)

    rank_vs_rank = max_diff(ranks[0]["model"], ranks[1]["model"])
    ddp_vs_single = max_diff(ranks[0]["model"], single["model"])
    loss_diff = max(abs(a - b) for a, b in zip(ranks[0]["loss"], single["loss"]))
    n_params = sum(v.numel() for v in single["model"].values())

    print(f"{steps} steps, global batch {batch_size}: 2 ranks x {batch_size // 2} rows "
          f"against 1 process x {batch_size}")
    print(f"max |weight difference|, rank 0 vs rank 1:       {rank_vs_rank:.1e}")
    print(f"max |weight difference|, 2 ranks vs 1 process:   {ddp_vs_single:.1e}")
    print(f"max |logged loss difference|, 2 ranks vs 1:      {loss_diff:.1e}")
    return {
        "steps": steps,
        "batch_size": batch_size,
        "per_rank_batch": batch_size // 2,
        "parameters": n_params,
        "rank_vs_rank_max_diff": rank_vs_rank,
        "ddp_vs_single_max_diff": ddp_vs_single,
        "loss_max_diff": loss_diff,
        "final_loss": single["loss"][-1],
        "seconds_train_2proc": max(r["seconds"] for r in ranks),
        "seconds_train_1proc": single["seconds"],
        "seconds_launch_2proc": launch_2,
    }


if __name__ == "__main__":  # run by torchrun: python -m labcode.distributed OUT_DIR STEPS BATCH
    import sys

    train_tiny_and_save(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

"""Labs of the post "Data-parallel training with torchrun": the same tiny GPT trained by 2
processes under torchrun and by one process alone, and the weights compared.

`train_tiny_and_save` is what every process runs; torchrun starts it as
`python -m labcode.labs.distributed OUT_DIR STEPS BATCH`.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from labcode.distributed import barrier, cleanup_distributed, init_distributed
from labcode.model import GPTConfig, GPTModel
from labcode.training import train


def train_tiny_and_save(out_dir: str, steps: int, batch_size: int, lr: float = 3e-3) -> None:
    """What every process runs: train a tiny GPT on fixed random batches, save weights and time.

    The same code runs alone (one process, the whole batch) or as one rank of several under
    torchrun, where `train` shards each batch and DDP averages the gradients. Seeds are fixed
    here, so every process starts from the same weights and draws the same batches.
    """
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
    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((n for n in ("lo", "lo0") if n in names), None)


def _torchrun(nproc: int, out_dir: str, steps: int, batch_size: int, attempts: int = 2) -> float:
    """Launch `train_tiny_and_save` on `nproc` CPU processes with torchrun; wait for all of them.

    Every rank is on this machine, so gloo talks over the loopback interface, whatever the host
    name resolves to. Each rank's output goes to a log file; if the launch fails, the error
    carries the tail of every rank's log (torchrun's own report only names the signal). A
    failed launch is tried once more on a fresh port, and says so on stderr.
    """
    repo = str(Path(__file__).resolve().parents[2])  # the project, above labcode/
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
                   "-m", "labcode.labs.distributed", out_dir, str(steps), str(batch_size)]
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


if __name__ == "__main__":  # run by torchrun: python -m labcode.labs.distributed OUT_DIR STEPS BATCH
    train_tiny_and_save(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

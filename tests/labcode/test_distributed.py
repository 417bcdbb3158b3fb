"""Data-parallel training: two CPU processes (gloo) end exactly where one process does."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

# The same script runs in every process, as under `torchrun --nproc_per_node 2`:
# tiny GPT without dropout, the same seeded init and the same shuffled global batches of 8.
WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from labcode.model import GPTConfig, GPTModel
    from labcode.training import train

    def run(out_path):
        torch.manual_seed(0)
        model = GPTModel(GPTConfig(vocab_size=40, context_length=8, emb_dim=16, n_heads=2,
                                   n_layers=1, drop_rate=0.0, qkv_bias=False))
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, 40, (72,), generator=g)
        x = torch.stack([ids[i:i + 8] for i in range(64)])
        y = torch.stack([ids[i + 1:i + 9] for i in range(64)])
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(5))
        history = train(model, loader, steps=5, lr=3e-3, warmup_steps=2, grad_clip=1.0,
                        device="cpu")
        torch.save({"model": model.state_dict(), "loss": history.train_loss}, out_path)

    if __name__ == "__main__":
        run(sys.argv[1])
        from labcode.distributed import cleanup_distributed
        cleanup_distributed()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    from labcode.labs.distributed import _loopback_interface

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = free_port()
    interface = _loopback_interface()  # both ranks are here: gloo talks over loopback
    loopback = {"GLOO_SOCKET_IFNAME": interface} if interface else {}
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   PYTHONPATH=str(REPO), **loopback)
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / f"rank{rank}.pt")],
                                      env=env, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out

    # the reference: this process alone, batches of 8 unsplit
    sys.path.insert(0, str(tmp_path))
    try:
        import worker
    finally:
        sys.path.remove(str(tmp_path))
    worker.run(tmp_path / "single.pt")

    single = torch.load(tmp_path / "single.pt")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, value in single["model"].items():
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name
        torch.testing.assert_close(ranks[0]["model"][name], value, atol=1e-5, rtol=0)
    # the loss logged under DDP is the mean over ranks: the combined batch's mean loss
    assert ranks[0]["loss"] == pytest.approx(single["loss"], abs=1e-5)


def test_command_line_trains_and_explains_itself(tmp_path, capsys):
    from labcode.tiny_gpt import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "torchrun --nproc_per_node 2 -m labcode.tiny_gpt" in capsys.readouterr().out

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat and the dog sat on the log. " * 60)
    main(["--text", str(corpus), "--steps", "3", "--vocab-size", "270", "--batch-size", "4",
          "--checkpoint", str(tmp_path / "cli.pt"), "--save", str(tmp_path / "model.pt")])
    out = capsys.readouterr().out
    assert "step 3/3" in out and "final val loss" in out
    assert (tmp_path / "cli.pt").exists() and (tmp_path / "model.pt").exists()


def test_lab_torchrun_two_ranks_end_with_the_weights_of_one_process():
    from labcode.labs.distributed import ddp_matches_one_process

    r = ddp_matches_one_process(steps=3, batch_size=8)
    assert r["per_rank_batch"] == 4
    assert r["rank_vs_rank_max_diff"] == 0.0          # DDP keeps the copies bit-identical
    assert r["ddp_vs_single_max_diff"] < 1e-5         # and equal to one process, up to rounding
    assert r["loss_max_diff"] < 1e-5
    assert r["seconds_train_2proc"] > 0 and r["seconds_train_1proc"] > 0


def test_a_failed_torchrun_launch_reports_what_the_ranks_said(tmp_path):
    from labcode.labs.distributed import _torchrun

    with pytest.raises(RuntimeError) as failure:
        _torchrun(2, str(tmp_path), steps=1, batch_size=3, attempts=1)  # 3 rows cannot split in 2
    message = str(failure.value)
    assert "torchrun --nproc_per_node 2 failed" in message
    assert "--- rank 0 stderr.log ---" in message and "--- rank 1 stderr.log ---" in message
    assert "must be divisible by the number of processes (2)" in message

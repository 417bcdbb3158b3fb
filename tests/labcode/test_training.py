"""The training loop: loss, schedule, exact resume, progress, and the blog's tiny GPT."""
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labcode.model import GPTConfig, GPTModel
from labcode.training import (
    BatchStream,
    TrainHistory,
    TrainProgress,
    calc_loss_batch,
    calc_loss_loader,
    lr_at,
    perplexity,
    train,
)
from labcode.checkpoint import save_checkpoint
from labcode.labs.tiny_gpt import lr_schedule_plot, sample_from_checkpoint, train_on_blog

VOCAB, CTX = 40, 8


def tiny_model(seed=0, drop_rate=0.1):
    torch.manual_seed(seed)
    return GPTModel(GPTConfig(vocab_size=VOCAB, context_length=CTX, emb_dim=16, n_heads=2,
                              n_layers=1, drop_rate=drop_rate, qkv_bias=False))


def token_windows(n=40, seed=1):
    """n (input, target) windows over a random token sequence."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n + CTX,), generator=g)
    x = torch.stack([ids[i:i + CTX] for i in range(n)])          # (n, CTX)
    y = torch.stack([ids[i + 1:i + CTX + 1] for i in range(n)])  # (n, CTX)
    return TensorDataset(x, y)


def loaders(own_generator=True, batch_size=4):
    """Shuffled training loader (seeded generator, or the global RNG) and an ordered val loader."""
    gen = torch.Generator().manual_seed(5) if own_generator else None
    train_loader = DataLoader(token_windows(), batch_size=batch_size, shuffle=True,
                              drop_last=True, generator=gen)
    val_loader = DataLoader(token_windows(12, seed=2), batch_size=4)
    return train_loader, val_loader


def test_lr_schedule_warms_up_linearly_then_follows_a_cosine_to_min_lr():
    peak, low = 1e-3, 1e-4
    lrs = [lr_at(s, 110, peak, 10, low) for s in range(120)]
    assert lrs[0] == pytest.approx(peak / 10)
    assert lrs[9] == pytest.approx(peak)                      # warm-up ends at the peak
    assert lrs[60] == pytest.approx((peak + low) / 2)         # half-way down the cosine
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))     # never rises after warm-up
    assert lrs[110:] == [pytest.approx(low)] * 10             # stays at min_lr past the end


def test_loader_loss_is_the_mean_of_batch_losses_and_perplexity_its_exp():
    model = tiny_model().eval()
    _, val = loaders()
    losses = [calc_loss_batch(x, y, model, "cpu").item() for x, y in val]
    assert calc_loss_loader(val, model, "cpu") == pytest.approx(sum(losses) / len(losses))
    assert calc_loss_loader(val, model, "cpu", num_batches=2) == pytest.approx(sum(losses[:2]) / 2)
    empty = TensorDataset(torch.zeros(0, CTX, dtype=torch.long), torch.zeros(0, CTX, dtype=torch.long))
    assert math.isnan(calc_loss_loader(DataLoader(empty, batch_size=2), model, "cpu"))
    assert perplexity(math.log(VOCAB)) == pytest.approx(VOCAB)


def test_training_memorises_a_small_dataset():
    model = tiny_model(drop_rate=0.0)
    train_loader, _ = loaders()
    history = train(model, train_loader, steps=60, lr=1e-2, warmup_steps=5)
    assert history.train_loss[0] > math.log(VOCAB) - 0.5
    assert sum(history.train_loss[-5:]) / 5 < history.train_loss[0] - 1.0
    assert history.step == list(range(1, 61))
    assert history.tokens_seen[-1] == 60 * 4 * CTX


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def scramble_random_state():
    """What a fresh process would have: nothing left of the first run's random state."""
    import random

    torch.manual_seed(987654)
    random.seed(987654)


@pytest.mark.parametrize("own_generator", [True, False], ids=["seeded-loader", "global-rng"])
def test_resuming_from_a_checkpoint_gives_exactly_the_straight_run(tmp_path, own_generator):
    # 14 steps over 10 batches per epoch: the checkpoint at step 7 is mid-epoch, and the
    # resumed half crosses into a second epoch; dropout makes the RNG state matter too.
    settings = dict(steps=14, lr=3e-3, warmup_steps=3, eval_every=4, eval_batches=2)
    torch.manual_seed(42)
    straight = tiny_model()
    train_loader, val_loader = loaders(own_generator)
    expected = train(straight, train_loader, val_loader, **settings)

    path = tmp_path / "ckpt" / "run.pt"
    torch.manual_seed(42)
    first = tiny_model()
    train_loader, val_loader = loaders(own_generator)
    train(first, train_loader, val_loader, checkpoint_path=path, stop_after=7, **settings)
    assert path.exists()

    scramble_random_state()
    resumed = tiny_model(seed=3)  # different initial weights: all must come from the file
    train_loader, val_loader = loaders(own_generator)
    history = train(resumed, train_loader, val_loader, checkpoint_path=path, resume=True,
                    **settings)

    assert history.train_loss == expected.train_loss
    assert history.eval_val_loss == expected.eval_val_loss
    assert history.lr == expected.lr
    for name, value in snapshot(straight).items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_progress_callback_gets_step_loss_speed_eta_and_val_loss():
    seen: list[TrainProgress] = []
    train_loader, val_loader = loaders()
    train(tiny_model(), train_loader, val_loader, steps=6, eval_every=3, eval_batches=1,
          callback=seen.append)
    assert [p.step for p in seen] == list(range(1, 7))
    assert all(p.total_steps == 6 and p.tokens_per_s > 0 and p.loss > 0 for p in seen)
    assert seen[-1].eta_s == 0
    assert [p.step for p in seen if p.val_loss is not None] == [3, 6]


def test_evaluation_measures_training_and_validation_batches_the_same_way():
    train_loader, val_loader = loaders()
    fixed_train = DataLoader(token_windows(), batch_size=4)  # ordered: the same batches each time
    model = tiny_model()  # dropout 0.1: eval mode must switch it off for both measurements
    history = train(model, train_loader, val_loader, train_eval_loader=fixed_train, steps=4,
                    eval_every=2, eval_batches=3)
    assert history.eval_step == [2, 4]
    model.eval()
    assert history.eval_train_loss[-1] == pytest.approx(calc_loss_loader(fixed_train, model,
                                                                         "cpu", 3))
    assert history.eval_val_loss[-1] == pytest.approx(calc_loss_loader(val_loader, model,
                                                                       "cpu", 3))
    assert model.training is False


def test_checkpoint_every_writes_a_checkpoint_and_training_needs_steps_or_epochs(tmp_path):
    train_loader, _ = loaders()
    path = tmp_path / "every.pt"
    history = train(tiny_model(), train_loader, epochs=1, checkpoint_path=path,
                    checkpoint_every=5)
    assert len(history.step) == len(train_loader) and path.exists()
    assert torch.load(path, weights_only=False)["step"] == len(train_loader)
    with pytest.raises(ValueError):
        train(tiny_model(), train_loader)


def test_a_checkpoint_save_that_fails_midway_keeps_the_previous_checkpoint_and_no_temp_file(
        tmp_path, monkeypatch):
    train_loader, _ = loaders()
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, model, optimizer, 1, BatchStream(train_loader), TrainHistory())
    previous = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, model, optimizer, 2, BatchStream(train_loader), TrainHistory())
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert torch.load(path, weights_only=False)["step"] == 1


def test_lr_schedule_plot_draws_the_schedule():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = lr_schedule_plot(steps=200, warmup_steps=20)
    ys = plt.gcf().axes[0].lines[0].get_ydata()
    assert len(ys) == 200 and max(ys) == pytest.approx(6e-4) and ys[-1] < 7e-5
    assert result["peak_lr"] == pytest.approx(6e-4) and result["last_lr"] == ys[-1]
    plt.close("all")


BLOG_TEXT = (
    "Attention lets every token look back at the tokens before it. "
    "The model learns which earlier words matter for the next one. "
    "We train a tiny model on the blog's own text and watch the loss fall. "
) * 30


def test_train_on_blog_quick_mode_saves_a_checkpoint_that_samples(tmp_path, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(BLOG_TEXT, encoding="utf-8")
    checkpoint = tmp_path / "labs" / "tiny.pt"
    seen = []
    result = train_on_blog(str(corpus), str(checkpoint), vocab_size=300, progress=seen.append,
                           quick=True)
    assert checkpoint.exists() and seen and seen[-1].step == seen[-1].total_steps == 20
    assert result["steps"] == 20
    batch_line, train_line, val_line = plt.gcf().axes[0].lines[:3]
    assert len(batch_line.get_xdata()) == seen[-1].total_steps
    assert val_line.get_ydata()[-1] == result["val_loss"] < math.log(300)
    assert train_line.get_ydata()[-1] == result["train_loss"]
    assert result["gap"] == result["val_loss"] - result["train_loss"]
    assert [row["step"] for row in result["history"]] == [5, 10, 15, 20]
    assert "val loss" in capsys.readouterr().out

    first = sample_from_checkpoint(str(checkpoint), prompt="The model", max_new_tokens=10,
                                   num_samples=2, corpus=str(corpus))
    again = sample_from_checkpoint(str(checkpoint), prompt="The model", max_new_tokens=10,
                                   num_samples=2, corpus=str(corpus))
    assert first == again and len(first["samples"]) == 2
    assert 0 <= first["invented_words"] <= first["sampled_words"]
    assert all(s.startswith("The model") for s in [first["greedy"], *first["samples"]])
    plt.close("all")


# -- the training loop's extras -------------------------------------------------------

def test_weight_decay_groups_decay_every_matrix_and_no_vector():
    from labcode.labs.training import weight_decay_groups

    result = weight_decay_groups(emb_dim=32, n_layers=2)
    for row in result["rows"]:
        is_matrix = "x" in row["shape"]
        assert (row["weight_decay"] > 0) == is_matrix, row
    model = GPTModel(GPTConfig(vocab_size=256, context_length=32, emb_dim=32, n_heads=4,
                               n_layers=2, qkv_bias=True))
    assert result["decayed_tensors"] == sum(p.dim() >= 2 for p in model.parameters())
    assert result["plain_tensors"] == sum(p.dim() < 2 for p in model.parameters())
    assert result["decayed_numbers"] + result["plain_numbers"] == result["total_numbers"]


def _byte_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(BLOG_TEXT * 4, encoding="utf-8")
    return str(corpus)


def test_exact_resume_gives_the_same_weights_and_forgetting_adamw_does_not(tmp_path, capsys):
    from labcode.labs.training import exact_resume

    result = exact_resume(_byte_corpus(tmp_path), chars=4000, steps=8,
                          checkpoint=str(tmp_path / "resume.pt"))
    assert result["resumed_max_weight_diff"] == 0.0 and result["identical_losses"]
    assert result["resumed_final_loss"] == result["whole_final_loss"]
    assert result["forgetful_max_weight_diff"] > 0
    assert "saved, resumed" in capsys.readouterr().out


def test_gradient_norms_counts_the_steps_above_the_clip_line(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from labcode.labs.training import gradient_norms

    result = gradient_norms(_byte_corpus(tmp_path), chars=4000, steps=12, clip=1.0)
    norms = plt.gcf().axes[0].lines[0].get_ydata()
    assert len(norms) == 12 and result["max_norm"] == max(norms)
    assert result["clipped_steps"] == sum(n > 1.0 for n in norms)
    plt.close("all")


def test_warmup_or_not_starts_every_run_from_the_same_loss(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from labcode.labs.training import warmup_or_not

    result = warmup_or_not(_byte_corpus(tmp_path), chars=4000, steps=6, peak_lrs=(1e-2,),
                           warmup_steps=2)
    first = [line.get_ydata()[0] for line in plt.gcf().axes[0].lines]
    assert len(first) == 2 and first[0] == first[1] == result["first_loss"]
    plt.close("all")

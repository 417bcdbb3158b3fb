"""Sliding-window dataset and DataLoader: window count, shift, stride, seeded order."""

import pytest
import torch

from labcode.data import GPTDataset, create_dataloader, read_text
from labcode.labs.tokens import sliding_window_demo
from labcode.tokenizer import SimpleTokenizer


class CharTokenizer:
    """One id per character: makes window arithmetic easy to read in tests."""

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


def test_windows_count_and_target_is_input_shifted_by_one():
    text = "abcdefghij"  # 10 tokens
    ds = GPTDataset(text, CharTokenizer(), max_length=4, stride=1)
    assert len(ds) == 10 - 4  # the last window needs one more token for its target
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == y.shape == (4,)
        assert x.dtype == torch.long
        assert torch.equal(x[1:], y[:-1])
    x, y = ds[len(ds) - 1]
    assert CharTokenizer().decode(x.tolist()) == "fghi"
    assert CharTokenizer().decode(y.tolist()) == "ghij"


@pytest.mark.parametrize("stride, starts", [(1, "abcdefghij"), (2, "acegi"), (4, "aei"), (5, "af")])
def test_stride_sets_where_windows_start(stride, starts):
    ds = GPTDataset("abcdefghijklm", CharTokenizer(), max_length=3, stride=stride)
    assert "".join(chr(ds[i][0][0]) for i in range(len(ds))) == starts


def test_text_too_short_gives_no_windows():
    assert len(GPTDataset("abcd", CharTokenizer(), max_length=4, stride=1)) == 0


def test_works_with_the_simple_tokenizer():
    text = "the cat sat on the mat . <|endoftext|> the dog sat"
    tok = SimpleTokenizer.from_text(text)
    ds = GPTDataset(text, tok, max_length=3, stride=3)
    assert len(ds) == 3
    assert tok.decode(ds[0][1].tolist()) == "cat sat on"


def test_dataloader_batches_and_seeded_order_is_reproducible():
    text = "".join(chr(65 + i % 26) for i in range(200))
    kwargs = dict(batch_size=4, max_length=8, stride=8, tokenizer=CharTokenizer())
    first = [x for x, _ in create_dataloader(text, seed=7, **kwargs)]
    again = [x for x, _ in create_dataloader(text, seed=7, **kwargs)]
    other = [x for x, _ in create_dataloader(text, seed=8, **kwargs)]
    assert len(first) == (200 - 8) // 8 // 4  # 24 windows, drop_last
    assert all(x.shape == (4, 8) for x in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_unshuffled_loader_keeps_text_order():
    loader = create_dataloader("abcdefghijk", batch_size=2, max_length=2, stride=2,
                               shuffle=False, drop_last=False, tokenizer=CharTokenizer())
    x, y = next(iter(loader))
    assert x.tolist() == [[97, 98], [99, 100]]
    assert y.tolist() == [[98, 99], [100, 101]]


def test_default_tokenizer_is_gpt2(gpt2_env):
    loader = create_dataloader("Hello, do you like tea? <|endoftext|> In the sunlit terraces",
                               batch_size=1, max_length=4, stride=4, shuffle=False)
    x, y = next(iter(loader))
    assert x.tolist() == [[15496, 11, 466, 345]]
    assert y.tolist() == [[11, 466, 345, 588]]


def test_read_text_reads_utf8_and_names_a_missing_file(tmp_path):
    (tmp_path / "a.txt").write_text("naïve 🙂\n", encoding="utf-8")
    assert read_text(tmp_path / "a.txt") == "naïve 🙂\n"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")


def test_sliding_window_demo_shows_inputs_and_targets(gpt2_env, capsys):
    result = sliding_window_demo("In the heart of the city stood the old library", max_length=4,
                                 stride=1, batch_size=2)
    assert result["windows"] == result["tokens"] - 4  # (n - L - 1) // 1 + 1
    assert result["left_over"] == 0  # stride 1: the last window ends on the last token
    assert result["formula_windows"] == result["windows"]
    rows = result["batch"]
    assert len(rows) == 2
    assert rows[0]["input_ids"][1:] == rows[0]["target_ids"][:-1]
    assert rows[0]["input"] == "In the heart of"
    assert rows[1]["input_ids"][0] == rows[0]["input_ids"][1]
    assert "target" in capsys.readouterr().out


def _written_corpus(tmp_path):
    """A corpus and its record as `build.py corpus --yes` writes them."""
    from datetime import date

    from labnotes.corpus import CorpusSnapshot, write_corpus

    snapshot = CorpusSnapshot("Tokens\n\nSome prose.\n\nAttention\n\nMore prose.\n",
                              (("2026-03-01", "tokens", "Tokens"),
                               ("2026-03-08", "attention", 'Attention, "quoted"')))
    corpus, _ = write_corpus(tmp_path, snapshot, date(2026, 3, 9))
    return corpus, snapshot


def test_corpus_snapshot_is_the_record_the_corpus_command_wrote(tmp_path):
    from labcode.data import corpus_snapshot, read_text

    corpus, written = _written_corpus(tmp_path)
    snapshot = corpus_snapshot(corpus, read_text(corpus))
    assert snapshot["digest"] == written.digest
    assert (snapshot["taken"], snapshot["posts"], snapshot["first"], snapshot["last"]) == \
        ("2026-03-09", 2, "Tokens", 'Attention, "quoted"')


def test_corpus_snapshot_refuses_a_corpus_edited_after_its_snapshot(tmp_path):
    from labcode.data import corpus_snapshot

    corpus, _ = _written_corpus(tmp_path)
    with pytest.raises(ValueError, match="build.py corpus --yes"):
        corpus_snapshot(corpus, corpus.read_text(encoding="utf-8") + "hand-made extra\n")


def test_corpus_snapshot_of_a_text_without_a_record_says_so(tmp_path):
    from labcode.data import corpus_snapshot

    (tmp_path / "notes.txt").write_text("some text", encoding="utf-8")
    assert corpus_snapshot(tmp_path / "notes.txt", "some text")["taken"] == "unrecorded"

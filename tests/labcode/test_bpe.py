"""Our byte-level BPE trainer: merges match a brute-force count, tiktoken loads the result."""
import os
import random
from collections import Counter
from pathlib import Path

import pytest
import regex
import tiktoken

from labcode.bpe import GPT2_SPLIT_PATTERN, learn_merges, train_bpe
from labcode.labs.tokens import train_bpe_demo
from labcode.tokenizer import R50K_CACHE_NAME

CORPUS = (
    "the cat sat on the mat. the cat ate the rat! that rat? it sat there, then "
    "the other cat sat on that mat too; 2024 and 2025 were the years of the cats.\n\n"
) * 3 + "Ünïcödé, 日本語, and 🙂 appear once."

REPO_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "tiktoken"


def brute_force_merges(text, n):
    """Recount every adjacent pair in every pre-token occurrence before each merge."""
    words = [list(piece.encode("utf-8")) for piece in regex.findall(GPT2_SPLIT_PATTERN, text)]
    vocab = {b: bytes([b]) for b in range(256)}
    merges = []
    for _ in range(n):
        counts = Counter(p for w in words for p in zip(w, w[1:]))
        top = max(counts.values())
        best = min(p for p, c in counts.items() if c == top)  # tie: smaller ids
        new_id = len(vocab)
        vocab[new_id] = vocab[best[0]] + vocab[best[1]]
        merges.append((vocab[best[0]], vocab[best[1]]))
        for k, w in enumerate(words):
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[k] = out
    return merges


def test_split_pattern_is_gpt2s():
    from tiktoken_ext.openai_public import r50k_pat_str
    assert GPT2_SPLIT_PATTERN == r50k_pat_str


def test_first_merges_match_a_brute_force_count():
    expected = brute_force_merges(CORPUS, 12)
    assert learn_merges(CORPUS, 256 + 12 + 1) == expected
    assert expected[:2] == [(b"a", b"t"), (b"t", b"h")]  # "at" and "th" lead in this corpus


def test_train_bpe_returns_a_tiktoken_encoding():
    enc = train_bpe(CORPUS, 280)
    assert isinstance(enc, tiktoken.Encoding)
    assert enc.n_vocab == 280
    assert enc.eot_token == 279
    ids = enc.encode("the cat sat <|endoftext|>", allowed_special="all")
    assert ids[-1] == 279
    assert len(ids) < len("the cat sat ".encode()) + 1  # merges were used
    assert enc.decode(ids) == "the cat sat <|endoftext|>"


@pytest.mark.parametrize("text", ["", "the cat", "🙂👩‍🔬🇫🇷", "日本語のテキスト、中文", "\x00\x01\x02\x1b\x7f\t\r\n  \n",
                                  "ﬁ Ω ∑ naïve café — “quotes” 123456789"])
def test_round_trips_any_utf8_text(text):
    enc = train_bpe(CORPUS, 300)
    assert enc.decode(enc.encode_ordinary(text)) == text
    assert enc.decode_bytes(enc.encode_ordinary(text)) == text.encode("utf-8")


def test_random_small_alphabet_corpora_train_and_round_trip():
    # Small alphabets make the same bytes reachable by two merge paths ("ab"+"c", "a"+"bc").
    rng = random.Random(0)
    for _ in range(5):
        text = "".join(rng.choice("abc ") for _ in range(3000))
        enc = train_bpe(text, 320)
        assert len(set(enc._mergeable_ranks.values())) == len(enc._mergeable_ranks)
        assert enc.decode(enc.encode_ordinary(text)) == text


def test_training_stops_when_nothing_is_left_to_merge():
    enc = train_bpe("aaaa", 400)
    assert enc.decode(enc.encode_ordinary("aaaa aa")) == "aaaa aa"
    assert enc.n_vocab < 400


def test_vocab_size_below_bytes_is_refused():
    with pytest.raises(ValueError, match="257"):
        train_bpe("x", 100)


def test_training_is_deterministic():
    assert learn_merges(CORPUS, 300) == learn_merges(CORPUS, 300)


def test_demo_reads_a_corpus_and_compares_with_gpt2(tmp_path, monkeypatch, capsys):
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(REPO_CACHE))
    if not (Path(os.environ["TIKTOKEN_CACHE_DIR"]) / R50K_CACHE_NAME).is_file():
        pytest.skip("GPT-2 encoding not installed (run `make setup`)")
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = train_bpe_demo("corpus.txt", vocab_size=270, show_merges=3)
    rows = result["first_merges"]
    assert rows[0] == {"rank": 256, "left": "a", "right": "t", "merged": "at"}
    assert len(rows) == 3
    assert result["merges"] == 13 and result["vocab_size"] == 270  # one id is <|endoftext|>
    assert result["byte_tokens"] + result["merges"] + result["special_tokens"] == 270
    assert result["gpt2_merges"] == 50_000
    assert result["ratio"] == result["tokens_ours"] / result["tokens_gpt2"] > 1
    out = capsys.readouterr().out
    assert "GPT-2" in out and "our BPE" in out


def test_demo_missing_corpus_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        train_bpe_demo("nope.txt")

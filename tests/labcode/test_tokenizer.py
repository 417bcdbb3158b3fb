"""Tokenisation: the simple word tokenizer and GPT-2's BPE loaded offline."""

import pytest

from labcode.labs.tokens import gpt2_bpe_demo, simple_tokenizer_demo
from labcode.tokenizer import (
    END_OF_TEXT,
    R50K_CACHE_NAME,
    UNK,
    SimpleTokenizer,
    gpt2_tokenizer,
    split_words,
)

@pytest.fixture
def gpt2(gpt2_env):
    """GPT-2's encoding from TIKTOKEN_CACHE_DIR, or the repo's .cache/tiktoken when unset."""
    return gpt2_tokenizer()


def test_split_words_keeps_punctuation_and_special_tokens():
    assert split_words('Hello, world. Is this-- a "test"? <|endoftext|> x') == [
        "Hello", ",", "world", ".", "Is", "this", "--", "a", '"', "test", '"', "?",
        END_OF_TEXT, "x",
    ]


def test_simple_tokenizer_round_trips_known_text():
    text = "I HAD always thought Jack Gisburn rather a cheap genius; though a good fellow enough!"
    tok = SimpleTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text


def test_unknown_words_become_unk_and_documents_are_separated():
    tok = SimpleTokenizer.from_text("the cat sat on the mat.")
    ids = tok.encode("the dog sat. <|endoftext|> the cat")
    words = [tok.int_to_str[i] for i in ids]
    assert words == ["the", UNK, "sat", ".", END_OF_TEXT, "the", "cat"]
    assert tok.decode(ids) == "the <|unk|> sat. <|endoftext|> the cat"
    assert tok.str_to_int[END_OF_TEXT] == len(tok.str_to_int) - 2
    assert tok.str_to_int[UNK] == len(tok.str_to_int) - 1


def test_simple_tokenizer_demo_shows_unk():
    result = simple_tokenizer_demo()
    assert result["unk_id"] == result["vocab_size"] - 1
    assert UNK in result["tokens"] and END_OF_TEXT in result["tokens"]
    assert result["unknown_words"] == ["Hello", "tea", "sunlit"]
    assert result["ids"].count(result["unk_id"]) == result["unknown_count"] == 3


def test_gpt2_encoding_gives_the_well_known_ids(gpt2):
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    ids = gpt2.encode(text, allowed_special={END_OF_TEXT})
    assert ids == [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252,
                   18250, 8812, 2114, 286, 617, 34680, 27271, 13]
    assert gpt2.decode(ids) == text
    assert gpt2.n_vocab == 50257


@pytest.mark.parametrize("text", ["", "naïve café 🙂👩‍🔬", "日本語のテキスト", "\x00\x01\x1b[0m\x7f\t\r\n"])
def test_gpt2_round_trips_any_text(gpt2, text):
    assert gpt2.decode(gpt2.encode(text)) == text


def test_gpt2_bpe_demo_returns_pieces(gpt2):
    result = gpt2_bpe_demo("Hello, world")
    assert result["tokens"] == [{"id": 15496, "piece": "Hello"}, {"id": 11, "piece": ","},
                                {"id": 995, "piece": " world"}]
    assert result["n_tokens"] == 3 and result["round_trip"]
    assert result["first_word"] == {"piece": "Hello", "id": 15496, "id_after_space": 18435}


def test_missing_cache_dir_gives_a_one_line_error(monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    with pytest.raises(RuntimeError, match="TIKTOKEN_CACHE_DIR") as err:
        gpt2_tokenizer()
    assert "\n" not in str(err.value)


def test_missing_cache_file_gives_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="make setup") as err:
        gpt2_tokenizer()
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing was downloaded


def test_damaged_cache_file_is_refused_not_refetched(monkeypatch, tmp_path):
    (tmp_path / R50K_CACHE_NAME).write_bytes(b"not an encoding")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="damaged"):
        gpt2_tokenizer()
    assert (tmp_path / R50K_CACHE_NAME).read_bytes() == b"not an encoding"

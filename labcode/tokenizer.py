"""Tokenisation: from text to token ids and back.

Two tokenizers, in the order a learner meets them:

1. `SimpleTokenizer`: split text into words and punctuation with a regular
   expression, give every distinct piece an id, map unknown words to `<|unk|>`
   and separate documents with `<|endoftext|>`. Small and easy to follow, but
   every word it has never seen becomes the same `<|unk|>` token.
2. GPT-2's byte-pair encoding (BPE) through tiktoken (`gpt2_tokenizer`): words
   are split into sub-word pieces, down to single bytes when needed, so there is
   no unknown word at all. The encoding is read from a local file, never from the
   network.
"""
import hashlib
import os
import re
from pathlib import Path

import tiktoken

UNK = "<|unk|>"
END_OF_TEXT = "<|endoftext|>"

# Split on punctuation, double dashes and whitespace, keeping what was split on;
# special tokens such as <|endoftext|> stay whole.
_SPLIT = re.compile(r'(<\|[a-z]+\|>|[,.:;?_!"()\']|--|\s)')
# When decoding, punctuation goes back onto the word before it.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?!"()\'])')


def split_words(text: str) -> list[str]:
    """Split `text` into words, punctuation marks and special tokens (whitespace dropped)."""
    return [piece for piece in _SPLIT.split(text) if piece.strip()]


class SimpleTokenizer:
    """A word-level tokenizer with a fixed vocabulary, `<|unk|>` and `<|endoftext|>`."""

    def __init__(self, vocab: dict[str, int]):
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in self.str_to_int.items()}

    @classmethod
    def from_text(cls, text: str) -> "SimpleTokenizer":
        """Build the vocabulary from every distinct word in `text`, plus the two special tokens."""
        words = sorted(set(split_words(text)) - {END_OF_TEXT, UNK})
        words += [END_OF_TEXT, UNK]
        return cls({word: i for i, word in enumerate(words)})

    def encode(self, text: str) -> list[int]:
        """Text -> ids; a word outside the vocabulary becomes `<|unk|>`."""
        words = [w if w in self.str_to_int else UNK for w in split_words(text)]
        return [self.str_to_int[w] for w in words]

    def decode(self, ids: list[int]) -> str:
        """Ids -> text, with punctuation reattached to the word before it."""
        text = " ".join(self.int_to_str[i] for i in ids)
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


# --- GPT-2's BPE, loaded offline -------------------------------------------------

# tiktoken caches each downloaded file under sha1(url) in TIKTOKEN_CACHE_DIR.
_R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
R50K_CACHE_NAME = hashlib.sha1(_R50K_URL.encode()).hexdigest()  # 0ea1e91b...
_R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


def gpt2_tokenizer() -> tiktoken.Encoding:
    """GPT-2's BPE encoding (tiktoken's "r50k_base": 50,257 tokens, `<|endoftext|>` = 50256).

    The encoding file must already be in `TIKTOKEN_CACHE_DIR`; we check it is
    there and intact ourselves, so tiktoken never tries to download it.
    """
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir:
        raise RuntimeError(
            "GPT-2 encoding not found: TIKTOKEN_CACHE_DIR is not set; set it to a folder "
            f"holding tiktoken's cached r50k_base file {R50K_CACHE_NAME} (run `make setup`)"
        )
    path = Path(cache_dir) / R50K_CACHE_NAME
    if not path.is_file():
        raise RuntimeError(
            f"GPT-2 encoding not found: {path} does not exist; set TIKTOKEN_CACHE_DIR to a "
            "folder holding tiktoken's cached r50k_base file (run `make setup`)"
        )
    # A damaged file would make tiktoken delete it and go to the network.
    if hashlib.sha256(path.read_bytes()).hexdigest() != _R50K_SHA256:
        raise RuntimeError(
            f"GPT-2 encoding damaged: {path} does not match r50k_base's checksum; "
            "copy a fresh one there (run `make setup`)"
        )
    return tiktoken.get_encoding("r50k_base")


def visible(piece: str) -> str:
    """A token piece with its whitespace made visible: " the" -> "␣the", "\n" -> "↵"."""
    return piece.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")

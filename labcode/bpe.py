"""Byte-pair encoding, trained from scratch.

GPT-2's tokenizer was not written by hand: it was learnt. The recipe fits on a page:

1. Split the text into pre-tokens with GPT-2's regular expression (words with their
   leading space, runs of digits, runs of punctuation, whitespace), so no merge
   ever crosses a word boundary.
2. Write every pre-token as its UTF-8 bytes: the first 256 tokens are the 256
   byte values, so any text at all can be encoded.
3. Count every adjacent pair of tokens, merge the most frequent pair into a new
   token, and repeat until the vocabulary is as large as we asked.

The result is handed to tiktoken as an `Encoding`: the rank of a token is the
order in which it was learnt, which is exactly what tiktoken's encoder needs.
"""
from collections import Counter, defaultdict

import regex
import tiktoken

from labcode.tokenizer import END_OF_TEXT

# GPT-2's split pattern (tiktoken's r50k_base).
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


def pretokenize(text: str) -> Counter:
    """Split `text` with GPT-2's pattern and count each distinct pre-token (as bytes)."""
    return Counter(piece.encode("utf-8") for piece in regex.findall(GPT2_SPLIT_PATTERN, text))


def learn_merges(text: str, vocab_size: int) -> list[tuple[bytes, bytes]]:
    """Learn BPE merges on `text` until there are `vocab_size - 1` tokens (one id is kept for `<|endoftext|>`).

    Returns the merges in the order they were learnt, as (left, right) byte
    strings. Ties between equally frequent pairs go to the pair of smaller token
    ids, so training is deterministic. Stops early when no pair is left to merge.
    """
    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + <|endoftext|>), got {vocab_size}")

    # Work on distinct pre-tokens with their counts: "the" is stored once, not 2,000 times.
    counts = pretokenize(text)
    words = [list(word) for word in counts]          # each word: a list of token ids
    freq = [counts[word] for word in counts]          # how often each word occurs
    vocab = [bytes([b]) for b in range(256)]          # token id -> bytes
    ids_of = {token: i for i, token in enumerate(vocab)}

    # pair -> how often it occurs in the text; pair -> which words contain it
    pair_counts = Counter()
    where = defaultdict(set)
    for w, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq[w]
            where[pair].add(w)

    merges = []
    while len(vocab) < vocab_size - 1 and pair_counts:
        # The most frequent pair; on a tie, the pair of smaller ids.
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        left, right = vocab[best[0]], vocab[best[1]]
        merges.append((left, right))
        merged = left + right
        if merged not in ids_of:  # the same bytes can be reached by two different merges
            ids_of[merged] = len(vocab)
            vocab.append(merged)
        new_id = ids_of[merged]

        # Rewrite only the words that contain the pair, updating the counts as we go.
        for w in where.pop(best):
            word = words[w]
            for pair in zip(word, word[1:]):
                pair_counts[pair] -= freq[w]
            words[w] = word = merge_pair(word, best, new_id)
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freq[w]
                where[pair].add(w)
        pair_counts = +pair_counts  # drop pairs whose count fell to zero
    return merges


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` (left to right) by `new_id`."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def encoding_from_merges(merges: list[tuple[bytes, bytes]], name: str = "labnotes-bpe") -> tiktoken.Encoding:
    """Turn learnt merges into a tiktoken `Encoding`: the 256 bytes, then each merged token in order."""
    ranks = {bytes([b]): b for b in range(256)}
    for left, right in merges:
        ranks.setdefault(left + right, len(ranks))
    return tiktoken.Encoding(
        name,
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={END_OF_TEXT: len(ranks)},  # the last id
    )


def train_bpe(text: str, vocab_size: int) -> tiktoken.Encoding:
    """Train a byte-level BPE on `text`; returns a tiktoken `Encoding` with at most `vocab_size` tokens.

    The last id is `<|endoftext|>`. Any UTF-8 text round-trips, whatever it was trained on.
    """
    return encoding_from_merges(learn_merges(text, vocab_size))

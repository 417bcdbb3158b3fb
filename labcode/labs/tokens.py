"""Labs of the post "Tokens: from text to ids": two tokenizers, a BPE of our own, and windows.

`simple_tokenizer_demo` and `gpt2_bpe_demo` encode one sentence with `labcode.tokenizer`'s two
tokenizers, `train_bpe_demo` learns merges with `labcode.bpe` on the blog's corpus, and
`sliding_window_demo` cuts token ids into (input, target) windows with `labcode.data`.
"""
import re

from labcode.bpe import encoding_from_merges, learn_merges
from labcode.data import corpus_snapshot, create_dataloader, read_text
from labcode.tokenizer import END_OF_TEXT, UNK, SimpleTokenizer, gpt2_tokenizer, split_words, visible


_VOCAB_TEXT = (
    "The attention head looked at every word in the sentence, and each word looked back. "
    "A model reads text as tokens: it learns which token comes next. In the heart of the "
    "city stood the old library; do you like stories? The terraces of the palace were "
    "quiet -- only the wind moved."
)


def simple_tokenizer_demo(
    text: str = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace.",
) -> dict:
    """Encode `text` with a SimpleTokenizer whose vocabulary comes from a short passage.

    Words the passage never used ("Hello", "tea", "sunlit") come out as `<|unk|>`.
    """
    tokenizer = SimpleTokenizer.from_text(_VOCAB_TEXT)
    ids = tokenizer.encode(text)
    decoded = tokenizer.decode(ids)
    unk_id = tokenizer.str_to_int[UNK]
    unknown = [w for w in split_words(text) if w not in tokenizer.str_to_int]
    print(f"vocabulary: {len(tokenizer.str_to_int)} entries, {UNK} = {unk_id}")
    print(f"text:    {text}")
    print(f"ids:     {ids}")
    print(f"decoded: {decoded}")
    return {"vocab_size": len(tokenizer.str_to_int), "unk_id": unk_id, "ids": ids,
            "decoded": decoded, "unknown_words": unknown, "unknown_count": len(unknown),
            "tokens": [tokenizer.int_to_str[i] for i in ids]}


def gpt2_bpe_demo(
    text: str = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
) -> dict:
    """Encode `text` with GPT-2's BPE: unknown words split into known pieces, nothing is lost.

    Pieces are shown with their leading space as "␣". `first_word` compares the id of the
    text's first piece with the id of the same piece after a space.
    """
    enc = gpt2_tokenizer()
    ids = enc.encode(text, allowed_special={END_OF_TEXT})
    pieces = [enc.decode([i]) for i in ids]
    decoded = enc.decode(ids)
    spaced = enc.encode(" " + pieces[0].lstrip())
    first_word = {"piece": pieces[0], "id": ids[0],
                  "id_after_space": spaced[0] if len(spaced) == 1 else None}
    print(f"text:    {text}")
    print(f"decoded: {decoded}")
    print(f"round trip exact: {decoded == text}")
    print(f"{len(ids)} tokens:")
    cells = [f"{i:>6} {visible(p):<12}" for i, p in zip(ids, pieces)]
    for row in range(0, len(cells), 3):
        print("  ".join(cells[row:row + 3]).rstrip())
    # each word of the text as GPT-2 cuts it, with the space before it when it has one
    split = {}
    for match in re.finditer(r"( ?)([A-Za-z]+)", text):
        word_pieces = [visible(enc.decode([i])) for i in enc.encode_ordinary(match.group(0))]
        split[match.group(2)] = " + ".join(word_pieces)
    return {"n_tokens": len(ids), "round_trip": decoded == text, "first_word": first_word,
            "split": split, "pieces": {word: cut.count(" + ") + 1 for word, cut in split.items()},
            "tokens": [{"id": i, "piece": p} for i, p in zip(ids, pieces)]}


def train_bpe_demo(corpus: str = "content/data/corpus.txt", vocab_size: int = 300,
                   show_merges: int = 10, probe: str = " attention",
                   ranks_of: tuple = (" a", "at")) -> dict:
    """Train our BPE on a text file, show its first merges and compare token counts with GPT-2's.

    `probe` is a word whose encoding we compare under both vocabularies; `ranks_of` are merged
    pieces whose ranks (the order they were learnt in) we report, `None` for one never learnt.
    """
    text = read_text(corpus)
    snapshot = corpus_snapshot(corpus, text)
    merges = learn_merges(text, vocab_size)
    enc = encoding_from_merges(merges)
    gpt2 = gpt2_tokenizer()

    rows = [{"rank": rank, "left": _show(left), "right": _show(right), "merged": _show(left + right)}
            for rank, (left, right) in enumerate(merges[:show_merges], start=256)]
    print(f"the first {len(rows)} of {len(merges)} merges (␣ is a space):")
    for row in rows:
        print(f"  {row['rank']}: {visible(row['left']):>6} + {visible(row['right']):<6}"
              f" -> {visible(row['merged'])}")

    corpus_bytes = len(text.encode("utf-8"))
    ours, theirs = len(enc.encode_ordinary(text)), len(gpt2.encode_ordinary(text))
    gpt2_merges = len(gpt2._mergeable_ranks) - 256
    probe_ours = [enc.decode([i]) for i in enc.encode_ordinary(probe)]
    probe_gpt2 = [gpt2.decode([i]) for i in gpt2.encode_ordinary(probe)]
    print(f"corpus: {corpus_bytes:,} bytes")
    print(f"our BPE   ({len(merges):>6,} merges): {ours:>7,} tokens")
    print(f"GPT-2 BPE ({gpt2_merges:>6,} merges): {theirs:>7,} tokens")
    print(f"{visible(probe)!s}: ours {'|'.join(visible(p) for p in probe_ours)}, "
          f"GPT-2 {'|'.join(visible(p) for p in probe_gpt2)}")
    rank = {left + right: r for r, (left, right) in enumerate(merges, start=256)}
    ranks = {visible(piece): rank.get(piece.encode("utf-8")) for piece in ranks_of}
    print("learnt at rank: " + ", ".join(f"{piece} {r}" for piece, r in ranks.items()))
    # what the first merges glue: a space to a letter, two single characters, or earlier merges
    kinds = {"space_first": sum(row["left"] == " " for row in rows),
             "two_characters": sum(len(row["left"]) == len(row["right"]) == 1 and row["left"] != " "
                                   for row in rows),
             "of_merges": sum(len(row["left"]) > 1 and len(row["right"]) > 1 for row in rows)}
    return {"vocab_size": enc.n_vocab, "byte_tokens": 256, "merges": len(merges),
            "special_tokens": len(enc.special_tokens_set), "gpt2_merges": gpt2_merges,
            "first_merges": rows, "corpus": snapshot, "corpus_bytes": corpus_bytes, "tokens_ours": ours,
            "tokens_gpt2": theirs, "ratio": ours / theirs,
            "first_merge_kinds": kinds,
            "probe": {"text": probe, "ours": [visible(p) for p in probe_ours],
                      "ours_count": len(probe_ours), "gpt2": [visible(p) for p in probe_gpt2],
                      "gpt2_count": len(probe_gpt2), "ranks": ranks}}


def _show(token: bytes) -> str:
    """A token as text (a piece of a multi-byte character shows as \\x..)."""
    return token.decode("utf-8", errors="backslashreplace")


def sliding_window_demo(
    text: str = "In the heart of the city stood the old library, a relic from a bygone era.",
    max_length: int = 4,
    stride: int = 1,
    batch_size: int = 2,
) -> dict:
    """Show the first batch of (input, target) windows over `text`, as ids and as token pieces."""
    tokenizer = gpt2_tokenizer()
    loader = create_dataloader(text, batch_size=batch_size, max_length=max_length, stride=stride,
                               shuffle=False, drop_last=False, tokenizer=tokenizer)
    n_tokens, n_windows = len(loader.dataset.token_ids), len(loader.dataset)
    # tokens after the last window's final target belong to no window at all
    left_over = n_tokens - (loader.dataset.starts[-1] + max_length + 1) if n_windows else n_tokens
    print(f"{n_tokens} tokens -> {n_windows} windows of {max_length} tokens, stride {stride}; "
          f"{left_over} left over")
    print("first batch (␣ is a space, | separates tokens):")

    def pieces(ids):
        return "|".join(visible(tokenizer.decode([i])) for i in ids)

    inputs, targets = next(iter(loader))  # (B, max_length) each
    batch = []
    for x, y in zip(inputs.tolist(), targets.tolist()):
        batch.append({"input_ids": x, "input": tokenizer.decode(x),
                      "target_ids": y, "target": tokenizer.decode(y)})
        print(f"  input  {str(x):<26} {pieces(x)}")
        print(f"  target {str(y):<26} {pieces(y)}")
    return {"tokens": n_tokens, "max_length": max_length, "stride": stride,
            "windows": n_windows, "formula_windows": (n_tokens - max_length - 1) // stride + 1,
            "left_over": left_over, "batch": batch}

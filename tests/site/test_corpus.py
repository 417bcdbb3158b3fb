"""`build.py corpus`: the training text is the posts' prose, regenerated on purpose, with a record."""
from __future__ import annotations

import hashlib
import tomllib

import build as cli

from conftest import post_text

TOKENS_POST = post_text(title="Tokens, first", date="2026-03-01T09:30:00+00:00", body="""\
    A tokenizer turns *text* into ids; see the [BPE paper](https://example.org/bpe) and the
    `<|endoftext|>` token.[^1]

    <!--more-->

    ```lab
    labcode.bpe:train_bpe_demo
    name: bpe
    ```

    ## Counting merges

    The lab counts {{ bpe.merges }} merges, so $V = 256 + M$ and

    $$\\sum_i x_i$$

    ```python
    secret_code_line = 1
    ```

    | knob | value |
    | --- | --- |
    | table cell | 3 |

    - a list item
      that goes on

    [^1]: A footnote's prose.
    """)
ATTENTION_POST = post_text(title="Attention, later", date="2026-03-08", series="Notes", body="""\
    Queries meet **keys**, after the [tokens post](post:tokens), not
    before [](post:tokens).
    """)
DRAFT = post_text(title="Not yet", date="2026-03-09", body="Draft prose.\n", draft="true")


def _site(site):
    site.post("2026-03-08-attention.md", ATTENTION_POST)   # written first: order is by date
    site.post("2026-03-01-tokens.md", TOKENS_POST)
    site.post("2026-03-09-draft.md", DRAFT)
    return ["corpus", "--config", str(site.config), "--content", str(site.content)]


def test_corpus_is_the_posts_prose_oldest_first_without_code_labs_or_citations(site, capsys):
    assert cli.main(_site(site) + ["--yes"]) == 0
    text = (site.content / "data" / "corpus.txt").read_text(encoding="utf-8")
    assert text == (
        "Tokens, first\n\n"
        "A tokenizer turns text into ids; see the BPE paper and the <|endoftext|> token.\n\n"
        "Counting merges\n\n"
        "The lab counts merges, so V = 256 + M and\n\n"
        "a list item that goes on\n\n"
        "A footnote's prose.\n\n"
        "Attention, later\n\n"
        "Queries meet keys, after the tokens post, not before Tokens, first.\n")
    for left_out in ("labcode.bpe", "secret_code_line", "table cell", "sum_i", "{{", "Draft prose"):
        assert left_out not in text
    out = capsys.readouterr().out
    assert "the prose of 2 posts (2026-03-01 to 2026-03-08)" in out
    assert "wrote" in out and "next build retrains" in out


def test_corpus_record_names_the_snapshot_and_matches_the_text(site):
    assert cli.main(_site(site) + ["--yes"]) == 0
    raw = (site.content / "data" / "corpus.txt").read_bytes()
    record = tomllib.loads((site.content / "data" / "corpus.toml").read_text(encoding="utf-8"))
    assert record["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()[:16]
    assert record["bytes"] == len(raw)
    assert [p["slug"] for p in record["posts"]] == ["tokens", "attention"]
    assert [p["date"] for p in record["posts"]] == ["2026-03-01", "2026-03-08"]
    assert [p["title"] for p in record["posts"]] == ["Tokens, first", "Attention, later"]
    assert len(record["taken"]) == 10


def test_corpus_is_deterministic_and_a_second_run_writes_nothing(site, capsys):
    args = _site(site)
    assert cli.main(args + ["--yes"]) == 0
    first = (site.content / "data" / "corpus.txt").read_bytes()
    record = (site.content / "data" / "corpus.toml").read_bytes()
    capsys.readouterr()
    assert cli.main(args) == 0
    assert "is up to date" in capsys.readouterr().out
    assert (site.content / "data" / "corpus.txt").read_bytes() == first
    assert (site.content / "data" / "corpus.toml").read_bytes() == record


def test_corpus_without_yes_says_what_would_change_and_writes_nothing(site, capsys):
    args = _site(site)
    data = site.content / "data"
    data.mkdir()
    (data / "corpus.txt").write_text("Tokens, first\n\nAn old hand-made draft.\n", encoding="utf-8")
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert "no record of its snapshot" in out
    assert "nothing written" in out and "--yes" in out and "retrain" in out
    assert (data / "corpus.txt").read_text(encoding="utf-8").endswith("hand-made draft.\n")
    assert not (data / "corpus.toml").exists()

    assert cli.main(args + ["--yes"]) == 0
    site.post("2026-03-10-new.md", post_text(title="New", date="2026-03-10", body="More prose.\n"))
    capsys.readouterr()
    assert cli.main(args) == 1
    out = capsys.readouterr().out
    assert "posts added: new" in out and "paragraphs: 8 kept, 2 new or changed, 0 gone" in out

"""Write N synthetic posts (a code block, a table and a footnote each) for the site benchmark.

    .venv/bin/python bench/make_synthetic_posts.py OUT_DIR [--posts 1000] [--format labnotes|pelican|hugo]

The same posts in three dialects of front matter, so Lab Notes, Pelican and Hugo build the
same words. Deterministic: post i is always the same text.
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

CATEGORIES = ("Attention", "Tokenisation", "Training", "Inference", "Notes")
START = datetime(2023, 1, 1, 9, 0, tzinfo=timezone.utc)


def synthetic_post(i: int) -> dict:
    """Front-matter fields and Markdown body of post `i`."""
    cats = [CATEGORIES[i % 5], CATEGORIES[(i * 3 + 1) % 5]]
    cats = list(dict.fromkeys(cats))   # distinct, in order
    body = f"""Post {i} looks at step {i} of a small experiment: what changes when the context grows
and how the loss moves after a few hundred steps. This is the introduction shown on the index.

<!--more-->

## Setup

We train with a learning rate of {1 + i % 9}e-4 and a batch of {8 << (i % 4)} sequences. The code
below is the whole training step; nothing is hidden.

```python
def train_step(model, batch, optimizer):
    logits = model(batch.inputs)                       # (B, T, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()  # run {i}
```

## Results

| context | loss | tokens/s |
| ------- | ---- | -------- |
| 128 | {3.2 + (i % 7) / 10:.2f} | {1000 + 13 * i} |
| 256 | {3.0 + (i % 5) / 10:.2f} | {900 + 11 * i} |
| 512 | {2.9 + (i % 3) / 10:.2f} | {700 + 7 * i} |

The loss falls as the context grows, as expected from earlier posts.[^note]

[^note]: Measured on two CPU cores; figures in post {i} are synthetic.
"""
    return {
        "title": f"Synthetic post {i:04d} on {cats[0].lower()}",
        "slug": f"synthetic-{i:04d}",
        "date": START + timedelta(hours=7 * i),
        "categories": cats,
        "summary": f"Synthetic post number {i} for the site benchmark.",
        "body": body,
    }


def render(post: dict, fmt: str) -> str:
    """The post as a Markdown file for `fmt`: labnotes, pelican or hugo."""
    date = post["date"]
    if fmt == "pelican":
        head = [f"Title: {post['title']}", f"Date: {date:%Y-%m-%d %H:%M}", f"Slug: {post['slug']}",
                f"Category: {post['categories'][0]}", f"Tags: {', '.join(post['categories'][1:])}",
                f"Summary: {post['summary']}"]
        return "\n".join(head) + "\n\n" + post["body"]
    cats = ", ".join(f'"{c}"' for c in post["categories"])
    head = ["---", f'title: "{post["title"]}"', f"date: {date.isoformat()}", f"slug: {post['slug']}",
            f"categories: [{cats}]", f'summary: "{post["summary"]}"', "---"]
    return "\n".join(head) + "\n" + post["body"]


def write_posts(folder: Path, n: int, fmt: str = "labnotes") -> list[Path]:
    """Write posts 0..n-1 into `folder` in format `fmt`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        post = synthetic_post(i)
        path = folder / f"{post['date']:%Y-%m-%d}-{post['slug']}.md"
        path.write_text(render(post, fmt), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--format", choices=("labnotes", "pelican", "hugo"), default="labnotes")
    args = parser.parse_args()
    paths = write_posts(args.out, args.posts, args.format)
    print(f"wrote {len(paths)} posts to {args.out}")


if __name__ == "__main__":
    main()

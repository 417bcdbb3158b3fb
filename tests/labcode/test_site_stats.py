"""The site_stats lab counts what a reader sees: labs that run, sources shown, citations in prose."""
from pathlib import Path

from labcode.labs.site_stats import count_post, post_slug, series_counts

POST = '''---
title: "A post"
series: Notes
---
Intro cites {{ a.x:.2f }} and {{ a.y }}, but not `{{ a.z }}` in code, nor \\{{ a.w }}.
Maths is not prose: $x_{{ a.q }}$ and $$ {{ a.r }} $$.

```lab
labcode.m:f
name: a
```

```labsource
labcode.m:f
```

````markdown
```lab
labcode.m:g
name: shown_not_run
```
{{ a.inside_fence }}
````

```lab
labcode.m:g
```
Last line cites {{ a.x }}.
'''


def test_counts_labs_sources_names_and_prose_citations_only():
    counts = count_post(POST, "a-post")
    assert (counts.labs, counts.sources, counts.named, counts.citations) == (2, 1, 1, 3)
    assert counts.series == "Notes" and counts.title == "A post"


def test_post_slug_drops_the_date():
    assert post_slug(Path("content/posts/2026-09-07-tokens-from-text-to-ids.md")) == \
        "tokens-from-text-to-ids"


def test_series_counts_totals_only_the_series(tmp_path, capsys):
    (tmp_path / "2026-01-01-one.md").write_text(POST, encoding="utf-8")
    (tmp_path / "2026-01-02-two.md").write_text(POST.replace("series: Notes", "series: Other"),
                                                encoding="utf-8")
    (tmp_path / "2026-01-03-three.md").write_text(POST.replace("{{ a.y }}", "y"),
                                                  encoding="utf-8")
    result = series_counts(posts=str(tmp_path), series="Notes")
    assert result["posts"] == 2 and result["files_read"] == 3
    assert result["lab_blocks"] == 4 and result["citations"] == 5
    assert result["most_cited"] == "one"
    assert "all 2 posts" in capsys.readouterr().out


def test_drafts_are_not_counted(tmp_path):
    (tmp_path / "2026-01-01-one.md").write_text(POST, encoding="utf-8")
    (tmp_path / "2026-01-02-draft.md").write_text(POST.replace("---\n", "---\ndraft: true\n", 1),
                                                  encoding="utf-8")
    assert series_counts(posts=str(tmp_path), series="Notes")["posts"] == 1


def test_posts_after_the_through_date_are_not_counted_and_parts_follow_the_site(tmp_path, capsys):
    """A future post the build holds back must not show up in a published table, and a post
    pinned with `part:` is numbered where the series box puts it."""
    def post(date: str, extra: str = "") -> str:
        return POST.replace("---\n", f"---\ndate: {date}\n{extra}", 1)
    (tmp_path / "2026-01-01-one.md").write_text(post("2026-01-01"), encoding="utf-8")
    (tmp_path / "2026-01-05-two.md").write_text(post("2026-01-05T09:00:00+00:00", "part: 1\n"), encoding="utf-8")
    (tmp_path / "2027-06-01-later.md").write_text(post("2027-06-01"), encoding="utf-8")
    result = series_counts(posts=str(tmp_path), series="Notes", through="2026-12-31")
    assert result["posts"] == 2 and result["files_read"] == 3
    assert [row["slug"] for row in result["table"]] == ["two", "one"]
    assert "later" not in capsys.readouterr().out
    assert series_counts(posts=str(tmp_path), series="Notes")["posts"] == 3


def test_posts_in_subfolders_count_as_the_build_publishes_them(tmp_path):
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "2026-01-01-one.md").write_text(POST, encoding="utf-8")
    (tmp_path / "2026-01-02-two.md").write_text(POST, encoding="utf-8")
    (tmp_path / ".ipynb_checkpoints").mkdir()                  # hidden: the build skips it too
    (tmp_path / ".ipynb_checkpoints" / "2026-01-03-x.md").write_text(POST, encoding="utf-8")
    result = series_counts(posts=str(tmp_path), series="Notes")
    assert result["posts"] == 2 and result["files_read"] == 2

"""Rebuilds do only the work an edit calls for (SPEC 8), and never show anything stale.

Every test builds a tiny site in tmp_path with the real pipeline; `report.rendered` lists the
output files whose bytes had to be made (the others were reused from the last build as they
were), and a clean build (no render cache, empty output) is the reference for what is right.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import feedparser

from conftest import TinySite, post_text

BODY = """\
Intro of {name}.

<!--more-->

Rest of {name}, with a footnote.[^1] and a table:

| a | b |
|---|---|
| 1 | 2 |

```python
print("{name}")
```

[^1]: Note of {name}.
"""


def add_posts(site: TinySite) -> None:
    """Four posts, two per page, in three categories and two months."""
    for name, day, categories in (("a", "2026-03-01", "[Notes]"), ("b", "2026-03-02", "[Notes, Maths]"),
                                  ("c", "2026-04-03", "[Maths]"), ("d", "2026-04-04", "[Other]")):
        site.post(f"{name}.md", post_text(title=f"Post {name}", date=day, categories=categories,
                                          summary=f'"Summary of {name}."', body=BODY.format(name=name)))
    site.page("about.md", "---\ntitle: About\n---\nAbout this blog.\n")


def stamps(site: TinySite) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every output file: a file rewritten or replaced changes one of them."""
    return {p.relative_to(site.out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in site.out.rglob("*") if p.is_file()}


def clean_build(site: TinySite, tmp_path: Path) -> dict[str, bytes]:
    """What a build from scratch (no render cache, no previous output) makes of the same site."""
    fresh = TinySite.__new__(TinySite)
    fresh.root = tmp_path / "clean"
    shutil.rmtree(fresh.root, ignore_errors=True)
    shutil.copytree(site.root, fresh.root, ignore=shutil.ignore_patterns(".cache", "output"))
    fresh.config, fresh.content, fresh.out = (fresh.root / "site.toml", fresh.root / "content",
                                              fresh.root / "output")
    fresh.build()
    return fresh.snapshot()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_second_build_rewrites_no_file(site):
    add_posts(site)
    first = site.build()
    assert first.documents_rendered == 5
    before = stamps(site)
    report = site.build()
    assert report.changed == 0 and report.rendered == () and report.documents_rendered == 0
    assert stamps(site) == before


def test_prose_edit_rerenders_only_pages_that_show_it(site):
    add_posts(site)
    site.build()
    before = stamps(site)
    edit(site.content / "posts" / "b.md", "Rest of b,", "Edited rest of b,")
    report = site.build()
    # b's page and mirror, the feeds it is in, and llms-full.txt; listings show only its
    # intro, title and summary, which did not change.
    assert set(report.rendered) == {"posts/b.html", "posts/b.html.md", "feed.xml", "category/notes/feed.xml",
                                    "category/maths/feed.xml", "llms-full.txt"}
    assert report.documents_rendered == 1
    assert "Edited rest of b" in site.html("posts/b.html").select_one(".post-body").get_text()
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    assert "Edited rest of b" in next(e for e in feed.entries if e.title == "Post b").content[0].value
    after = stamps(site)
    unchanged = set(before) - set(report.rendered)
    assert {path: after[path] for path in unchanged} == {path: before[path] for path in unchanged}


def test_prose_edit_rewrites_only_the_render_cache_shards_holding_that_post(site):
    """The render cache is spread over shard files so that an edit does not rewrite the cached
    renders of every other post (megabytes on a site of 1,000 posts)."""
    add_posts(site)
    site.build()
    folder = site.root / ".cache" / "render" / "rendered"
    shards = lambda: {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.glob("*.bin")}
    before = shards()
    edit(site.content / "posts" / "b.md", "Rest of b,", "Edited rest of b,")
    site.build()
    after = shards()
    rewritten = {name for name in after if after[name] != before.get(name)}
    # b's rendered body, mirror and feed item: each an old entry out and a new one in
    assert 1 <= len(rewritten) <= 6 < len(before)
    assert site.build().rendered == ()   # and what was kept is whole


def test_intro_edit_rerenders_the_index_page_showing_it_and_no_other(site):
    add_posts(site)
    site.build()
    edit(site.content / "posts" / "b.md", "Intro of b.", "New intro of b.")
    report = site.build()
    # newest first, two per page: d c | b a; b's intro is on page 2 only
    assert "page/2/index.html" in report.rendered
    assert not {"index.html", "category/notes/index.html", "2026/03/index.html", "archive/index.html",
                "posts/a.html", "posts/c.html"} & set(report.rendered)
    intros = [a.get_text() for a in site.html("page/2/index.html").select("article.intro .post-body")]
    assert any("New intro of b." in text for text in intros)


def test_title_edit_rerenders_neighbours_and_listings(site):
    add_posts(site)
    site.build()
    edit(site.content / "posts" / "b.md", "title: Post b", "title: Retitled b")
    report = site.build()
    rendered = set(report.rendered)
    # its neighbours link to it by title; the listings, archive and its index page show it
    assert {"posts/a.html", "posts/b.html", "posts/c.html", "page/2/index.html", "archive/index.html",
            "category/notes/index.html", "category/maths/index.html", "2026/03/index.html", "llms.txt"} <= rendered
    assert not {"posts/d.html", "index.html", "category/other/index.html", "2026/04/index.html"} & rendered
    assert report.documents_rendered == 0   # the body did not change: its Markdown is not rendered again
    assert "Retitled b" in site.html("posts/c.html").select_one(".post-nav").get_text()


def test_changed_template_rerenders_everything(site):
    add_posts(site)
    site.build()
    templates = site.root / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "base.html"
    (templates / "base.html").write_text(
        builtin.read_text(encoding="utf-8").replace('<main id="main">', '<main id="main" class="custom">'),
        encoding="utf-8")
    report = site.build()
    html_files = {p for p in site.snapshot() if p.endswith(".html")}
    assert html_files <= set(report.rendered)
    assert all(site.html(p).select_one("main.custom") is not None for p in html_files)


def test_corrupt_render_cache_is_rebuilt(site, tmp_path):
    add_posts(site)
    site.build()
    built = site.snapshot()
    cache_files = sorted((site.root / ".cache" / "render").rglob("*.bin"))
    assert cache_files
    for number, path in enumerate(cache_files):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if number % 2 else data[:40] + b"\xff" * 64 + data[104:])
    edit(site.content / "posts" / "a.md", "Rest of a,", "Edited rest of a,")
    report = site.build()
    assert report.documents_rendered == 5
    assert site.snapshot() == clean_build(site, tmp_path) != built
    assert site.build().rendered == ()   # and the cache written by that build is whole again


def test_output_file_edited_or_deleted_by_hand_is_restored(site):
    add_posts(site)
    site.build()
    built = site.snapshot()
    (site.out / "posts" / "a.html").write_text("tampered", encoding="utf-8")
    (site.out / "posts" / "b.html.md").unlink()
    (site.out / "stray.txt").write_text("not ours", encoding="utf-8")
    report = site.build()
    assert site.snapshot() == built
    assert set(report.rendered) == {"posts/a.html", "posts/b.html.md"}


def test_changed_lab_block_rerenders_the_post(site):
    """A block's rendered output is part of its post's key: here the source a ```labsource shows."""
    labcode = site.root / "labcode"
    labcode.mkdir()
    (labcode / "__init__.py").write_text("", encoding="utf-8")
    (labcode / "demo.py").write_text("def shown():\n    return 1\n", encoding="utf-8")
    site.post("a.md", post_text(body="Source:\n\n```labsource\nlabcode.demo:shown\n```\n"))
    site.build()
    assert "return 1" in site.html("posts/a.html").select_one(".lab").get_text()
    (labcode / "demo.py").write_text("def shown():\n    return 2\n", encoding="utf-8")
    report = site.build()
    assert report.documents_rendered == 1 and "posts/a.html" in report.rendered
    assert "return 2" in site.html("posts/a.html").select_one(".lab").get_text()


def test_incremental_output_equals_clean_build(site, tmp_path):
    add_posts(site)
    site.build()
    edits = [
        lambda: site.post("e.md", post_text(title="Post e", date="2026-05-05", categories="[New]",
                                            body=BODY.format(name="e"))),
        lambda: (site.content / "posts" / "a.md").unlink(),
        lambda: edit(site.content / "posts" / "c.md", "categories: [Maths]", "categories: [Notes]"),
        lambda: edit(site.content / "posts" / "d.md", "title: Post d", "title: Post d, retitled"),
        lambda: edit(site.content / "posts" / "b.md", 'summary: "Summary of b."\n', ""),
        lambda: edit(site.config, "posts_per_page = 2", "posts_per_page = 3"),
        lambda: edit(site.content / "pages" / "about.md", "About this blog.", "About this blog, edited."),
    ]
    for change in edits:
        change()
        site.build()
        assert site.snapshot() == clean_build(site, tmp_path)


def test_failed_rebuild_keeps_the_last_site_and_the_next_one_recovers(site, tmp_path):
    from labnotes.errors import BuildError
    add_posts(site)
    site.build()
    built, before = site.snapshot(), stamps(site)
    edit(site.content / "posts" / "c.md", "Rest of c,", "Rest of c, $\\frac{1}{$ broken maths,")
    try:
        site.build()
    except BuildError:
        pass
    else:
        raise AssertionError("invalid maths should fail the build")
    assert site.snapshot() == built and stamps(site) == before
    edit(site.content / "posts" / "c.md", "$\\frac{1}{$ broken maths,", "fixed,")
    site.build()
    assert site.snapshot() == clean_build(site, tmp_path)


def test_rebuild_with_nothing_to_do_loads_no_renderer(site):
    add_posts(site)
    site.build()
    script = textwrap.dedent(f"""
        import sys
        from labnotes.model import BuildOptions
        from labnotes.pipeline import build
        report = build({str(site.config)!r}, {str(site.content)!r}, {str(site.out)!r}, BuildOptions())
        assert report.rendered == (), report.rendered
        heavy = {{"torch", "matplotlib", "numpy", "markdown2", "pygments", "latex2mathml", "feedgen", "jinja2"}}
        print(sorted(heavy & {{name.split(".")[0] for name in sys.modules}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_first_build_on_several_processes_equals_a_serial_one(site, tmp_path, monkeypatch):
    import labnotes.pipeline
    add_posts(site)
    serial = clean_build(site, tmp_path)
    monkeypatch.setattr(labnotes.pipeline, "PARALLEL_MIN_DOCUMENTS", 1)
    report = site.build()
    assert report.documents_rendered == 5 and site.snapshot() == serial


def test_error_found_on_several_processes_names_the_same_file_and_line(site, monkeypatch):
    import labnotes.pipeline
    from labnotes.errors import BuildError
    add_posts(site)
    edit(site.content / "posts" / "a.md", "Rest of a,", "Rest of a, $\\frac{1}{$,")
    edit(site.content / "posts" / "c.md", "Rest of c,", "Rest of c, $\\frac{1}{$,")
    messages = []
    for threshold in (1000, 1):
        monkeypatch.setattr(labnotes.pipeline, "PARALLEL_MIN_DOCUMENTS", threshold)
        try:
            site.build()
        except BuildError as error:
            messages.append((error.path, error.line, error.message))
    assert len(messages) == 2 and messages[0] == messages[1]
    assert messages[0][0].name == "c.md"   # posts render newest first, as a serial build meets them


# --- cited lab values (SPEC 3): a page is rendered again exactly when a value it shows changed ---

TRAIN_LAB = "```lab\nlabcode.training:train_on_blog\nname: train\n```\n"
TRAIN = {"val_loss": 3.7512, "tokens": 20758, "history": [{"step": 30, "loss": 4.81}, {"step": 300, "loss": 3.2351}]}


def use_lab_values(monkeypatch, data: dict, device: str = "CPU") -> None:
    """Builds from now on get `data` as lab train's value, as if the lab had just run."""
    import labnotes.pipeline
    from labnotes.markdown import render_code_block
    from labnotes.model import LabStage, LabValue
    value = LabValue("train", "labcode.training:train_on_blog", data, device, "2.13.0",
                     Path("content/posts/a.md"), 12)
    stage = LabStage(render_code_block, values={"train": value})
    monkeypatch.setattr(labnotes.pipeline, "lab_stage", lambda content, config, options, warm_labs=None, protected=(), remember=None: stage)


def add_citing_posts(site: TinySite) -> None:
    """Post a runs lab train and cites its tokens; the About page cites its loss; b cites nothing."""
    add_posts(site)
    edit(site.content / "posts" / "a.md", "Rest of a,", "Rest of a, after {{ train.tokens:, }} tokens,")
    (site.content / "posts" / "a.md").write_text((site.content / "posts" / "a.md").read_text(encoding="utf-8")
                                                 + "\n" + TRAIN_LAB, encoding="utf-8")
    edit(site.content / "pages" / "about.md", "About this blog.", "Loss {{ train.val_loss:.2f }}.")


def test_changed_cited_value_rerenders_exactly_the_pages_citing_it(site, monkeypatch, tmp_path):
    use_lab_values(monkeypatch, TRAIN)
    add_citing_posts(site)
    site.build()
    use_lab_values(monkeypatch, {**TRAIN, "val_loss": 3.6})   # the lab reran and its loss changed
    report = site.build()
    assert report.documents_rendered == 1
    # the About page's summary (its first sentence) shows the value, and llms.txt shows the summary
    assert set(report.rendered) == {"about/index.html", "about/index.html.md", "llms-full.txt", "llms.txt"}
    assert site.html("about/index.html").select_one("span.lab-cite").get_text() == "3.60"
    assert "Loss 3.60." in (site.out / "llms.txt").read_text(encoding="utf-8")

    use_lab_values(monkeypatch, {**TRAIN, "val_loss": 3.6, "tokens": 21000})
    report = site.build()
    # a's page, mirror and feeds; a's intro (above the fold) cites nothing, so no listing changes
    assert report.documents_rendered == 1
    assert set(report.rendered) == {"posts/a.html", "posts/a.html.md", "feed.xml", "category/notes/feed.xml",
                                    "llms-full.txt"}
    assert site.html("posts/a.html").select_one("span.lab-cite").get_text() == "21,000"
    assert site.snapshot() == clean_build(site, tmp_path)


def test_lab_rerun_that_changes_no_cited_value_rerenders_nothing(site, monkeypatch):
    use_lab_values(monkeypatch, TRAIN)
    add_citing_posts(site)
    site.build()
    before = stamps(site)
    # rounding hides the change of the loss, and nobody cites the history
    use_lab_values(monkeypatch, {**TRAIN, "val_loss": 3.7499, "history": [{"step": 300, "loss": 3.1}]})
    report = site.build()
    assert report.rendered == () and report.documents_rendered == 0 and stamps(site) == before


def test_cited_value_from_another_device_rerenders_the_pages_citing_it(site, monkeypatch):
    use_lab_values(monkeypatch, TRAIN)
    add_citing_posts(site)
    site.build()
    use_lab_values(monkeypatch, TRAIN, device="NVIDIA H100 80GB HBM3")
    report = site.build()
    assert report.documents_rendered == 2
    assert {"posts/a.html", "about/index.html"} <= set(report.rendered)
    assert not {"posts/b.html", "posts/c.html"} & set(report.rendered)
    title = site.html("about/index.html").select_one("span.lab-cite")["title"]
    assert title == "train: labcode.training:train_on_blog on NVIDIA H100 80GB HBM3, torch 2.13.0"


def test_citations_rendered_on_several_processes_equal_a_serial_build(site, monkeypatch, tmp_path):
    import labnotes.pipeline
    use_lab_values(monkeypatch, TRAIN)
    add_citing_posts(site)
    serial = clean_build(site, tmp_path)
    monkeypatch.setattr(labnotes.pipeline, "PARALLEL_MIN_DOCUMENTS", 1)
    report = site.build()
    assert report.documents_rendered == 5 and site.snapshot() == serial
    assert site.html("posts/a.html").select_one("span.lab-cite").get_text() == "20,758"


# --- every kind of edit, every kind of page: an incremental build equals a clean one ---------

def folders(site: TinySite) -> set[str]:
    """The output's folders: a page that went must not leave its folder behind."""
    return {p.relative_to(site.out).as_posix() for p in site.out.rglob("*") if p.is_dir()}


def clean_folders(tmp_path: Path) -> set[str]:
    out = tmp_path / "clean" / "output"
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_dir()}


def add_series(site: TinySite) -> None:
    """Posts a, b and c are parts 1-3 of a series (c by `part:`), d stays outside it."""
    add_posts(site)
    edit(site.content / "posts" / "a.md", "categories: [Notes]", "categories: [Notes]\nseries: Scratch")
    edit(site.content / "posts" / "b.md", "categories: [Notes, Maths]", "categories: [Notes, Maths]\nseries: Scratch")
    edit(site.content / "posts" / "c.md", "categories: [Maths]", "categories: [Maths]\nseries: Scratch\npart: 3")


def use_lab_records(monkeypatch) -> None:
    """Builds from now on show one lab of post a on the /labs/ page, as if it had run."""
    import labnotes.pipeline
    from labnotes.markdown import render_code_block
    from labnotes.model import LabRecord, LabStage

    def stage(content, config, options, warm_labs=None, protected=(), remember=None) -> LabStage:
        post = next(doc for doc in content.posts if doc.slug == "a")
        record = LabRecord("labcode.demo:count", "n=3", post.source, 12, "lab-count", "CPU", "2.13.0",
                           "250 ms", "cached", "python build.py lab labcode.demo:count --arg n=3")
        return LabStage(render_code_block, records=(record,))
    monkeypatch.setattr(labnotes.pipeline, "lab_stage", stage)


def test_every_edit_leaves_the_output_of_a_clean_build(site, tmp_path, monkeypatch):
    """Prose, front matter (series, part, date, categories), a deleted or new post, a page,
    templates, static files and site.toml: after each, the site on disk is byte for byte what
    a clean build makes, series and labs pages included, with no folder left behind."""
    add_series(site)
    use_lab_records(monkeypatch)
    site.build()
    assert (site.out / "series" / "scratch" / "index.html").exists() and (site.out / "labs" / "index.html").exists()
    templates = site.root / "templates"
    builtin = Path(__file__).resolve().parents[2] / "templates"
    edits = {
        "prose": lambda: edit(site.content / "posts" / "a.md", "Rest of a,", "Rest of a, edited,"),
        "intro": lambda: edit(site.content / "posts" / "b.md", "Intro of b.", "Intro of b, edited."),
        "code block": lambda: edit(site.content / "posts" / "a.md", 'print("a")', 'print("a", 1)'),
        "part": lambda: edit(site.content / "posts" / "c.md", "part: 3", "part: 1"),
        "date": lambda: edit(site.content / "posts" / "b.md", "date: 2026-03-02", "date: 2026-05-02"),
        "leaves the series": lambda: edit(site.content / "posts" / "a.md", "series: Scratch\n", ""),
        "joins the series": lambda: edit(site.content / "posts" / "d.md", "categories: [Other]",
                                         "categories: [Other]\nseries: Scratch"),
        "category": lambda: edit(site.content / "posts" / "d.md", "categories: [Other]", "categories: [Notes]"),
        "deleted post": lambda: (site.content / "posts" / "c.md").unlink(),
        "new post": lambda: site.post("e.md", post_text(title="Post e", date="2026-06-01", categories="[Fresh]",
                                                        series="Scratch", body=BODY.format(name="e"))),
        "page": lambda: edit(site.content / "pages" / "about.md", "About this blog.", "About the blog."),
        "template": lambda: (templates.mkdir(exist_ok=True), (templates / "series.html").write_text(
            (builtin / "series.html").read_text(encoding="utf-8") + "<!-- edited -->\n", encoding="utf-8")),
        "template removed": lambda: (templates / "series.html").unlink(),
        "static file": lambda: (site.root / "static").mkdir() or (site.root / "static" / "extra.css").write_text("p {}"),
        "site.toml title": lambda: edit(site.config, 'title = "Test Notes"', 'title = "Other Notes"'),
        "site.toml paging": lambda: edit(site.config, "posts_per_page = 2", "posts_per_page = 1"),
        "deleted series part": lambda: (site.content / "posts" / "b.md").unlink(),
    }
    for name, change in edits.items():
        change()
        site.build()
        assert site.snapshot() == clean_build(site, tmp_path), name
        assert folders(site) == clean_folders(tmp_path), name


def test_template_edit_rerenders_the_pages_using_it_and_the_edit_back_restores_them(site, tmp_path):
    add_series(site)
    site.build()
    built = site.snapshot()
    templates = site.root / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "series.html"
    (templates / "series.html").write_text(builtin.read_text(encoding="utf-8").replace(
        "</h1>", "</h1><p class=\"edited\">edited</p>", 1), encoding="utf-8")
    report = site.build()
    assert "series/scratch/index.html" in report.rendered
    assert site.html("series/scratch/index.html").select_one("p.edited") is not None
    (templates / "series.html").unlink()
    site.build()
    assert site.snapshot() == built


def test_a_post_coming_out_is_published_by_the_first_build_after_its_date(site, tmp_path):
    from datetime import datetime, timezone
    add_series(site)
    site.post("e.md", post_text(title="Post e", date="2026-06-01T09:00:00+00:00", series="Scratch",
                                body=BODY.format(name="e")))
    before = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
    after = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)
    site.build(now=before)
    site.build(now=before)
    assert not (site.out / "posts" / "e.html").exists()
    site.build(now=after)
    assert "Part 4 of 4" in site.html("posts/e.html").select_one("nav.series-box").get_text()
    assert site.snapshot() == clean_build(site, tmp_path)


def test_prose_edit_highlights_no_code_again_and_a_code_edit_does(site, tmp_path):
    """The code of an edited post is taken as highlighted last time (Pygments is not even
    loaded) unless the code itself changed."""
    add_posts(site)
    site.build()
    script = textwrap.dedent(f"""
        import sys
        from labnotes.model import BuildOptions
        from labnotes.pipeline import build
        report = build({str(site.config)!r}, {str(site.content)!r}, {str(site.out)!r}, BuildOptions())
        print(report.documents_rendered, "pygments" in sys.modules)
    """)

    def build_in_a_fresh_process() -> str:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    edit(site.content / "posts" / "b.md", "Rest of b,", "Rest of b, edited,")
    assert build_in_a_fresh_process() == "1 False"
    assert site.snapshot() == clean_build(site, tmp_path)
    edit(site.content / "posts" / "b.md", 'print("b")', 'print("b", 2)')
    assert build_in_a_fresh_process() == "1 True"
    assert site.snapshot() == clean_build(site, tmp_path)
    assert "2" in site.html("posts/b.html").select_one(".codehilite").get_text()


def test_a_cache_file_rewritten_in_place_in_the_same_clock_tick_is_read_again(tmp_path):
    """A process remembers the cache files it read or wrote, by size, mtime and inode; a file
    rewritten with the same size in the same tick still differs in its checksum."""
    import os
    from labnotes.render_cache import read_blob, write_blob
    path = tmp_path / "blob.bin"
    write_blob(path, {"a": "one"})
    other = tmp_path / "other.bin"
    write_blob(other, {"a": "two"})
    stat = os.stat(path)
    with open(path, "r+b") as file:       # same inode, same size
        file.write(other.read_bytes())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))    # and the same mtime
    assert read_blob(path) == {"a": "two"}


# --- a blog of many posts: listings paginate, and feeds and llms-full.txt are patched ------------

def add_many_posts(site: TinySite, count: int = 60) -> None:
    """`count` posts, one a day from 1 January 2026, in four categories (two each), four posts
    a page, the last few in a series, and a page."""
    edit(site.config, "posts_per_page = 2", "posts_per_page = 4")
    names = ("Notes", "Maths", "Attention", "Training")
    for i in range(count):
        extra = {"series": "Scratch"} if i >= count - 3 else {}
        site.post(f"p{i:02d}.md", post_text(
            title=f"Post {i:02d}", date=f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}T09:00:00+00:00",
            categories=f"[{names[i % 4]}, {names[(i + 1) % 4]}]", summary=f'"Summary of {i:02d}."',
            body=BODY.format(name=f"p{i:02d}"), **extra))
    site.page("about.md", "---\ntitle: About\n---\nAbout this blog.\n")


def test_every_edit_of_a_blog_of_sixty_posts_leaves_the_output_of_a_clean_build(site, tmp_path):
    """Prose, title, date, category, a deleted and a new post: each incremental build equals a
    clean one byte for byte, its feeds and llms-full.txt patched piece by piece included."""
    add_many_posts(site)
    site.build()
    posts = site.content / "posts"
    edits = {
        "prose": lambda: edit(posts / "p30.md", "Rest of p30,", "Rest of p30, edited,"),
        "prose again": lambda: edit(posts / "p30.md", "Rest of p30, edited,", "Rest of p30, edited twice,"),
        "intro": lambda: edit(posts / "p07.md", "Intro of p07.", "Intro of p07, edited."),
        "title": lambda: edit(posts / "p12.md", "title: Post 12", "title: Post 12, retitled"),
        "date": lambda: edit(posts / "p20.md", "date: 2026-01-21", "date: 2026-02-27"),
        "category": lambda: edit(posts / "p41.md", "categories: [Maths, Attention]", "categories: [Notes]"),
        "summary gone": lambda: edit(posts / "p05.md", 'summary: "Summary of 05."\n', ""),
        "deleted post": lambda: (posts / "p33.md").unlink(),
        "deleted series part": lambda: (posts / "p58.md").unlink(),
        "new post": lambda: site.post("p99.md", post_text(title="Post 99", date="2026-01-15T12:00:00+00:00",
                                                          categories="[Fresh, Notes]", body=BODY.format(name="p99"))),
        "base_url": lambda: edit(site.config, 'base_url = "https://example.org/"', 'base_url = "https://example.org/blog/"'),
    }
    for name, change in edits.items():
        change()
        report = site.build()
        assert site.snapshot() == clean_build(site, tmp_path), name
        assert folders(site) == clean_folders(tmp_path), name
        if name == "prose":
            assert set(report.rendered) == {"posts/p30.html", "posts/p30.html.md", "feed.xml", "llms-full.txt",
                                            "category/attention/feed.xml", "category/training/feed.xml"}
    assert len(feedparser.parse((site.out / "feed.xml").read_bytes()).entries) == 59


def test_a_feed_edited_by_hand_is_made_whole_not_patched(site, tmp_path):
    """A file made of pieces is patched from its copy on disk only while that copy is the one
    the last build wrote."""
    add_many_posts(site, 12)
    site.build()
    feed = site.out / "feed.xml"
    feed.write_bytes(feed.read_bytes().replace(b"Post 05", b"Post XX"))
    edit(site.content / "posts" / "p08.md", "Rest of p08,", "Rest of p08, edited,")
    site.build()
    assert site.snapshot() == clean_build(site, tmp_path)


def test_prose_edit_reads_the_rendered_texts_of_few_shards(site, monkeypatch):
    """A rebuild reads every shard's names but the rendered texts of only the shards it needs:
    the edited post's highlighted code, and the shards it rewrites (the post's texts, mirror and
    feed item, each an old entry out and a new one in)."""
    import labnotes.render_cache
    add_many_posts(site)
    site.build()
    labnotes.render_cache._REMEMBERED.clear()    # as a new process would
    read = []
    real = labnotes.render_cache._read_shard
    monkeypatch.setattr(labnotes.render_cache, "_read_shard",
                        lambda path, loads, values: (values and "rendered" in path.parts and read.append(path.name),
                                                     real(path, loads, values))[1])
    edit(site.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    site.build()
    assert 1 <= len(read) <= 7 < len(list((site.root / ".cache" / "render" / "rendered").glob("*.bin")))


def test_a_site_written_on_several_processes_equals_one_written_on_one(site, tmp_path, monkeypatch):
    """The write stage makes files on several forked processes when there are many: a first
    build, and a rebuild that makes every page again (a template edit), give the bytes a serial
    write gives, and what the other processes made for the render cache serves the next build."""
    import labnotes.output
    import labnotes.pipeline
    from labnotes.render_cache import ShardedBlob
    add_many_posts(site, 12)
    serial = clean_build(site, tmp_path)
    monkeypatch.setattr(labnotes.output, "SPREAD_MIN_FILES", 1)
    monkeypatch.setattr(labnotes.output, "BATCH_FILES", 3)
    monkeypatch.setattr(labnotes.pipeline, "PARALLEL_MIN_DOCUMENTS", 1)
    site.build()
    assert site.snapshot() == serial and folders(site) == clean_folders(tmp_path)
    assert site.build().rendered == ()
    kinds = [name.split(":")[0] for name in ShardedBlob(site.root / ".cache" / "render" / "rendered").names()]
    assert kinds.count("mirror") == 13 and kinds.count("rss-item") == 12   # made on the other processes
    edit(site.content / "posts" / "p03.md", "Rest of p03,", "Rest of p03, edited,")
    report = site.build()
    assert report.documents_rendered == 1 and "llms-full.txt" in report.rendered
    templates = site.root / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "base.html"
    (templates / "base.html").write_text(builtin.read_text(encoding="utf-8").replace(
        '<main id="main">', '<main id="main" class="custom">'), encoding="utf-8")
    site.build()
    assert site.snapshot() == clean_build(site, tmp_path) and folders(site) == clean_folders(tmp_path)


def test_an_error_on_one_of_several_processes_leaves_the_last_site(site, monkeypatch):
    """A page that fails to render on a forked process fails the build as it would on one
    process, and the site on disk stays as it was, with no scratch file left behind."""
    import labnotes.output
    add_many_posts(site, 12)
    site.build()
    built = site.snapshot()
    monkeypatch.setattr(labnotes.output, "SPREAD_MIN_FILES", 1)
    monkeypatch.setattr(labnotes.output, "BATCH_FILES", 3)
    templates = site.root / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "post.html"
    (templates / "post.html").write_text(builtin.read_text(encoding="utf-8").replace(
        "{% block main %}", "{% block main %}{{ no_such_name }}"), encoding="utf-8")
    messages = []
    for _ in range(2):   # the error is the same one each time: the first file, in order, that fails
        try:
            site.build()
        except Exception as error:   # noqa: BLE001 - a BuildError, or Jinja's own error
            messages.append(str(error))
    assert len(messages) == 2 and messages[0] == messages[1] and "no_such_name" in messages[0]
    assert site.snapshot() == built
    assert not [p for p in site.out.rglob(".labnotes-new*")]

"""An edit of prose is patched into the last site (labnotes/patch.py): only the files showing
the edited documents are made, and the site is byte for byte what a full build makes.

Each build here runs the real pipeline on a small site. A build remembers its inputs only when
none was saved within a clock tick of it (`input_manifest.RACY_NS`), so `settle` dates every
input a second back before each build, as the time between saving a file and building does.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import TinySite, post_text
from test_incremental import BODY, add_many_posts, clean_build, clean_folders, edit, folders, use_lab_records

SHOWING_P30 = {"posts/p30.html", "posts/p30.html.md", "feed.xml", "llms-full.txt", "category/attention/feed.xml",
               "category/training/feed.xml"}


def settle(site: TinySite) -> None:
    """Date the input files saved in the last half second a second back."""
    now = time.time_ns()
    for path in [site.config, *site.content.rglob("*"), *(site.root / "templates").rglob("*"),
                 *(site.root / "labcode").rglob("*")]:
        if path.is_file() and path.stat().st_mtime_ns > now - 500_000_000:
            os.utime(path, ns=(now - 1_000_000_000, now - 1_000_000_000))


def build(site: TinySite, patch: bool = True, **options):
    from labnotes.model import BuildOptions
    from labnotes.pipeline import build as build_site
    settle(site)
    return build_site(site.config, site.content, site.out, BuildOptions(**options), patch=patch)


def output_keys(site: TinySite) -> dict[str, str]:
    """The key of every file of the output manifest: what the next build compares."""
    from labnotes.render_cache import CACHE_DIR, RenderCache, read_blob
    manifest = read_blob(RenderCache.manifest_path_in(site.root / CACHE_DIR, site.out))
    return {path: entry[0] for path, entry in manifest.items()}


def twin_of(site: TinySite, tmp_path: Path) -> TinySite:
    """A copy of the project, its caches and output included."""
    twin = TinySite.__new__(TinySite)
    twin.root = tmp_path / "twin"
    shutil.copytree(site.root, twin.root, ignore=shutil.ignore_patterns("twin", "clean"))
    twin.config, twin.content, twin.out = twin.root / "site.toml", twin.root / "content", twin.root / "output"
    return twin


@pytest.fixture
def blog(tmp_path) -> TinySite:
    """Sixty posts in four categories, a series and a page, built once."""
    (tmp_path / "blog").mkdir()
    site = TinySite(tmp_path / "blog")
    add_many_posts(site)
    site.page("notes.md", "---\ntitle: Notes\nsummary: Notes on the blog.\n---\nFirst part.\n\nSecond part.\n")
    report = build(site)
    assert not report.patched
    return site


def test_a_prose_edit_is_patched_and_equals_a_full_build(blog, tmp_path):
    """The patch makes exactly the post's page and mirror, the three feeds carrying it and
    llms-full.txt; the site and the keys it leaves for the next build equal a full build's."""
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    settle(blog)
    twin = twin_of(blog, tmp_path)
    report = build(blog)
    assert report.patched and set(report.rendered) == SHOWING_P30
    assert report.documents_rendered == 1 and report.changed == len(SHOWING_P30)
    full = build(twin, patch=False)
    assert not full.patched and SHOWING_P30 <= set(full.rendered)
    assert blog.snapshot() == twin.snapshot() == clean_build(blog, tmp_path)
    # A full build of the same site finds every file keyed as the patch left it.
    keys = output_keys(blog)
    assert build(blog, patch=False).rendered == () and output_keys(blog) == keys
    assert "Rest of p30, edited," in (blog.out / "feed.xml").read_text(encoding="utf-8")


def test_edits_in_a_row_are_each_patched_and_equal_a_clean_build(blog, tmp_path):
    """Edits patched one after another (the snapshot of the last full build and the edits
    since), two posts at once, a page, a post in a series, a new link, and an edit undone."""
    posts = blog.content / "posts"
    edits = {
        "prose": lambda: edit(posts / "p30.md", "Rest of p30,", "Rest of p30, edited,"),
        "prose again": lambda: edit(posts / "p30.md", "Rest of p30, edited,", "Rest of p30, edited twice,"),
        "another post": lambda: edit(posts / "p10.md", "Rest of p10,", "Rest of p10, edited,"),
        "two posts": lambda: (edit(posts / "p11.md", "Rest of p11,", "Rest of p11, edited,"),
                              edit(posts / "p12.md", "Rest of p12,", "Rest of p12, edited,")),
        "a page": lambda: edit(blog.content / "pages" / "notes.md", "Second part.", "Second part, edited."),
        "an intro, shown on the index": lambda: edit(posts / "p07.md", "Intro of p07.", "Intro of p07, edited."),
        "a post in the series": lambda: edit(posts / "p59.md", "Rest of p59,", "Rest of p59, edited,"),
        "a line and a link": lambda: edit(posts / "p40.md", "Rest of p40,",
                                          "Rest of p40,\nwith a [link](p05.html) and"),
        "undone": lambda: edit(posts / "p30.md", "Rest of p30, edited twice,", "Rest of p30,"),
    }
    for name, change in edits.items():
        change()
        report = build(blog)
        assert report.patched, name
        assert blog.snapshot() == clean_build(blog, tmp_path), name
        assert folders(blog) == clean_folders(tmp_path), name
        if name.startswith("an intro"):   # p07 is the 53rd post, newest first: page 14 at 4 a page
            assert "page/14/index.html" in report.rendered and "index.html" not in report.rendered
    assert report.rendered and "posts/p30.html" in report.rendered


def test_edits_a_patch_does_not_cover_are_built_in_full(blog, tmp_path):
    """What others show of a post (its title, its anchors, a summary), post references, new
    and deleted posts, templates, site.toml, and a site edited by hand: a full build each
    time, equal to a clean one."""
    posts = blog.content / "posts"
    templates = blog.root / "templates"
    builtin = Path(__file__).resolve().parents[2] / "templates"
    edits = {
        "a summary drawn from the prose": lambda: edit(blog.content / "pages" / "about.md", "About this blog.",
                                                       "About the blog."),
        "title": lambda: edit(posts / "p12.md", "title: Post 12", "title: Post 12, retitled"),
        "a heading": lambda: edit(posts / "p13.md", "Rest of p13,", "## A new part\n\nRest of p13,"),
        "a post reference": lambda: edit(posts / "p14.md", "Rest of p14,", "Rest of p14, after [](post:p05),"),
        "new post": lambda: blog.post("p99.md", post_text(title="Post 99", date="2026-01-15T12:00:00+00:00",
                                                          body=BODY.format(name="p99"))),
        "deleted post": lambda: (posts / "p33.md").unlink(),
        "template": lambda: (templates.mkdir(exist_ok=True), (templates / "post.html").write_text(
            (builtin / "post.html").read_text(encoding="utf-8") + "<!-- edited -->\n", encoding="utf-8")),
        "site.toml": lambda: edit(blog.config, 'title = "Test Notes"', 'title = "Other Notes"'),
        "feed edited by hand": lambda: (
            (blog.out / "feed.xml").write_bytes((blog.out / "feed.xml").read_bytes().replace(b"Post 05", b"Post XX")),
            edit(posts / "p08.md", "Rest of p08,", "Rest of p08, edited,")),
        "page deleted by hand": lambda: ((blog.out / "posts" / "p09.html").unlink(),
                                         edit(posts / "p09.md", "Rest of p09,", "Rest of p09, edited,")),

    }
    for name, change in edits.items():
        change()
        report = build(blog)
        assert not report.patched, name
        assert blog.snapshot() == clean_build(blog, tmp_path), name
    edit(posts / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    assert build(blog).patched   # after a full build, the next prose edit is patched again


def test_a_file_edited_by_hand_beside_a_patch_stays_until_a_build_that_is_no_patch(blog, tmp_path):
    """A patch looks only at the files it writes, so patches leave a file edited by hand
    elsewhere as it is; a build with nothing changed finds the output unlike the last build's
    record and builds in full, mending it."""
    (blog.out / "posts" / "p02.html").write_text("mine", encoding="utf-8")
    (blog.out / "stray.txt").write_text("mine", encoding="utf-8")
    for name in ("p10", "p11"):
        edit(blog.content / "posts" / f"{name}.md", f"Rest of {name},", f"Rest of {name}, edited,")
        assert build(blog).patched
    assert (blog.out / "posts" / "p02.html").read_text(encoding="utf-8") == "mine"
    report = build(blog)
    assert not report.patched and "posts/p02.html" in report.rendered
    assert blog.snapshot() == clean_build(blog, tmp_path)


def test_when_the_edits_cannot_be_saved_the_next_build_is_a_full_one(blog, tmp_path, monkeypatch):
    """A patch that cannot keep what it patched (a full disk) leaves no record to patch from:
    the next edit of a post sharing its feeds is built in full, and the site is a clean build's."""
    import labnotes.patch
    saving = labnotes.patch.write_blob
    monkeypatch.setattr(labnotes.patch, "write_blob",
                        lambda path, *args, **kwargs: False if path.name.endswith("-edits.bin") else saving(path, *args, **kwargs))
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    assert build(blog).patched
    monkeypatch.setattr(labnotes.patch, "write_blob", saving)
    edit(blog.content / "posts" / "p34.md", "Rest of p34,", "Rest of p34, edited,")
    assert not build(blog).patched
    assert blog.snapshot() == clean_build(blog, tmp_path)


def test_a_clock_set_back_holds_back_what_it_must_rather_than_patch(site, tmp_path):
    """A build whose clock (`now`) comes before a post it published builds in full and holds
    that post back, as a clean build with that clock does."""
    from datetime import datetime, timezone
    site.post("old.md", post_text(title="Old", date="2026-03-01", body=BODY.format(name="old")))
    site.post("new.md", post_text(title="New", date="2026-05-01", body=BODY.format(name="new")))
    build(site, now=datetime(2026, 6, 1, tzinfo=timezone.utc))
    assert (site.out / "posts" / "new.html").exists()
    edit(site.content / "posts" / "old.md", "Rest of old,", "Rest of old, edited,")
    report = build(site, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
    assert not report.patched and not (site.out / "posts" / "new.html").exists()
    assert [doc.slug for doc in report.held_back] == ["new"]


def test_a_broken_link_or_bad_input_in_a_patched_post_fails_as_a_full_build_does(blog):
    """The links of an edited post are checked; an error names the file and line and leaves
    the last site as it was."""
    from labnotes.errors import BuildError
    before = blog.snapshot()
    path = blog.content / "posts" / "p30.md"
    edit(path, "Rest of p30,", "Rest of p30, see [this](missing.html),")
    with pytest.raises(BuildError) as raised:
        build(blog)
    assert raised.value.path == path and raised.value.line is not None and "missing.html" in raised.value.message
    assert blog.snapshot() == before
    edit(path, "see [this](missing.html),", "see ![a figure](images/none.png),")
    with pytest.raises(BuildError) as raised:
        build(blog)
    assert raised.value.path == path and "images/none.png" in raised.value.message
    assert blog.snapshot() == before
    edit(path, "see ![a figure](images/none.png),", "mended,")
    assert build(blog).patched and "mended" in (blog.out / "posts" / "p30.html").read_text(encoding="utf-8")


def test_a_patched_build_is_remembered_and_full_builds_never_patch(blog):
    """After a patch nothing changed, so the next build stops after a look at its inputs;
    `patch=False` (`build --full`) builds in full."""
    from labnotes.input_manifest import unchanged_build
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    assert build(blog).patched
    assert unchanged_build(blog.config, blog.content, blog.out) is not None
    edit(blog.content / "posts" / "p31.md", "Rest of p31,", "Rest of p31, edited,")
    report = build(blog, patch=False)
    assert not report.patched and "posts/p31.html" in report.rendered


def test_posts_with_labs_are_built_in_full_and_the_others_patched_beside_them(site, tmp_path, monkeypatch):
    """A post whose block comes from labcode is built in full when its prose changes; a prose
    edit of another post is patched, and its page shows the site's labs link as a full build's."""
    use_lab_records(monkeypatch)
    labcode = site.root / "labcode"
    labcode.mkdir()
    (labcode / "__init__.py").write_text("", encoding="utf-8")
    (labcode / "demo.py").write_text("def shown():\n    return 1\n", encoding="utf-8")
    site.post("a.md", post_text(title="Post a", date="2026-03-01",
                                body="Source:\n\n```labsource\nlabcode.demo:shown\n```\n\nMore prose.\n"))
    site.post("b.md", post_text(title="Post b", date="2026-03-02", body=BODY.format(name="b")))
    build(site)
    edit(site.content / "posts" / "a.md", "More prose.", "More prose, edited.")
    assert not build(site).patched
    edit(site.content / "posts" / "b.md", "Rest of b,", "Rest of b, edited,")
    assert build(site).patched
    assert site.snapshot() == clean_build(site, tmp_path)


def test_old_copies_of_big_files_are_freed_aside_and_none_is_left(blog, tmp_path, monkeypatch):
    """The old copy of each big file a build replaces (every file, here) is freed by a process
    of its own, from a folder in the cache that then goes; the site is as a full build makes it."""
    import labnotes.output
    monkeypatch.setattr(labnotes.output, "BIG_FILE", 1)
    before = {path: (blog.out / path).stat().st_ino for path in SHOWING_P30}
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    assert build(blog).patched
    assert all((blog.out / path).stat().st_ino != inode for path, inode in before.items())
    assert blog.snapshot() == clean_build(blog, tmp_path)
    cache = blog.root / ".cache" / "render"
    deadline = time.monotonic() + 20
    while list(cache.glob("attic-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(cache.glob("attic-*"))


def test_on_a_site_whose_labs_publish_values_an_edit_is_linted_as_a_full_build_lints_it(site, monkeypatch):
    """Prose that copies a lab's number is a warning whether the build patched or not; the
    warnings of the posts not edited stay, in site order, and the next build says the same."""
    import labnotes.pipeline
    from labnotes.input_manifest import unchanged_build
    from labnotes.markdown import render_code_block
    from labnotes.model import LabCounts, LabStage
    from test_copied_numbers import TRAIN

    stage = LabStage(render_code_block, counts=LabCounts(cached=1), published=(TRAIN,))
    monkeypatch.setattr(labnotes.pipeline, "lab_stage", lambda *args, **kwargs: stage)
    site.post("a.md", post_text(title="Post a", date="2026-03-01", body="Intro.\n\nIt ends at 3.75.\n"))
    site.post("b.md", post_text(title="Post b", date="2026-03-02", body=BODY.format(name="b")))
    site.post("c.md", post_text(title="Post c", date="2026-03-03", body="Intro.\n\nThe perplexity was 42.5.\n"))
    first = build(site)
    assert [w.path.name for w in first.warnings] == ["c.md", "a.md"]   # newest first
    edit(site.content / "posts" / "b.md", "Rest of b,", "Rest of b, with 20,758 training tokens,")
    patched = build(site)
    assert patched.patched
    assert [(w.path.name, w.line) for w in patched.warnings] == [("c.md", 8), ("b.md", 10), ("a.md", 8)]
    assert "20,758" in patched.warnings[1].message
    assert unchanged_build(site.config, site.content, site.out).warnings == patched.warnings
    assert build(site, patch=False).warnings == patched.warnings
    edit(site.content / "posts" / "b.md", "with 20,758 training tokens,", "with many tokens,")
    assert [w.path.name for w in build(site).warnings] == ["c.md", "a.md"]


def test_a_snapshot_of_another_layout_or_a_patch_gone_wrong_means_a_full_build(blog, tmp_path, monkeypatch):
    """A snapshot an older Lab Notes wrote is not read, and a patch that fails in any way
    leaves the build to a full one: the site is a clean build's either way."""
    import pickle

    import labnotes.patch
    from labnotes.render_cache import read_blob, write_blob
    (path,) = (blog.root / ".cache" / "render").glob("snapshot-*[0-9a-f].bin")
    older = read_blob(path, loads=pickle.loads)
    write_blob(path, {**older, "format": labnotes.patch.SNAPSHOT_FORMAT - 1,
                      "sources": {source: place[0] for source, place in older["sources"].items()}}, dumps=pickle.dumps)
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    assert not build(blog).patched
    assert blog.snapshot() == clean_build(blog, tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the patch")
    monkeypatch.setattr(labnotes.patch, "files_showing", broken)
    edit(blog.content / "posts" / "p31.md", "Rest of p31,", "Rest of p31, edited,")
    assert not build(blog).patched
    assert blog.snapshot() == clean_build(blog, tmp_path)


def test_build_why_says_the_edit_was_patched(blog, capsys):
    """`build.py build --why` says why a build patched instead of building in full."""
    import build as cli
    edit(blog.content / "posts" / "p30.md", "Rest of p30,", "Rest of p30, edited,")
    settle(blog)
    code = cli.main(["build", "--config", str(blog.config), "--content", str(blog.content), "--out", str(blog.out),
                     "--why"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("built 87 pages")
    assert ("why: only the prose of 1 document changed, so the files showing it were patched into the last site "
            "and no lab reruns") in captured.err
    assert "Rest of p30, edited," in (blog.out / "posts" / "p30.html").read_text(encoding="utf-8")

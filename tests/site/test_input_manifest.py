"""A build with nothing to do stops after looking at its inputs (SPEC 8), and never when
something it depends on changed: the input manifest, checked kind of input by kind of input.

`unchanged_build` is what `build.py build` asks first: a report means "the site on disk is
what these inputs make", None means a real build. Files are dated a minute back before the
recorded build, as files written long before a build are (one saved in the same clock tick as
a build is looked at again, see the racy-file test).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import build as cli
from conftest import TinySite, post_text
from labnotes import input_manifest
from labnotes.input_manifest import unchanged_build
from labnotes.model import BuildOptions

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def age(folder: Path, seconds: float = 60) -> None:
    """Date the input files under `folder` `seconds` back, as if written well before the build."""
    when = time.time() - seconds
    for path in [folder, *folder.rglob("*")]:
        if not {"output", ".cache"} & set(path.relative_to(folder).parts):
            os.utime(path, (when, when))


def settled_build(site: TinySite, **options):
    """A build of inputs written a while ago: the one the next build can compare with."""
    age(site.root)
    return site.build(**options)


def unchanged(site: TinySite, **options):
    return unchanged_build(site.config, site.content, site.out, BuildOptions(**options))


def small_site(site: TinySite) -> TinySite:
    site.post("a.md", post_text(title="Post a", date="2026-03-01", body="Intro of a.\n\n<!--more-->\n\nRest of a."))
    site.post("b.md", post_text(title="Post b", date="2026-03-02", categories="[Maths]", body="Body of b."))
    site.page("about.md", "---\ntitle: About\n---\nAbout this blog.\n")
    return site


def test_nothing_changed_gives_the_last_builds_report_without_building(site):
    small_site(site)
    report = settled_build(site, now=NOW)
    again = unchanged(site, now=NOW)
    assert again is not None
    assert again.summary().split(" in ")[0] == report.summary().split(" in ")[0]   # "built P pages"
    assert again.rendered == () and again.changed == 0


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# Each input kind the site depends on, changed the way an author would change it.
CHANGES = {
    "post prose, same size": lambda s: edit(s.content / "posts" / "a.md", "Rest of a.", "Rest of z."),
    "post front matter": lambda s: edit(s.content / "posts" / "b.md", "[Maths]", "[Notes]"),
    "new post": lambda s: s.post("c.md", post_text(title="Post c", date="2026-03-03")),
    "deleted post": lambda s: (s.content / "posts" / "b.md").unlink(),
    "page": lambda s: edit(s.content / "pages" / "about.md", "this blog", "the blog"),
    "new image": lambda s: write(s.content / "images" / "x.svg", "<svg/>"),
    "site.toml": lambda s: edit(s.config, "posts_per_page = 2", "posts_per_page = 3"),
    "site template": lambda s: write(s.root / "templates" / "base.html",
                                     (REPO / "templates" / "base.html").read_text(encoding="utf-8")),
    "site static file": lambda s: write(s.root / "static" / "extra.css", "body {}"),
    "labcode source": lambda s: write(s.root / "labcode" / "demo.py", "def f():\n    return 1\n"),
    "lab cache": lambda s: write(s.root / "labcache" / "demo-f-0123.cpu.json", "{}"),
    "output file edited": lambda s: (s.out / "posts" / "a.html").write_text("tampered", encoding="utf-8"),
    "output file deleted": lambda s: (s.out / "posts" / "b.html.md").unlink(),
    "stray output file": lambda s: (s.out / "stray.txt").write_text("not ours", encoding="utf-8"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_to_any_input_or_to_the_output_means_a_real_build(site, tmp_path, change):
    small_site(site)
    settled_build(site, now=NOW)
    assert unchanged(site, now=NOW) is not None
    CHANGES[change](site)
    assert unchanged(site, now=NOW) is None
    settled_build(site, now=NOW)
    assert unchanged(site, now=NOW) is not None   # the real build that follows is remembered in turn


def test_a_change_to_the_generator_itself_means_a_real_build(site, tmp_path, monkeypatch):
    generator = tmp_path / "generator"
    write(generator / "pages.py", "# the generator's code\n")
    monkeypatch.setattr(input_manifest, "GENERATOR", generator)
    small_site(site)
    settled_build(site, now=NOW)
    assert unchanged(site, now=NOW) is not None
    write(generator / "pages.py", "# the generator's code, edited\n")
    assert unchanged(site, now=NOW) is None


@pytest.mark.parametrize("option", [{"future": True}, {"drafts": True}, {"quick": True}, {"device": "cpu"}])
def test_other_build_options_mean_a_real_build(site, option):
    small_site(site)
    settled_build(site, now=NOW)
    assert unchanged(site, now=NOW, **option) is None


@pytest.mark.parametrize("option", [{"why": True}, {"jobs": 3}, {"keep_going": True}])
def test_options_that_change_how_labs_run_or_are_reported_keep_the_shortcut(site, option):
    # The same inputs make the same site whichever of these is given (a build where a lab
    # failed under --keep-going is never recorded), so none of them means a real build.
    small_site(site)
    settled_build(site, now=NOW)
    assert unchanged(site, now=NOW, **option) is not None
    settled_build(site, now=NOW, **option)
    assert unchanged(site, now=NOW) is not None


def test_a_held_back_post_comes_out_when_the_clock_passes_its_date(site):
    small_site(site)
    site.post("soon.md", post_text(title="Soon", date="2026-03-20T09:00:00+00:00"))
    settled_build(site, now=NOW)
    assert unchanged(site, now=datetime(2026, 3, 20, 8, 59, tzinfo=timezone.utc)) is not None
    assert unchanged(site, now=datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)) is None
    site.build(now=datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc))
    assert (site.out / "posts" / "soon.html").exists()


def test_an_unchanged_build_still_says_what_it_held_back(site, run_cli):
    small_site(site)
    site.post("far.md", post_text(title="Far", date="2999-01-01"))
    age(site.root)
    first = run_cli("build")
    again = run_cli("build")
    assert again.code == 0 and "held back 1 future post" in again.err
    assert again.out.split(" in ")[0] == first.out.split(" in ")[0]


def test_a_file_saved_in_the_same_clock_tick_as_the_build_is_looked_at_again(site):
    """A file's mtime can stay the same across an edit made in the tick it was read in, so such
    a file is never trusted: the next build reads it (git's "racily clean" rule)."""
    small_site(site)
    age(site.root)
    now_ns = time.time_ns() + 5_000_000      # as if saved a moment after the build started
    os.utime(site.content / "posts" / "a.md", ns=(now_ns, now_ns))
    site.build(now=NOW)
    assert unchanged(site, now=NOW) is None


def test_failed_build_keeps_the_site_and_is_not_taken_for_an_unchanged_one(site):
    from labnotes.errors import BuildError
    small_site(site)
    settled_build(site, now=NOW)
    built = site.snapshot()
    edit(site.content / "posts" / "a.md", "Rest of a.", "Rest of a, $\\frac{1}{$.")
    with pytest.raises(BuildError):
        site.build(now=NOW)
    assert unchanged(site, now=NOW) is None and site.snapshot() == built
    with pytest.raises(BuildError):
        site.build(now=NOW)


def test_full_builds_even_when_nothing_changed(site, run_cli):
    small_site(site)
    age(site.root)
    run_cli("build")
    rendered = site.root / ".cache" / "render" / "rendered"
    shutil.rmtree(rendered)   # only a real build notices
    assert run_cli("build").code == 0
    assert not rendered.exists()
    assert run_cli("build", "--full").code == 0
    assert any(rendered.glob("*.bin"))


def test_why_with_nothing_changed_says_so_and_builds_nothing(site, run_cli):
    small_site(site)
    age(site.root)
    first = run_cli("build")
    rendered = site.root / ".cache" / "render" / "rendered"
    shutil.rmtree(rendered)   # only a real build notices
    again = run_cli("build", "--why")
    assert again.code == 0 and not rendered.exists()
    assert again.err.splitlines() == ["why: nothing changed since the last build, so nothing is built "
                                      "and no lab reruns"]
    assert again.out.split(" in ")[0] == first.out.split(" in ")[0]


def test_an_unchanged_build_imports_no_renderer_nor_lab_engine(site):
    """The whole point: `python build.py` with nothing to do loads none of the heavy parts."""
    small_site(site)
    age(site.root)
    args = ["build", "--config", str(site.config), "--content", str(site.content), "--out", str(site.out)]
    script = (f"import sys; sys.argv[1:] = {args!r}; import build; status = build.main();"
              "heavy = {'torch', 'numpy', 'matplotlib', 'jinja2', 'markdown2', 'pygments', 'feedgen', 'lxml',"
              " 'latex2mathml', 'markupsafe', 'labnotes.pipeline', 'labnotes.labs.stage', 'labnotes.pages'};"
              "print(status, sorted(heavy & set(sys.modules)))")

    def run() -> str:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert run() != "0 []"          # the first build renders
    assert run() == "0 []"
    edit(site.content / "posts" / "a.md", "Rest of a.", "Rest of a, edited.")
    assert run() != "0 []"


@pytest.fixture
def run_cli(site, capsys, monkeypatch):
    monkeypatch.chdir(site.root)

    class Result:
        def __init__(self, code, out, err):
            self.code, self.out, self.err = code, out, err

    def run(*args):
        capsys.readouterr()
        code = cli.main([*args, "--config", "site.toml", "--content", "content", "--out", "output"])
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


def test_serve_on_an_up_to_date_site_starts_without_building_and_builds_after_an_edit(site, run_cli, monkeypatch):
    """`serve` asks the manifest first too: starting it on a site built a moment ago serves at
    once; the first change it sees is built for real."""
    import labnotes.pipeline
    import labnotes.serve

    small_site(site)
    age(site.root)
    assert run_cli("build").code == 0
    builds, rebuilds = [], []
    real_build = labnotes.pipeline.build
    monkeypatch.setattr(labnotes.pipeline, "build", lambda *a, **k: builds.append(a) or real_build(*a, **k))

    def serve(server, rebuild, watch):   # one edit, then stop
        server.server_close()
        edit(site.content / "posts" / "a.md", "Rest of a.", "Rest of a, served.")
        rebuild()
        rebuilds.append(True)
    monkeypatch.setattr(labnotes.serve, "serve", serve)
    result = run_cli("serve", "--port", "0")
    assert result.code == 0 and rebuilds and len(builds) == 1
    assert "Rest of a, served." in (site.out / "posts" / "a.html").read_text(encoding="utf-8")
    builds.clear()
    monkeypatch.setattr(labnotes.serve, "serve", lambda server, rebuild, watch: server.server_close())
    assert run_cli("serve", "--port", "0", "--drafts").code == 0   # other options: a real first build
    assert len(builds) == 1


def test_a_build_that_starts_from_the_manifest_checks_look_is_not_fooled_by_an_edit_after_it(site):
    """`build` takes the inputs' stats that `unchanged_build` saw a moment before (no second
    look at 10,000 files); a file saved in that moment is built next time, never taken as
    unchanged."""
    from labnotes.input_manifest import Look
    from labnotes.pipeline import build
    small_site(site)
    settled_build(site, now=NOW)
    edit(site.content / "posts" / "a.md", "Rest of a.", "Rest of z.")
    age(site.root)
    look = Look()
    assert unchanged_build(site.config, site.content, site.out, BuildOptions(now=NOW), look) is None and look.stats
    edit(site.content / "posts" / "a.md", "Rest of z.", "Rest of y.")   # after the look, before the build
    age(site.root, 30)
    build(site.config, site.content, site.out, BuildOptions(now=NOW), look=look)
    assert unchanged(site, now=NOW) is None
    site.build(now=NOW)
    assert unchanged(site, now=NOW) is not None
    assert "Rest of y." in (site.out / "posts" / "a.html").read_text(encoding="utf-8")

"""What a build publishes: posts dated in the future wait for their date (or `--future`),
drafts only ever appear under `serve --drafts`."""
from __future__ import annotations

from datetime import datetime, timezone

import feedparser
import pytest

import build as cli
from conftest import post_text
from labnotes.errors import BuildError

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


def published_urls(site) -> set[str]:
    """Every place a post can show up: pages, feed, sitemap, llms.txt, mirrors."""
    found = {p.relative_to(site.out).as_posix() for p in site.out.rglob("*.html")}
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    found |= {e.link for e in feed.entries}
    found |= {line for line in (site.out / "sitemap.xml").read_text().split() if "posts/" in line}
    found |= {line for line in (site.out / "llms.txt").read_text().splitlines() if "posts/" in line}
    return found


def mentions(found: set[str], slug: str) -> bool:
    return any(f"posts/{slug}.html" in item for item in found)


def test_a_post_dated_after_the_builds_clock_is_held_back(site):
    site.post("past.md", post_text(title="Past", date="2026-03-10T11:59:00+00:00"))
    site.post("soon.md", post_text(title="Soon", date="2026-03-10T12:01:00+00:00", series="S"))
    report = site.build(now=NOW)
    found = published_urls(site)
    assert mentions(found, "past") and not mentions(found, "soon")
    assert not (site.out / "posts/soon.html.md").exists() and not (site.out / "series").exists()
    assert "Soon" not in (site.out / "llms-full.txt").read_text()
    assert [d.title for d in report.held_back] == ["Soon"]
    assert report.held_back_note() == "held back 1 future post (publish it with --future)"


def test_future_publishes_posts_dated_after_the_clock(site):
    site.post("soon.md", post_text(title="Soon", date="2026-04-01"))
    report = site.build(now=NOW, future=True)
    assert mentions(published_urls(site), "soon") and report.held_back == ()


def test_the_post_comes_out_once_the_clock_passes_its_date(site):
    site.post("soon.md", post_text(title="Soon", date="2026-04-01"))
    site.build(now=NOW)
    assert not (site.out / "posts/soon.html").exists()
    site.build(now=datetime(2026, 4, 1, tzinfo=timezone.utc))   # midnight in Paris was 22:00 UTC the day before
    assert (site.out / "posts/soon.html").exists()


def test_a_date_without_time_is_midnight_in_the_sites_zone(site):
    # Europe/Paris is UTC+1 in March: 2026-03-11 starts at 23:00 UTC on the 10th
    site.post("tomorrow.md", post_text(title="Tomorrow", date="2026-03-11"))
    assert site.build(now=datetime(2026, 3, 10, 22, 59, tzinfo=timezone.utc)).held_back
    assert not site.build(now=datetime(2026, 3, 10, 23, 0, tzinfo=timezone.utc)).held_back


def test_held_back_note_counts_posts_and_pages(site):
    site.post("a.md", post_text(title="A", date="2026-05-01"))
    site.post("b.md", post_text(title="B", date="2026-06-01"))
    site.page("launch.md", "---\ntitle: Launch\ndate: 2026-05-01\n---\nSoon.\n")
    report = site.build(now=NOW)
    assert report.held_back_note() == "held back 2 future posts and 1 future page (publish them with --future)"
    assert not (site.out / "launch").exists()


def test_a_held_back_post_is_still_checked(site):
    # a build that passes today must not start failing the day the post comes out
    site.post("2026-01-01-x.md", post_text(title="Now", date="2026-01-01"))
    site.post("2026-09-01-x.md", post_text(title="Later", date="2026-09-01"))
    with pytest.raises(BuildError, match="two posts have the slug `x`"):
        site.build(now=NOW)


def test_drafts_are_never_published_by_a_build_but_previewed_with_drafts(site):
    site.post("wip.md", post_text(title="Work in progress", date="2026-03-01", draft="true"))
    site.post("done.md", post_text(title="Done", date="2026-03-02"))
    site.build(now=NOW)
    assert not mentions(published_urls(site), "wip")
    site.build(now=NOW, drafts=True)
    assert mentions(published_urls(site), "wip")
    assert site.html("posts/wip.html").select_one(".byline .draft-badge").get_text() == "Draft"
    assert site.html("posts/done.html").select_one(".draft-badge") is None


@pytest.fixture
def run_cli(site, capsys, monkeypatch):
    monkeypatch.chdir(site.root)

    def run(*args):
        capsys.readouterr()
        code = cli.main([*args, "--config", "site.toml", "--content", "content", "--out", "output"])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_build_says_how_many_posts_it_held_back_and_keeps_the_summary_last(site, run_cli):
    site.post("now.md", post_text(title="Now", date="2026-01-01"))
    site.post("far.md", post_text(title="Far", date="2999-01-01"))
    site.post("farther.md", post_text(title="Farther", date="2999-02-01"))
    code, out, err = run_cli("build")
    assert code == 0
    assert err == "held back 2 future posts (publish them with --future)\n"
    last = out.strip().splitlines()[-1]
    assert last.startswith("built ") and last.endswith("s; labs: 0 run, 0 cached, 0 failed")
    assert not (site.out / "posts/far.html").exists()
    code, out, err = run_cli("build", "--future")
    assert code == 0 and err == "" and (site.out / "posts/far.html").exists()


def test_build_has_no_drafts_option(site, run_cli):
    site.post("now.md", post_text())
    assert run_cli("build", "--drafts")[0] == 2


def test_serve_drafts_and_future_preview_them(site, run_cli, monkeypatch):
    import labnotes.serve

    def serve(server, rebuild, watch):   # build once, do not wait for edits
        served.append(server.server_address)
        server.server_close()
    served = []
    monkeypatch.setattr(labnotes.serve, "serve", serve)
    site.post("wip.md", post_text(title="WIP", date="2026-01-01", draft="true"))
    site.post("far.md", post_text(title="Far", date="2999-01-01"))
    code, out, err = run_cli("serve", "--port", "0")
    assert code == 0 and served and "held back 1 future post" in err
    assert not (site.out / "posts/wip.html").exists() and not (site.out / "posts/far.html").exists()
    code, out, err = run_cli("serve", "--port", "0", "--drafts", "--future")
    assert code == 0 and "held back" not in err
    assert (site.out / "posts/wip.html").exists() and (site.out / "posts/far.html").exists()


def test_serve_whose_first_build_fails_with_no_earlier_site_says_there_is_nothing_to_show(site, run_cli, monkeypatch):
    import labnotes.serve

    monkeypatch.setattr(labnotes.serve, "serve", lambda server, rebuild, watch: server.server_close())
    site.post("bad.md", post_text(date="not a date"))
    code, out, err = run_cli("serve", "--port", "0")
    lines = err.strip().splitlines()
    assert code == 0 and "bad.md" in lines[0] and "error" in lines[0]
    assert lines[1].startswith("serve: no site to show until a build succeeds")


def test_a_draft_is_checked_like_a_published_post_so_previewing_it_cannot_break(site, run_cli):
    site.post("a.md", post_text(title="A", slug="same"))
    site.post("wip.md", post_text(title="WIP", slug="same", draft="true"))
    code, out, err = run_cli("build")
    assert code == 1 and "wip.md" in err and "same" in err and len(err.strip().splitlines()) == 1

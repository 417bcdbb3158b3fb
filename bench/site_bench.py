"""Site build benchmark (SPEC 8): Lab Notes vs Pelican vs Hugo on the same synthetic posts.

    .venv/bin/python bench/site_bench.py [--posts 1000] [--keep DIR] [--no-peers]

Writes N posts (code block, table, footnote, two categories each) in each tool's dialect,
then times a cold build (empty output, no cache) and a second build with nothing changed,
each as a fresh process, and prints them side by side. The peers are not dependencies of
this project: a peer that is not installed is skipped with a note. To have them:

    python3 -m venv /tmp/pelican-venv && /tmp/pelican-venv/bin/pip install pelican markdown
    apt-get install -y hugo        # Debian 12 ships 0.111

Pelican runs its default theme with its content cache on (its incremental mode); Hugo runs
minimal templates (one per page kind) and always rebuilds in full.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_synthetic_posts import write_posts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    tool: str
    cold: float | None = None
    second: float | None = None
    pages: int = 0
    note: str = ""


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Wall-clock seconds of `cmd` as a fresh process, and its result."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return time.perf_counter() - started, proc


def run_twice(tool: str, cmd: list[str], cwd: Path, out: Path, clean: list[Path]) -> Result:
    """Cold build (after removing `clean`), then a second build with nothing changed."""
    for path in clean:
        shutil.rmtree(path, ignore_errors=True)
    result = Result(tool)
    for attempt in ("cold", "second"):
        seconds, proc = timed(cmd, cwd)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            result.note = f"{attempt} build failed (exit {proc.returncode}): {tail[0][:100]}"
            return result
        setattr(result, attempt, seconds)
    result.pages = sum(1 for _ in out.rglob("*.html"))
    return result


# --- Lab Notes ---------------------------------------------------------------------------

SITE_TOML = """title = "Bench Notes"
author = "Bench"
base_url = "https://example.org/"
description = "Synthetic posts for the site benchmark."
"""


def bench_labnotes(work: Path, n: int) -> Result:
    site = work / "labnotes"
    write_posts(site / "content" / "posts", n, "labnotes")
    (site / "content" / "pages").mkdir(parents=True, exist_ok=True)
    (site / "site.toml").write_text(SITE_TOML)
    out = site / "output"
    if (ROOT / "build.py").exists():
        cmd = [sys.executable, str(ROOT / "build.py"), "build", "--config", str(site / "site.toml"),
               "--content", str(site / "content"), "--out", str(out)]
        return run_twice("Lab Notes", cmd, site, out, clean=[out, site / "labcache"])
    # Until build.py exists: time the stages that do, as a fresh process like the others.
    script = ROOT / "bench" / "_labnotes_partial_build.py"
    script.write_text(PARTIAL_BUILD)
    try:
        result = run_twice("Lab Notes", [sys.executable, str(script), str(site), str(out)], site, out, [out])
    finally:
        script.unlink()
    result.note = "partial: load + Markdown + feeds/llms/sitemap only (no build.py yet)"
    return result


PARTIAL_BUILD = """import sys
from pathlib import Path
sys.path.insert(0, %r)
from labnotes.config import load_config
from labnotes.content import load_content
from labnotes.markdown import render_code_block, render_document
from labnotes.feeds import render_rss
from labnotes.llms import mirror_path, render_llms_full, render_llms_txt, render_markdown_mirror
from labnotes.sitemap import render_sitemap
site, out = Path(sys.argv[1]), Path(sys.argv[2])
config = load_config(site / "site.toml")
content = load_content(site / "content", config)
posts = [render_document(d, render_code_block) for d in content.posts]
out.mkdir(parents=True, exist_ok=True)
for p in posts:
    target = out / p.document.output_path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(p.html)
    (out / mirror_path(p.document)).write_text(render_markdown_mirror(config, p))
(out / "feed.xml").write_bytes(render_rss(config, posts[:20]))
(out / "llms.txt").write_text(render_llms_txt(config, posts, []))
(out / "llms-full.txt").write_text(render_llms_full(config, posts, []))
(out / "sitemap.xml").write_bytes(render_sitemap(config, [(p.document.url, p.document.date) for p in posts]))
""" % str(ROOT)


# --- Pelican -----------------------------------------------------------------------------

PELICAN_CONF = """AUTHOR = "Bench"
SITENAME = "Bench Notes"
SITEURL = ""
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_PAGINATION = 5
FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
FEED_ALL_RSS = "feed.xml"
CATEGORY_FEED_RSS = "category/{slug}/feed.xml"
CACHE_CONTENT = True
LOAD_CONTENT_CACHE = True
CACHE_PATH = "cache"
"""


def find_pelican() -> str | None:
    for candidate in ("/tmp/pelican-venv/bin/pelican", shutil.which("pelican")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def bench_pelican(work: Path, n: int) -> Result:
    pelican = find_pelican()
    if pelican is None:
        return Result("Pelican", note="skipped: pelican not found (see this script's docstring)")
    site = work / "pelican"
    write_posts(site / "content", n, "pelican")
    (site / "pelicanconf.py").write_text(PELICAN_CONF)
    out = site / "output"
    version = subprocess.run([pelican, "--version"], capture_output=True, text=True).stdout.strip()
    cmd = [pelican, "content", "-o", str(out), "-s", "pelicanconf.py", "-q"]
    result = run_twice(f"Pelican {version}", cmd, site, out, clean=[out, site / "cache"])
    result.note = result.note or "default theme, content cache on"
    return result


# --- Hugo --------------------------------------------------------------------------------

HUGO_CONFIG = """baseURL = "https://example.org/"
title = "Bench Notes"
paginate = 5
[taxonomies]
category = "categories"
[markup.highlight]
noClasses = false
"""
HUGO_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title>
<link rel="alternate" type="application/rss+xml" href="/index.xml"></head><body>
<h1>{{ .Title }}</h1><p>{{ .Date.Format "2006-01-02" }} {{ range .Params.categories }}{{ . }} {{ end }}</p>
{{ .Content }}
{{ with .PrevInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
{{ with .NextInSection }}<a href="{{ .RelPermalink }}">{{ .Title }}</a>{{ end }}
</body></html>
"""
HUGO_LIST = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title></head><body>
<h1>{{ .Title }}</h1>
{{ $paginator := .Paginate (where .Site.RegularPages "Section" "posts") }}{{ if not .IsHome }}{{ $paginator = .Paginate .Pages }}{{ end }}
{{ range $paginator.Pages }}<article><h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>{{ .Summary }}
{{ if .Truncated }}<a href="{{ .RelPermalink }}">Read more</a>{{ end }}</article>{{ end }}
{{ with $paginator.Next }}<a href="{{ .URL }}">Older</a>{{ end }}
</body></html>
"""


def bench_hugo(work: Path, n: int) -> Result:
    hugo = shutil.which("hugo")
    if hugo is None:
        return Result("Hugo", note="skipped: hugo not found (apt-get install -y hugo)")
    site = work / "hugo"
    write_posts(site / "content" / "posts", n, "hugo")
    (site / "config.toml").write_text(HUGO_CONFIG)
    layouts = site / "layouts" / "_default"
    layouts.mkdir(parents=True, exist_ok=True)
    (layouts / "single.html").write_text(HUGO_PAGE)
    (layouts / "list.html").write_text(HUGO_LIST)
    out = site / "public"
    version = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.split()[1]
    version = version.split("+")[0].split("-")[0].lstrip("v")
    cmd = [hugo, "--source", str(site), "--destination", str(out), "--quiet"]
    result = run_twice(f"Hugo {version}", cmd, site, out, clean=[out, site / "resources"])
    result.note = result.note or "minimal templates, full rebuild each time"
    return result


def print_table(results: list[Result], n: int) -> None:
    cores = os.cpu_count()
    print(f"\n{n} synthetic posts (code block, table, footnote each), {cores} CPU cores; wall-clock seconds")
    print(f"{'tool':<16} {'cold build s':>12} {'second build s':>15} {'HTML files':>11}  note")
    for r in results:
        cold = f"{r.cold:.2f}" if r.cold is not None else "-"
        second = f"{r.second:.2f}" if r.second is not None else "-"
        print(f"{r.tool:<16} {cold:>12} {second:>15} {r.pages or '-':>11}  {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Lab Notes vs Pelican vs Hugo build times.")
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--no-peers", action="store_true", help="time Lab Notes only")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="labnotes-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [bench_labnotes(work, args.posts)]
        if not args.no_peers:
            results += [bench_pelican(work, args.posts), bench_hugo(work, args.posts)]
        print_table(results, args.posts)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

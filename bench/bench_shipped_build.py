"""Time builds of the shipped blog: cold (every lab runs), warm (nothing changed), a prose
edit, and a labcode edit, each in a temporary copy of the project (SPEC 8)."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(project: Path, env: dict, quick: bool) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "build.py", "build"] + (["--quick"] if quick else []),
                            cwd=project, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"build failed:\n{result.stderr[-2000:]}")
    return elapsed, result.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="labs in quick mode (build.py --quick)")
    parser.add_argument("--cached", action="store_true",
                        help="copy the committed labcache/ and skip the cold build (seconds, not minutes)")
    parser.add_argument("--edits", type=int, default=5, help="one-word prose edits to time (median)")
    opts = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(REPO / ".cache" / "tiktoken"))
    with tempfile.TemporaryDirectory(prefix="shipped-bench-") as scratch:
        project = Path(scratch) / "blog"
        project.mkdir()
        for name in ("content", "labcode", "templates", "static"):
            shutil.copytree(REPO / name, project / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("build.py", "site.toml"):
            shutil.copy(REPO / name, project / name)
        if opts.cached:
            shutil.copytree(REPO / "labcache", project / "labcache")
            build(project, env, opts.quick)        # the first build of a copy renders every page
            rows = []
        else:
            rows = [("cold: empty lab cache, every lab runs", *build(project, env, opts.quick))]
        rows.append(("warm: nothing changed", *build(project, env, opts.quick)))
        # one word of one post changed, as an author saving a typo fix; the lab that reads the
        # posts (site_stats) reruns each time. The median of several edits, each a new word.
        post = sorted((project / "content" / "posts").glob("*.md"))[-2]
        text = post.read_text()
        word = re.search(r"^[A-Z][a-z]+ ", text.split("<!--more-->", 1)[1], re.M).group(0)
        edits = []
        for i in range(opts.edits):
            post.write_text(text.replace(word, f"{word.strip()}{'s' * (i + 1)} ", 1))
            edits.append(build(project, env, opts.quick))
        edits.sort()
        rows.append((f"one word of one post changed (median of {len(edits)})", *edits[len(edits) // 2]))
        post.write_text(text)
        gelu = project / "labcode" / "gelu.py"
        gelu.write_text(gelu.read_text() + "\n# edited: a comment changes no code\n")
        rows.append(("labcode/gelu.py comment edited", *build(project, env, opts.quick)))
        gelu.write_text(gelu.read_text() + "\nEDITED = True\n")
        rows.append(("labcode/gelu.py code edited", *build(project, env, opts.quick)))
    print(f"shipped blog, {os.cpu_count()} cores{' (quick mode)' if opts.quick else ''}")
    print(f"{'build':40} {'wall s':>8}  closing line")
    for name, seconds, line in rows:
        print(f"{name:40} {seconds:8.2f}  {re.sub(r'^built ', '', line)}")
    print("goals (SPEC 8): cold under 600 s on 2 cores; warm under 1 s with no lab run; "
          "one word changed at most 1.0 s")


if __name__ == "__main__":
    main()

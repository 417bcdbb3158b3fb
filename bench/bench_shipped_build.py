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
        rows = [("cold: empty lab cache, every lab runs", *build(project, env, opts.quick)),
                ("warm: nothing changed", *build(project, env, opts.quick))]
        post = sorted((project / "content" / "posts").glob("*.md"))[0]
        post.write_text(post.read_text() + "\nOne more sentence of prose.\n")
        rows.append(("one post's prose edited", *build(project, env, opts.quick)))
        gelu = project / "labcode" / "gelu.py"
        gelu.write_text(gelu.read_text() + "\n# edited: a comment changes no code\n")
        rows.append(("labcode/gelu.py comment edited", *build(project, env, opts.quick)))
        gelu.write_text(gelu.read_text() + "\nEDITED = True\n")
        rows.append(("labcode/gelu.py code edited", *build(project, env, opts.quick)))
    print(f"shipped blog, {os.cpu_count()} cores{' (quick mode)' if opts.quick else ''}")
    print(f"{'build':40} {'wall s':>8}  closing line")
    for name, seconds, line in rows:
        print(f"{name:40} {seconds:8.2f}  {re.sub(r'^built ', '', line)}")
    print("goals (SPEC 8): cold under 600 s on 2 cores; warm under 1 s with no lab run")


if __name__ == "__main__":
    main()

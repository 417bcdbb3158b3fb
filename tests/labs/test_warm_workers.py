"""`serve` keeps its lab workers between rebuilds: an edit that reruns a lab does not wait for a
new worker to import torch, and the warm worker runs exactly what a new one would."""
import json
import os
import shutil
from pathlib import Path

import pytest

from labnotes.labs.executor import WarmPools
from labnotes.pipeline import build

REPO = Path(__file__).resolve().parents[2]

WHOAMI = '''\
"""Which process ran a lab (a test module of this temporary project)."""
import os

from labcode.data import read_text


def whoami(path: str = "data/words.txt"):
    words = read_text(path).split()
    print(f"{len(words)} words")
    return {"pid": os.getpid(), "words": len(words)}
'''

POST = """\
---
title: "Who ran it"
date: 2026-10-03T10:00:00+00:00
---
Counting.

```lab
labcode.whoami:whoami
```
"""


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(REPO / "labcode", root / "labcode", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "labcode" / "whoami.py").write_text(WHOAMI, encoding="utf-8")
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text("to be or not to be", encoding="utf-8")
    (root / "content" / "posts").mkdir(parents=True)
    (root / "content" / "posts" / "who.md").write_text(POST, encoding="utf-8")
    (root / "site.toml").write_text('title = "Warm"\n\n[labs]\ncache_dir = "labcache"\n', encoding="utf-8")
    return root


def run(project: Path, warm=None) -> dict:
    report = build(project / "site.toml", project / "content", project / "output", warm_labs=warm)
    assert report.labs.failed == 0
    entry = next((project / "labcache").glob("whoami-*.json"))
    return json.loads(entry.read_text(encoding="utf-8"))["result"]["data"] | {"ran": report.labs.run}


def test_a_lab_rerun_by_an_edit_runs_in_the_worker_kept_from_the_last_build(project):
    warm = WarmPools()
    try:
        first = run(project, warm)
        (project / "data" / "words.txt").write_text("to be or not to be, that is", encoding="utf-8")
        second = run(project, warm)
        assert second["ran"] == 1 and second["words"] == 8
        assert second["pid"] == first["pid"]          # no new worker, no second torch import
        module = project / "labcode" / "whoami.py"
        module.write_text(WHOAMI.replace("len(words)}", "len(words) * 2}"), encoding="utf-8")
        third = run(project, warm)
        assert third["words"] == 16 and third["pid"] == first["pid"]   # the edited code, not a stale import
    finally:
        warm.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(first["pid"], 0)                       # stopping the pools ends the workers
    (project / "data" / "words.txt").write_text("a b", encoding="utf-8")
    assert run(project)["pid"] != first["pid"]         # a plain build starts and stops its own

"""Author mistakes that used to pass silently or hang (issue 18): each is now one line that
names the file and what to do."""
from __future__ import annotations

import json
import time

import pytest
from bs4 import BeautifulSoup

from labnotes.labs.runtime import missing_encoding_hint
from test_lab_builds import SITE_TOML, build, new_project

ENCODING_POST = """\
---
title: "Tokens"
date: 2026-10-01T10:00:00+00:00
---
Tokens.

```lab
labcode.tokenizer:gpt2_tokenizer
```
"""


def test_a_lab_missing_gpt2s_encoding_names_tiktokens_download_its_cache_and_tiktoken_source(tmp_path):
    project = new_project(tmp_path, {"site.toml": SITE_TOML, "content/posts/tokens.md": ENCODING_POST})
    empty = tmp_path / "no-encodings"
    empty.mkdir()
    result = build(project, env={"TIKTOKEN_CACHE_DIR": str(empty)})
    assert result.returncode == 1
    [line] = [l for l in result.stderr.splitlines() if ": error: " in l]
    assert line.startswith("content/posts/tokens.md:7: error: lab labcode.tokenizer:gpt2_tokenizer failed: "
                           "RuntimeError: GPT-2 encoding not found")
    assert ("tiktoken downloads it on first use from "
            "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken") in line
    assert f"caches it in TIKTOKEN_CACHE_DIR ({empty})" in line
    assert "`make setup TIKTOKEN_SOURCE=DIR`" in line
    assert list(empty.iterdir()) == []      # nothing was downloaded behind the author's back


@pytest.mark.parametrize("error", ["ValueError: bad value 3", "KeyError: 'r50k'"])
def test_other_lab_errors_get_no_encoding_hint(error):
    assert missing_encoding_hint(error, "/x") == ""


MISTAKES = '''\
"""Labs that make an author's mistakes (a test module of this temporary project)."""
import os
import time

import torch


def huge(device="cpu"):
    return torch.arange(3000 * 3000, dtype=torch.float32).reshape(3000, 3000)


def asks():
    return input("your name? ")


def debugs():
    breakpoint()
    return 1


def writes_a_post():
    with open("content/posts/leak.md", "w") as handle:
        handle.write("---\\ntitle: Leak\\ndate: 2026-01-01\\n---\\nleaked\\n")
    return 1


def writes_a_style():
    with open("static/lab.css", "w") as handle:
        handle.write("body {}")
    return 1


def forks():
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid > 0
'''

MISTAKES_POST = """\
---
title: "Mistakes"
date: 2026-10-01T10:00:00+00:00
---
Mistakes.

```lab
labcode.mistakes:huge
name: big
show: value
```

```lab
labcode.mistakes:asks
```

```lab
labcode.mistakes:debugs
```

```lab
labcode.mistakes:writes_a_post
```

```lab
labcode.mistakes:writes_a_style
```

```lab
labcode.mistakes:forks
```

The largest number is {{ big.max:,.0f }}.
"""


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory):
    """One build of every mistake (--keep-going: each lab fails or warns on its own)."""
    project = new_project(tmp_path_factory.mktemp("mistakes"), {
        "site.toml": SITE_TOML, "labcode/mistakes.py": MISTAKES, "static/site.css": "p {}",
        "content/posts/mistakes.md": MISTAKES_POST})
    started = time.monotonic()
    result = build(project, "build", "--keep-going")
    return project, result, time.monotonic() - started


def error_of(result, ref: str) -> str:
    [line] = [l for l in result.stderr.splitlines() if f"error: lab labcode.mistakes:{ref} failed" in l]
    return line


def test_a_huge_tensor_is_shown_shortened_and_cached_small(mistakes):
    project, result, _ = mistakes
    [entry] = (project / "labcache").glob("mistakes-huge-*.json")
    assert entry.stat().st_size < 20_000          # was 81 MB: every build after it took 35 s
    data = json.loads(entry.read_text())["result"]["data"]
    assert data["shape"] == [3000, 3000] and data["numbers"] == 9_000_000 and data["max"] == 8_999_999
    page = (project / "output" / "posts" / "mistakes.html").read_text()
    assert "8,999,999" in page                      # a citation of the summary
    value = BeautifulSoup(page, "html5lib").select_one(".lab-value, .lab pre")
    assert value is not None and "..." in page and len(page) < 200_000


def test_a_lab_reading_standard_input_fails_at_once(mistakes):
    _, result, seconds = mistakes
    assert seconds < 100                              # the lab timeout is 120 s
    line = error_of(result, "asks")
    assert line.startswith("content/posts/mistakes.md:13: error:")
    assert "EOFError: standard input is closed" in line


def test_a_lab_calling_breakpoint_fails_at_once(mistakes):
    line = error_of(mistakes[1], "debugs")
    assert line.startswith("content/posts/mistakes.md:17: error:")
    assert "breakpoint() in a lab" in line


@pytest.mark.parametrize("ref, file, folder", [("writes_a_post", "content/posts/leak.md", "content/"),
                                               ("writes_a_style", "static/lab.css", "static/")])
def test_a_lab_writing_into_an_input_folder_is_an_error_naming_the_lab_and_the_file(mistakes, ref, file, folder):
    line = error_of(mistakes[1], ref)
    assert line.startswith("content/posts/mistakes.md:")
    assert f"lab labcode.mistakes:{ref} failed: it wrote {file}, inside {folder}" in line


def test_a_lab_leaving_a_forked_child_is_told_its_child_was_killed(mistakes):
    warnings = [l for l in mistakes[1].stderr.splitlines() if "labcode.mistakes:forks left process" in l]
    assert len(warnings) == 1 and "its worker was replaced" in warnings[0]

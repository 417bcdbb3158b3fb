"""Author mistakes that used to pass silently or hang (issue 18): each is now one line that
names the file and what to do."""
from __future__ import annotations

import pytest

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

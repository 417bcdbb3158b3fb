"""`labnotes init DIR`: a new blog that builds, with a lab, a citation, a claim and a workflow."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from labnotes.config import _LAB_KEYS, _SITE_KEYS, load_config

LABNOTES = Path(sys.executable).parent / "labnotes"    # the console script `make setup` installs


def labnotes(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([str(LABNOTES), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def blog(tmp_path_factory) -> Path:
    if not LABNOTES.is_file():
        pytest.fail(f"no {LABNOTES}: `make setup` (pip install -e .) installs the labnotes command")
    where = tmp_path_factory.mktemp("init")
    result = labnotes("init", "blog", cwd=where)
    assert result.returncode == 0, result.stderr
    return where / "blog"


def test_init_then_build_gives_a_site_with_a_lab_a_citation_a_claim_and_a_workflow(blog):
    result = labnotes("build", cwd=blog)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith("labs: 1 run, 0 cached, 0 failed")
    [post] = (blog / "output" / "posts").glob("*.html")
    page = BeautifulSoup(post.read_text(encoding="utf-8"), "html5lib")
    assert page.select("div.lab, section.lab, .lab")
    cites = page.select("span.lab-cite")
    assert len(cites) == 2 and all(re.fullmatch(r"\d+\.\d%", c.get_text()) for c in cites)
    assert "2 claims about this result, checked on every build: all hold" in page.get_text()
    assert "python build.py lab labcode.labs.temperature:temperature_table" in page.get_text()
    assert (blog / "labcache").is_dir() and any((blog / "labcache").iterdir())
    workflow = (blog / ".github" / "workflows" / "publish.yml").read_text()
    assert "actions/deploy-pages" in workflow and "labnotes build" in workflow
    assert "@" not in re.sub(r"[\w.-]+@v\d+|git@\S+", "", workflow)   # every blank filled in
    again = labnotes("build", cwd=blog)
    assert again.stdout.strip().splitlines()[-1].endswith("labs: 0 run, 1 cached, 0 failed")


def test_init_writes_readme_gitignore_and_labcode_as_chapters_and_labs(blog):
    readme = (blog / "README.md").read_text()
    assert "labnotes serve" in readme and "labnotes build" in readme and "## Publish" in readme
    ignored = [line for line in (blog / ".gitignore").read_text().splitlines() if not line.startswith("#")]
    assert "output/" in ignored and ".cache/" in ignored and "labcache/" not in ignored
    assert (blog / "labcode" / "softmax.py").is_file()
    assert (blog / "labcode" / "labs" / "temperature.py").is_file()
    assert "import labcode.labs" not in (blog / "labcode" / "softmax.py").read_text()


def test_init_site_toml_names_every_key_and_each_one_parses_when_uncommented(blog, tmp_path):
    text = (blog / "site.toml").read_text()
    load_config(blog / "site.toml")
    uncommented = re.sub(r"(?m)^# (?=\w+ = |\]|    \{)", "", text)
    (tmp_path / "site.toml").write_text(uncommented)
    config = load_config(tmp_path / "site.toml")       # every key, as the comments show it
    written = set(re.findall(r"(?m)^(\w+) = ", uncommented))
    assert written == (set(_SITE_KEYS) - {"labs"}) | set(_LAB_KEYS)
    assert config.labs.device == "cpu" and config.blogroll


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = labnotes("init", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: taken exists and is not empty; `labnotes init` writes only "
                                     "into a new or empty folder: give another path")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_init_accepts_an_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = labnotes("init", "empty", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "empty" / "site.toml").is_file()

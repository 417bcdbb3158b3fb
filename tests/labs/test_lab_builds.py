"""Labs in real builds: a temporary copy of the project with real labcode modules.

Each build starts one worker (and so imports torch once), so these tests share a
first, cold build (module fixture) and copy its folder, cache included.
"""
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parents[2]

SITE_TOML = """\
title = "Lab test site"
base_url = "https://example.org/blog/"
timezone = "UTC"

[labs]
timeout = 120
cache_dir = "labcache"
"""

GELU_POST = """\
---
title: "GELU"
date: 2026-10-01T10:00:00+00:00
categories: [Layers]
summary: "GELU against ReLU."
---
GELU is smooth.

```lab
labcode.labs.gpt_model:gelu_vs_relu_plot
show: output, figures
```
"""

ATTENTION_POST = """\
---
title: "Causal attention"
date: 2026-10-02T10:00:00+00:00
categories: [Attention]
summary: "The mask."
---
The mask hides the future.

```lab
labcode.labs.attention:causal_weights_demo
show: output, value, figures
seq_len: 4
```

```labsource
labcode.attention:CausalAttention
```
"""

WORDS_POST = """\
---
title: "Counting words"
date: 2026-10-03T10:00:00+00:00
categories: [Data]
summary: "A data file read through labcode."
---
Counting.

```lab
labcode.wordcount:count_words
path: "data/words.txt"
```
"""

# A small labcode module of the test project: it reads data through labcode.data.
WORDCOUNT = '''\
"""Count words in a text file (a test module of this temporary project)."""
from labcode.data import read_text


def count_words(path: str):
    words = read_text(path).split()
    print(f"{len(words)} words")
    return [{"word": w, "count": words.count(w)} for w in sorted(set(words))]
'''

BROKEN = '''\
"""Labs that misbehave, for the tests."""
import time


def _inner(n):
    raise ValueError(f"bad value {n}")


def raises(n: int = 3):
    return _inner(n)


def hangs():
    time.sleep(600)


def chatty():
    print("x" * 10_000_000)
'''


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "build.py", *(args or ("build",))]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env} if env else None)


def new_project(root: Path, files: dict[str, str]) -> Path:
    """A project at `root/site`: this repository's labcode, templates, static and build.py, plus
    `files` (relative path -> text)."""
    project = root / "site"
    project.mkdir()
    for name in ("labcode", "templates", "static"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "build.py", project / "build.py")
    for relative, text in files.items():
        write(project / relative, text)
    return project


def copy_of(built: Path, tmp_path: Path) -> Path:
    """A copy of a built project (cache and output included) for one test to change."""
    copy = tmp_path / "site"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def cpu_isa() -> str:
    """The vector ISA torch's CPU kernels use here, as provenance names it."""
    import torch
    isa = torch.backends.cpu.get_cpu_capability()
    return "scalar kernels" if isa == "DEFAULT" else isa


def labs_line(result: subprocess.CompletedProcess) -> str:
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built_project(tmp_path_factory) -> Path:
    project = new_project(tmp_path_factory.mktemp("cold"), {
        "site.toml": SITE_TOML, "labcode/wordcount.py": WORDCOUNT, "data/words.txt": "to be or not to be",
        "content/posts/gelu.md": GELU_POST, "content/posts/attention.md": ATTENTION_POST,
        "content/posts/words.md": WORDS_POST})
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert labs_line(result).endswith("labs: 3 run, 0 cached, 0 failed")
    return project


@pytest.fixture
def project(built_project, tmp_path) -> Path:
    return copy_of(built_project, tmp_path)


def test_second_build_with_nothing_changed_runs_no_lab(project):
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert labs_line(result).endswith("labs: 0 run, 3 cached, 0 failed")


def test_editing_prose_reruns_nothing(project):
    post = project / "content" / "posts" / "gelu.md"
    post.write_text(post.read_text().replace("GELU is smooth.", "GELU is smooth, unlike ReLU."))
    result = build(project)
    assert labs_line(result).endswith("labs: 0 run, 3 cached, 0 failed")
    html = (project / "output" / "posts" / "gelu.html").read_text()
    assert "unlike ReLU" in html


def test_editing_a_labcode_module_reruns_exactly_the_labs_that_imported_it(project):
    gelu = project / "labcode" / "gelu.py"
    gelu.write_text(gelu.read_text() + "\nEDITED = True\n")
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 1 run, 2 cached, 0 failed")
    assert "labcode.labs.gpt_model:gelu_vs_relu_plot" in result.stderr
    assert "labcode/gelu.py changed: EDITED" in result.stderr
    assert "causal_weights_demo" not in result.stderr


def test_editing_only_docstrings_and_comments_reruns_nothing(project):
    gelu = project / "labcode" / "gelu.py"
    source = gelu.read_text()
    first_docstring = source.index('"""')
    edited = source[:first_docstring + 3] + "Reworded. " + source[first_docstring + 3:]
    gelu.write_text(edited.replace("\n\n", "\n\n# a comment\n", 1))
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 0 run, 3 cached, 0 failed")


def test_editing_a_helper_module_reruns_the_lab_that_imported_it_through_another(project):
    data = project / "labcode" / "data.py"
    data.write_text(data.read_text() + "\nEDITED = True\n")
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 1 run, 2 cached, 0 failed")
    assert "labcode.wordcount:count_words" in result.stderr
    assert "labcode/data.py changed" in result.stderr


def test_editing_a_data_file_read_through_labcode_reruns_its_lab(project):
    (project / "data" / "words.txt").write_text("to be or not to be, that is")
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 1 run, 2 cached, 0 failed")
    assert "data file data/words.txt changed" in result.stderr
    html = (project / "output" / "posts" / "words.html").read_text()
    assert "8 words" in html


def test_corrupt_cache_entry_is_rebuilt_with_a_warning(project):
    entry = next((project / "labcache").glob("labs.gpt_model-gelu_vs_relu_plot-*.json"))
    entry.write_text(entry.read_text()[:40])
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert "corrupt cache entry ignored" in result.stderr
    assert labs_line(result).endswith("labs: 1 run, 2 cached, 0 failed")
    json.loads(entry.read_text())  # rewritten whole


def test_figures_land_as_files_referenced_in_html_feed_and_markdown(project):
    out = project / "output"
    page = BeautifulSoup((out / "posts" / "attention.html").read_text(), "html.parser")
    lab = page.select_one(".lab")
    assert lab is not None
    images = [img["src"] for img in page.select(".lab img")]
    assert images and all(src.startswith("/blog/labs/") for src in images)
    for src in images:
        assert (out / src.removeprefix("/blog/")).is_file()
    assert "shape (4, 4)" in lab.get_text()
    assert "python build.py lab labcode.labs.attention:causal_weights_demo --arg seq_len=4" in \
        lab.get_text()
    assert f"CPU ({cpu_isa()}) with torch" in page.select_one(".lab-provenance").get_text()
    # the labsource block shows the class without running it
    assert "class CausalAttention" in page.select(".lab")[1].get_text()

    gelu_svg = BeautifulSoup((out / "posts" / "gelu.html").read_text(), "html.parser") \
        .select_one(".lab img")["src"]
    assert gelu_svg.endswith(".svg")
    ElementTree.parse(out / gelu_svg.removeprefix("/blog/"))  # a real SVG document

    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo
    item = next(e for e in feed.entries if e.title == "Causal attention")
    content = BeautifulSoup(item.content[0].value, "html.parser")
    assert [img["src"] for img in content.select(".lab img")] == \
        ["https://example.org" + src for src in images]

    mirror = (out / "posts" / "attention.html.md").read_text()
    assert f"(https://example.org{images[0]})" in mirror
    assert "tensor, shape (4, 4), float32" in mirror
    assert f"https://example.org{images[0]}" in (out / "llms-full.txt").read_text()


def test_two_builds_give_byte_identical_lab_output(project):
    # The labs page says whether each build ran a lab or reused it, so it is the one file
    # that tells the cold build from the second: compared once both builds reused every lab.
    build(project)
    first = snapshot(project / "output")
    shutil.rmtree(project / "output")
    build(project)
    assert snapshot(project / "output") == first


def add_broken_lab(project: Path, lab: str) -> Path:
    write(project / "labcode" / "broken.py", BROKEN)
    post = project / "content" / "posts" / "broken.md"
    write(post, "---\ntitle: Broken\ndate: 2026-10-05\ncategories: [Tests]\n---\nText.\n\n"
          f"```lab\n{lab}\n```\n")
    return post


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_lab_that_raises_fails_the_build_with_post_line_and_labcode_traceback(project):
    before = snapshot(project / "output")
    add_broken_lab(project, "labcode.broken:raises\nn: 7")
    result = build(project)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    error = lines.index("content/posts/broken.md:8: error: lab labcode.broken:raises failed: "
                        "ValueError: bad value 7")
    assert lines[error + 1] == "Traceback (labcode frames only):"
    assert 'File "labcode/broken.py"' in result.stderr
    assert "in _inner" in result.stderr
    assert "labnotes" not in result.stderr  # frames of the generator are cut
    assert snapshot(project / "output") == before


def test_keep_going_renders_an_error_box_and_exits_1(project):
    add_broken_lab(project, "labcode.broken:raises")
    result = build(project, "build", "--keep-going")
    assert result.returncode == 1
    assert labs_line(result).endswith("labs: 1 run, 3 cached, 1 failed") or \
        labs_line(result).endswith("labs: 0 run, 3 cached, 1 failed")
    page = BeautifulSoup((project / "output" / "posts" / "broken.html").read_text(),
                         "html.parser")
    box = page.select_one(".lab.lab-error")
    assert box is not None and "ValueError: bad value 3" in box.get_text()


def test_lab_that_hangs_past_its_timeout_is_killed_and_the_worker_replaced(project):
    post = add_broken_lab(project, "labcode.broken:hangs\ntimeout: 3")
    post.write_text(post.read_text() + "\n```lab\nlabcode.labs.gpt_model:gelu_vs_relu_plot\n```\n")
    (project / "labcode" / "gelu.py").write_text(
        (project / "labcode" / "gelu.py").read_text() + "\nEDITED = True\n")
    result = build(project, "build", "--keep-going")
    assert result.returncode == 1
    assert "content/posts/broken.md:8: error: lab labcode.broken:hangs failed: timed out " \
        "after 3 s" in result.stderr
    assert labs_line(result).endswith("labs: 1 run, 2 cached, 1 failed")


def test_lab_that_prints_10_mb_is_cut_with_a_note(project):
    add_broken_lab(project, "labcode.broken:chatty")
    result = build(project)
    assert result.returncode == 0, result.stderr
    html = (project / "output" / "posts" / "broken.html").read_text()
    assert len(html) < 1_000_000
    assert "[output cut: " in html and "more characters not shown]" in html


def test_unresolvable_reference_fails_before_any_lab_runs(project):
    before = snapshot(project / "output")
    (project / "labcode" / "gelu.py").write_text(
        (project / "labcode" / "gelu.py").read_text() + "\nEDITED = True\n")
    post = project / "content" / "posts" / "typo.md"
    write(post, "---\ntitle: Typo\ndate: 2026-10-06\n---\n\n```lab\n"
          "labcode.labs.attention:causal_weight_demo\n```\n")
    result = build(project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[0].startswith(
        "content/posts/typo.md:7: error: lab reference labcode.labs.attention:causal_weight_demo "
        "does not resolve; nearest: labcode.labs.attention:causal_weights_demo")
    assert "ran labcode.labs.gpt_model" not in result.stderr  # the stale gelu lab did not run
    assert snapshot(project / "output") == before


def test_a_missing_required_argument_fails_before_any_lab_runs(project):
    (project / "labcode" / "gelu.py").write_text(
        (project / "labcode" / "gelu.py").read_text() + "\nEDITED = True\n")
    write(project / "content" / "posts" / "nopath.md", "---\ntitle: No path\ndate: 2026-10-06\n---\n\n"
          "```lab\nlabcode.wordcount:count_words\n```\n")
    result = build(project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "content/posts/nopath.md:7: error: labcode.wordcount:count_words needs `path` (it has no "
        "default): give it in the block (`path: ...`) or with `--arg path=...`"]


def test_result_made_on_a_gpu_is_republished_on_a_cpu_machine(project):
    entry = next((project / "labcache").glob("labs.gpt_model-gelu_vs_relu_plot-*.cpu.json"))
    data = json.loads(entry.read_text())
    data.update(device="cuda", device_name="NVIDIA H100 80GB HBM3")
    entry.with_name(entry.name.replace(".cpu.", ".cuda.")).write_text(json.dumps(data))
    entry.unlink()
    result = build(project)
    assert labs_line(result).endswith("labs: 0 run, 3 cached, 0 failed")
    page = BeautifulSoup((project / "output" / "posts" / "gelu.html").read_text(), "html.parser")
    assert "NVIDIA H100 80GB HBM3" in page.select_one(".lab-provenance").get_text()


def test_a_plotted_figure_is_shared_in_link_previews_as_its_png_preview(project):
    out = project / "output"
    page = BeautifulSoup((out / "posts" / "gelu.html").read_text(), "html.parser")
    img = page.select_one(".lab img")
    assert img["src"].endswith(".svg") and img["data-preview"].endswith(".png")
    preview = out / img["data-preview"].removeprefix("/blog/")
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = {m.get("property") or m.get("name"): m["content"] for m in page.select("meta[content]")}
    # cards do not show SVG: the page shares the plot's PNG, with the plot's title as alt text
    assert meta["og:image"] == meta["twitter:image"] == "https://example.org" + img["data-preview"]
    assert meta["og:image:alt"] == img["alt"]


def test_lab_command_runs_one_lab_prints_output_and_saves_figures(project, tmp_path):
    figures = tmp_path / "figs"
    result = build(project, "lab", "labcode.labs.attention:causal_weights_demo", "--arg", "seq_len=3",
                   "--figures", str(figures))
    assert result.returncode == 0, result.stderr
    assert "shape" in result.stdout or "tensor(" in result.stdout
    saved = list(figures.glob("*.png"))
    assert len(saved) == 1 and saved[0].read_bytes().startswith(b"\x89PNG")


def test_check_lists_posts_whose_published_output_would_change(project):
    wordcount = project / "labcode" / "wordcount.py"
    wordcount.write_text(wordcount.read_text().replace('f"{len(words)} words"',
                                                       'f"{len(words)} words counted"'))
    result = build(project, "check")
    assert result.returncode == 1
    assert "content/posts/words.md" in result.stdout
    assert "the rendered block would change ('6 words' -> '6 words counted')" in result.stdout
    assert "gelu.md" not in result.stdout


PIPELINE = '''\
"""A lab that writes a file and one that reads it (a test module of this project)."""
from pathlib import Path

SCALE = 2


def make(path: str = ".cache/labs/numbers.txt"):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(" ".join(str(SCALE * n) for n in range(5)))


def use(path: str = ".cache/labs/numbers.txt"):
    print("sum", sum(int(n) for n in Path(path).read_text().split()))
'''


def add_pipeline_post(project: Path) -> None:
    write(project / "labcode" / "pipeline.py", PIPELINE)
    write(project / "content" / "posts" / "pipeline.md",
          "---\ntitle: Pipeline\ndate: 2026-10-07\n---\n\n"
          "```lab\nlabcode.pipeline:use\nafter: labcode.pipeline:make\n```\n\n"
          "```lab\nlabcode.pipeline:make\n```\n")


def test_after_runs_the_upstream_lab_first_and_its_edit_reruns_both(project):
    add_pipeline_post(project)
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert "sum 20" in (project / "output" / "posts" / "pipeline.html").read_text()
    module = project / "labcode" / "pipeline.py"
    module.write_text(module.read_text().replace("SCALE = 2", "SCALE = 3"))
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 2 run, 3 cached, 0 failed")
    assert "upstream lab labcode.pipeline:make reruns" in result.stderr
    assert "sum 30" in (project / "output" / "posts" / "pipeline.html").read_text()


def test_downstream_lab_is_fresh_on_a_clone_without_the_upstream_file(project):
    add_pipeline_post(project)
    assert build(project).returncode == 0
    (project / ".cache" / "labs" / "numbers.txt").unlink()  # a fresh clone has no artefact
    result = build(project)
    assert labs_line(result).endswith("labs: 0 run, 5 cached, 0 failed")


def test_jobs_runs_independent_labs_on_several_workers(project):
    for name in ("gelu.py", "attention.py", "wordcount.py"):
        module = project / "labcode" / name
        module.write_text(module.read_text() + "\nEDITED = True\n")
    result = build(project, "build", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert labs_line(result).endswith("labs: 3 run, 0 cached, 0 failed")
    page = BeautifulSoup((project / "output" / "posts" / "attention.html").read_text(),
                         "html.parser")
    assert "shape (4, 4)" in page.select_one(".lab").get_text()


def test_check_finds_a_broken_internal_link_in_the_built_site(project):
    # A link written in a post fails the build itself, with its file and line...
    post = project / "content" / "posts" / "gelu.md"
    text = post.read_text()
    post.write_text(text + "\nSee [the missing post](/posts/nowhere.html).\n")
    result = build(project)
    assert result.returncode == 1
    line = len(text.split("\n")) + 1
    assert f"gelu.md:{line}: error: broken link /posts/nowhere.html: no such page" in result.stderr
    # ...so what `check` finds in the built site are the links that templates make.
    post.write_text(text)
    template = project / "templates" / "404.html"
    template.write_text(template.read_text().replace("{{ root }}archive/", "{{ root }}archives/"))
    assert build(project).returncode == 0
    result = build(project, "check")
    assert result.returncode == 1
    assert "broken link /blog/archives/ (no archives/index.html)" in result.stdout
    assert "check: 1 broken internal links or anchors" in result.stdout


CHECKPOINT_WRITER = '''\
"""torch.save writes from C++, unseen by Python's open (a test module of this project)."""
from pathlib import Path

import torch


def train(path: str = ".cache/labs/weights.pt"):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.arange(4.0)}, path)
'''

CHECKPOINT_READER = '''\
"""Reads the checkpoint the writer lab saved (a test module of this project)."""
import torch


def sample(path: str = ".cache/labs/weights.pt"):
    print("weights", torch.load(path)["w"].tolist())
'''


def add_checkpoint_post(project: Path) -> None:
    """A post whose second lab samples from the checkpoint its first lab saved."""
    write(project / "labcode" / "checkpoints.py", CHECKPOINT_WRITER)
    write(project / "labcode" / "sampling.py", CHECKPOINT_READER)
    write(project / "content" / "posts" / "ckpt.md",
          "---\ntitle: Checkpoint\ndate: 2026-10-08\n---\n\n"
          "```lab\nlabcode.checkpoints:train\n```\n\n"
          "```lab\nlabcode.sampling:sample\nafter: labcode.checkpoints:train\n```\n")


def test_fresh_clone_without_a_checkpoint_reuses_results_then_retrains_when_needed(project):
    add_checkpoint_post(project)
    assert labs_line(build(project)).endswith("labs: 2 run, 3 cached, 0 failed")
    (project / ".cache" / "labs" / "weights.pt").unlink()     # as on a fresh clone
    assert labs_line(build(project)).endswith("labs: 0 run, 5 cached, 0 failed")
    standalone = build(project, "lab", "labcode.sampling:sample")
    assert standalone.returncode == 0, standalone.stderr
    assert "weights [0.0, 1.0, 2.0, 3.0]" in standalone.stdout
    (project / ".cache" / "labs" / "weights.pt").unlink()
    module = project / "labcode" / "sampling.py"
    module.write_text(module.read_text().replace('"weights", torch', '"weights:", torch'))
    result = build(project, "build", "--why")
    assert result.returncode == 0, result.stderr
    assert "its artefacts are not on this disk" in result.stderr
    assert labs_line(result).endswith("labs: 2 run, 3 cached, 0 failed")
    assert "weights: [0.0, 1.0, 2.0, 3.0]" in \
        (project / "output" / "posts" / "ckpt.html").read_text()


# Faults a new user hit; each test failed before the planner/executor split.

def cache_files(project: Path) -> dict:
    return {p.relative_to(project): p.read_bytes() for p in (project / "labcache").rglob("*")
            if p.is_file()}


def test_a_build_of_an_empty_content_folder_deletes_no_cached_result(project, tmp_path):
    before = cache_files(project)
    (tmp_path / "empty").mkdir()
    result = build(project, "build", "--content", str(tmp_path / "empty"))
    assert result.returncode == 0, result.stderr
    assert cache_files(project) == before


def test_prune_lists_what_it_removes_and_keeps_what_the_site_shows(project):
    orphan = project / "labcache" / "gone-123456789abc.cpu.json"
    orphan.write_text("{}")
    dry = build(project, "prune", "--dry-run")
    assert "would remove labcache/gone-123456789abc.cpu.json" in dry.stdout
    assert orphan.exists()
    result = build(project, "prune")
    assert "removed labcache/gone-123456789abc.cpu.json" in result.stdout
    assert not orphan.exists()
    assert labs_line(build(project)).endswith("labs: 0 run, 3 cached, 0 failed")



def test_prune_keeps_the_results_of_drafts(project):
    post = project / "content" / "posts" / "gelu.md"
    post.write_text(post.read_text().replace('summary: "GELU against ReLU."',
                                             'summary: "GELU against ReLU."\ndraft: true'))
    before = cache_files(project)
    result = build(project, "prune")
    assert "prune: 0 files removed" in result.stdout, result.stdout
    assert cache_files(project) == before  # the draft's plot is still there when it is published


SELF_EDIT = '''\
"""A lab whose module is edited while it runs (as an author saving the file mid-build)."""
from pathlib import Path

VALUE = 1


def edited_while_running():
    source = Path(__file__)
    source.write_text(source.read_text().replace("VALUE = 1", "VALUE = 2"))
    print("value", VALUE)
'''


def test_a_module_edited_while_its_lab_runs_is_not_cached_as_the_new_code(project):
    write(project / "labcode" / "selfedit.py", SELF_EDIT)
    write(project / "content" / "posts" / "edit.md", GELU_POST.replace('"GELU"', '"Edit"').replace(
        "labcode.labs.gpt_model:gelu_vs_relu_plot\nshow: output, figures", "labcode.selfedit:edited_while_running"))
    first = build(project)
    assert first.returncode == 0, first.stderr
    assert "labcode.selfedit changed while lab labcode.selfedit:edited_while_running ran" in first.stderr
    assert "value 1" in (project / "output" / "posts" / "edit.html").read_text()
    # the entry would say "VALUE = 2 printed 1": the next build runs the code now on disk
    second = build(project)
    assert labs_line(second).endswith("labs: 1 run, 3 cached, 0 failed"), second.stdout
    assert "value 2" in (project / "output" / "posts" / "edit.html").read_text()

CONSUMERS = '''\
"""Two labs that read what labcode.pipeline:make wrote (a test module of this project)."""
from pathlib import Path


def first(path: str = ".cache/labs/numbers.txt"):
    print("first", Path(path).read_text())


def second(path: str = ".cache/labs/numbers.txt"):
    print("second", Path(path).read_text())
'''


def test_jobs_2_runs_a_missing_upstream_once_for_two_labs_after_it(project):
    write(project / "labcode" / "pipeline.py", PIPELINE)
    write(project / "labcode" / "consumers.py", CONSUMERS)
    write(project / "content" / "posts" / "two.md",
          "---\ntitle: Two\ndate: 2026-10-07\n---\n\n```lab\nlabcode.pipeline:make\n```\n\n"
          "```lab\nlabcode.consumers:first\nafter: labcode.pipeline:make\n```\n\n"
          "```lab\nlabcode.consumers:second\nafter: labcode.pipeline:make\n```\n")
    assert labs_line(build(project)).endswith("labs: 3 run, 3 cached, 0 failed")
    (project / ".cache" / "labs" / "numbers.txt").unlink()      # a fresh clone
    module = project / "labcode" / "consumers.py"
    module.write_text(module.read_text().replace('"first",', '"first:",'))
    module.write_text(module.read_text().replace('"second",', '"second:",'))
    result = build(project, "build", "--jobs", "2", "--why")
    assert result.returncode == 0, result.stderr
    assert labs_line(result).endswith("labs: 3 run, 3 cached, 0 failed")
    assert result.stderr.count("ran labcode.pipeline:make") == 1
    page = (project / "output" / "posts" / "two.html").read_text()
    assert "first: 0 2 4 6 8" in page and "second: 0 2 4 6 8" in page


LEAKY = '''\
"""Labs that leave things behind (a test module of this project)."""
import threading
import time

import torch


def leaves_a_thread():
    def chatter():
        while True:
            print("LEAKED LINE")
            time.sleep(0.01)
    threading.Thread(target=chatter, daemon=True).start()
    time.sleep(0.05)
    return "started"


def changes_state():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    return "changed"


def reports_state():
    time.sleep(0.2)
    return {"threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()),
            "draw": round(torch.rand(1).item(), 6)}
'''


def test_a_thread_a_lab_leaves_running_never_reaches_the_next_lab(project):
    write(project / "labcode" / "leaky.py", LEAKY)
    write(project / "content" / "posts" / "leaky.md",
          "---\ntitle: Leaky\ndate: 2026-10-08\n---\n\n```lab\nlabcode.leaky:leaves_a_thread\n"
          "```\n\n```lab\nlabcode.leaky:reports_state\nshow: output, value\n```\n")
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert "left thread" in result.stderr and "its worker was replaced" in result.stderr
    entry = next((project / "labcache").glob("leaky-reports_state-*.json")).read_text()
    assert "LEAKED LINE" not in entry


def test_each_lab_starts_from_the_same_state_whatever_ran_before(project, tmp_path):
    write(project / "labcode" / "leaky.py", LEAKY)
    write(project / "content" / "posts" / "state.md",
          "---\ntitle: State\ndate: 2026-10-08\n---\n\n```lab\nlabcode.leaky:changes_state\n"
          "```\n\n```lab\nlabcode.leaky:reports_state\nshow: value\n```\n")
    assert build(project).returncode == 0
    after_other = json.loads(next((project / "labcache").glob(
        "leaky-reports_state-*.json")).read_text())["result"]["data"]
    alone = build(project, "lab", "labcode.leaky:reports_state")
    assert f"| threads | {after_other['threads']} |" in alone.stdout
    assert "| dtype | torch.float32 |" in alone.stdout
    assert f"| draw | {after_other['draw']:.4g} |" in alone.stdout


def test_check_on_an_untouched_build_exits_0(project):
    result = build(project, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 published outputs would change" in result.stdout


TIMED = '''\
"""A lab that measures time and plots it (a test module of this project)."""
import time

import matplotlib.pyplot as plt


def timed():
    start = time.perf_counter()
    sum(range(10_000))
    seconds = time.perf_counter() - start
    plt.figure()
    plt.plot([0, 1], [0, seconds])
    return {"items": 10000, "seconds": seconds}
'''


def test_check_reports_declared_measurements_apart_and_still_exits_0(project):
    write(project / "labcode" / "timed.py", TIMED)
    write(project / "content" / "posts" / "timed.md",
          "---\ntitle: Timed\ndate: 2026-10-08\n---\n\n```lab\nlabcode.timed:timed\n"
          "show: value, figures\nname: t\nmeasured: seconds, figures\n```\n\nIt took {{ t.seconds:.9f }} s.\n")
    assert build(project).returncode == 0
    result = build(project, "check")
    assert result.returncode == 0, result.stdout
    assert "seconds:" in result.stdout and "(measured; not a change)" in result.stdout
    assert "{{ t.seconds:.9f }}: cited value" in result.stdout   # a cited measurement, apart
    assert "a figure would change (measured; not a change)" in result.stdout


def test_check_and_hand_runs_leave_the_next_build_nothing_to_rerun(project):
    add_checkpoint_post(project)
    assert labs_line(build(project)).endswith("labs: 2 run, 3 cached, 0 failed")
    before = cache_files(project)
    assert build(project, "check").returncode == 0
    assert build(project, "lab", "labcode.checkpoints:train").returncode == 0
    assert build(project, "lab", "labcode.sampling:sample").returncode == 0
    assert labs_line(build(project)).endswith("labs: 0 run, 5 cached, 0 failed")
    assert cache_files(project) == before


OUTSIDE = '''\
"""Reads a file named by an environment variable, like tiktoken's cache (a test module)."""
import os


def outside():
    with open(os.path.join(os.environ["WORDS_DIR"], "words.txt")) as handle:
        return {"words": len(handle.read().split())}
'''


def test_a_file_read_outside_the_project_is_keyed_by_content_not_by_where_it_lives(project,
                                                                                    tmp_path):
    write(project / "labcode" / "outside.py", OUTSIDE)
    write(project / "content" / "posts" / "outside.md",
          "---\ntitle: Outside\ndate: 2026-10-08\n---\n\n```lab\nlabcode.outside:outside\n```\n")
    inside, elsewhere = project / ".cache" / "words", tmp_path / "elsewhere"
    for folder in (inside, elsewhere):
        write(folder / "words.txt", "to be or not")

    def build_with(folder):
        env = dict(os.environ, WORDS_DIR=str(folder))
        return subprocess.run([sys.executable, "build.py"], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600)

    assert labs_line(build_with(inside)).endswith("labs: 1 run, 3 cached, 0 failed")
    entry = next((project / "labcache").glob("outside-outside-*.json")).read_text()
    assert str(tmp_path) not in entry
    shutil.rmtree(inside)     # as on a clone whose TIKTOKEN_CACHE_DIR points elsewhere
    assert labs_line(build_with(elsewhere)).endswith("labs: 0 run, 4 cached, 0 failed")


def test_a_lab_returning_a_generator_is_a_one_line_error_naming_post_and_line(project):
    write(project / "labcode" / "gen.py", "def numbers():\n    return (n for n in range(3))\n")
    write(project / "content" / "posts" / "gen.md",
          "---\ntitle: Gen\ndate: 2026-10-08\n---\n\n```lab\nlabcode.gen:numbers\n```\n")
    result = build(project)
    assert result.returncode == 1
    first = next(line for line in result.stderr.splitlines() if ": error: " in line)
    assert first.startswith("content/posts/gen.md:6: error: lab labcode.gen:numbers failed: "
                            "the returned value is a builtins.generator, which has no stable "
                            "text form")
    assert "a lab may return None, bool, int" in first
    assert "0x" not in result.stderr


def test_device_cuda_without_a_gpu_is_one_line_before_any_lab_and_exit_2(project):
    (project / "labcode" / "gelu.py").write_text(
        (project / "labcode" / "gelu.py").read_text() + "\nEDITED = True\n")
    result = build(project, "build", "--device", "cuda")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --device cuda: this machine has no CUDA GPU that torch "
        f"{importlib.metadata.version('torch')} can use; leave --device out or use --device cpu"]


def test_site_toml_asking_for_cuda_without_a_gpu_names_site_toml_not_the_command_line(project):
    toml = project / "site.toml"
    toml.write_text(toml.read_text().replace("[labs]\n", '[labs]\ndevice = "cuda"\n'))
    (project / "labcode" / "gelu.py").write_text(
        (project / "labcode" / "gelu.py").read_text() + "\nEDITED = True\n")
    result = build(project, "build")
    assert result.returncode == 2
    line = toml.read_text().splitlines().index('device = "cuda"') + 1
    assert result.stderr.strip().splitlines() == [
        f"site.toml:{line}: error: [labs] device cuda: this machine has no CUDA GPU that torch "
        f"{importlib.metadata.version('torch')} can use; remove [labs] device or set it to \"cpu\""]


def test_rerun_command_with_a_python_lacking_torch_uses_the_project_venv_or_says_what_to_do(
        project):
    bare = [sys.executable, "-S", "build.py", "lab", "labcode.labs.gpt_model:gelu_vs_relu_plot"]
    result = subprocess.run(bare, cwd=project, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("run `make setup` in the project folder (it creates "
                                          ".venv), then run the command again")
    (project / ".venv").symlink_to(Path(sys.prefix))     # as `make setup` leaves it
    result = subprocess.run(bare, cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"ran labcode.labs.gpt_model:gelu_vs_relu_plot on " in result.stdout and f" CPU ({cpu_isa()})" in result.stdout


CITED = '''\
"""A lab whose result prose cites (a test module of this project)."""
SCALE = 2


def measure():
    return {"loss": 1.25 * SCALE, "tokens": 20758}
'''


def test_check_names_a_cited_value_that_would_change_and_a_copied_number(project):
    write(project / "labcode" / "cited.py", CITED)
    post = project / "content" / "posts" / "cited.md"
    write(post, "---\ntitle: Cited\ndate: 2026-10-08\n---\n\n```lab\nlabcode.cited:measure\n"
          "name: m\n```\n\nThe loss is {{ m.loss:.2f }} after {{ m.tokens:, }} tokens.\n")
    result = build(project)
    assert result.returncode == 0, result.stderr
    page = BeautifulSoup((project / "output" / "posts" / "cited.html").read_text(), "html.parser")
    cites = page.select(".lab-cite")
    assert [c.get_text() for c in cites] == ["2.50", "20,758"]
    # the lab imports no torch, so it ran no torch kernel: its CPU is named without a kernel set
    assert re.search(r" on .+ CPU, torch ", cites[0]["title"])
    assert build(project, "check").returncode == 0
    module = project / "labcode" / "cited.py"
    module.write_text(module.read_text().replace("SCALE = 2", "SCALE = 3"))
    post.write_text(post.read_text() + "\nEarlier runs gave 20,758 tokens too.\n")
    result = build(project, "check")
    assert result.returncode == 1
    assert "content/posts/cited.md:11: {{ m.loss:.2f }}: cited value 2.50 -> 3.75" in \
        result.stdout
    assert "content/posts/cited.md:13: warning: 20,758 repeats a result of lab" in result.stdout


def test_labs_page_lists_every_lab_with_its_post_provenance_status_and_rerun_command(project):
    out = project / "output"
    page = BeautifulSoup((out / "labs" / "index.html").read_text(), "html.parser")
    entries = page.select(".labs-entry")
    assert len(entries) == 3
    attention = next(e for e in entries if "causal_weights_demo" in e.get_text())
    assert attention.select_one(".labs-where").get_text(strip=True) == "Causal attention"
    assert attention.select_one(".labs-device").get_text().endswith(f" CPU ({cpu_isa()})")
    assert attention.select_one(".labs-command").get_text() == \
        "python build.py lab labcode.labs.attention:causal_weights_demo --arg seq_len=4"
    # a phone breaks a long reference at its dots and colon, never inside a name
    assert "labcode.<wbr/>labs.<wbr/>attention:<wbr/>causal_weights_demo" in str(attention.select_one(".labs-ref code"))
    link = attention.select_one(".labs-where a")["href"]
    assert link.startswith("/blog/posts/") and "#lab-" in link
    assert len(page.select(".lab-status-ran")) == 3           # the cold build ran them all
    assert build(project).returncode == 0
    again = BeautifulSoup((out / "labs" / "index.html").read_text(), "html.parser")
    assert [s.get_text() for s in again.select(".lab-status-cached")] == ["reused"] * 3
    assert "https://example.org/blog/labs/index.html.md" in (out / "llms.txt").read_text()
    mirror = (out / "labs" / "index.html.md").read_text()
    assert "(https://example.org/blog/posts/" in mirror and "| reused |" in mirror
    assert 'href="/blog/labs/"' in (out / "index.html").read_text()


LISTING = '''\
"""Counts the text files of a folder (a test module of this project)."""
from pathlib import Path


def count_files(folder: str = "data"):
    return {"files": len(sorted(Path(folder).glob("*.txt")))}
'''


def test_a_file_added_to_a_folder_a_lab_listed_reruns_it(project):
    write(project / "labcode" / "listing.py", LISTING)
    write(project / "content" / "posts" / "listing.md",
          "---\ntitle: Listing\ndate: 2026-10-08\n---\n\n```lab\nlabcode.listing:count_files\n"
          "show: value\n```\n")
    assert labs_line(build(project)).endswith("labs: 1 run, 3 cached, 0 failed")
    assert labs_line(build(project)).endswith("labs: 0 run, 4 cached, 0 failed")
    write(project / "data" / "more.txt", "another file")
    result = build(project, "build", "--why")
    assert labs_line(result).endswith("labs: 1 run, 3 cached, 0 failed")
    assert "folder data/ has other files now" in result.stderr
    assert "| files | 2 |" in build(project, "lab", "labcode.listing:count_files").stdout


def test_a_build_with_nothing_changed_loads_neither_torch_nor_the_lab_engine(project):
    """After the build that reuses every lab has been remembered, a build with nothing changed
    stops after looking at the inputs; a data file a lab read is one of them."""
    def imported_build() -> tuple[str, str]:
        result = subprocess.run([sys.executable, "-X", "importtime", "build.py"], cwd=project,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        heavy = sorted({line.split("|")[-1].strip() for line in result.stderr.splitlines()
                        if line.startswith("import time:")} & {"torch", "jinja2", "markdown2", "labnotes.labs.stage"})
        return labs_line(result), " ".join(heavy)

    assert build(project).returncode == 0          # the copy's files have other inodes: a real build
    line, heavy = imported_build()
    assert line.endswith("labs: 0 run, 3 cached, 0 failed") and heavy == ""
    (project / "data" / "words.txt").write_text("to be or not to be, that is")
    line, heavy = imported_build()
    assert line.endswith("labs: 1 run, 2 cached, 0 failed") and "labnotes.labs.stage" in heavy
    line, heavy = imported_build()                 # the labs page now says "reused": a real build
    assert line.endswith("labs: 0 run, 3 cached, 0 failed") and "jinja2" in heavy
    line, heavy = imported_build()
    assert line.endswith("labs: 0 run, 3 cached, 0 failed") and heavy == ""

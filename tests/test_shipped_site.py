"""End to end: build the real content/ with every lab executed (labcode's quick mode)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import feedparser
import nbformat
import pytest
from bs4 import BeautifulSoup
from llms_txt import parse_llms_file

from labcode.tokenizer import R50K_CACHE_NAME
from labnotes.fences import find_fences
from labnotes.labs.directive import parse_block
from labnotes.model import FencedBlock

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    project = tmp_path_factory.mktemp("shipped") / "blog"
    project.mkdir()
    for name in ("content", "labcode", "templates", "static"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("build.py", "site.toml"):
        shutil.copy(REPO / name, project / name)
    env = dict(os.environ)
    env.setdefault("TIKTOKEN_CACHE_DIR", str(REPO / ".cache" / "tiktoken"))
    if not (Path(env["TIKTOKEN_CACHE_DIR"]) / R50K_CACHE_NAME).is_file():
        # Half the shipped labs tokenize with GPT-2's encoding, which `make setup` copies from
        # ../shared (there is no internet to fetch it): without it the blog cannot be built.
        pytest.skip("GPT-2 encoding not installed (run `make setup` with ../shared beside the project)")
    result = subprocess.run([sys.executable, "build.py", "build", "--quick"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return project, result


def lab_blocks(post: Path) -> int:
    """Lab and labsource blocks, as the generator finds them (not examples inside a fence)."""
    return sum(f.info in ("lab", "labsource")
               for f in find_fences(post.read_text(encoding="utf-8").split("\n")))


def test_every_lab_of_the_shipped_posts_runs_without_failure(shipped):
    project, result = shipped
    summary = result.stdout.strip().splitlines()[-1]
    ran = int(re.search(r"labs: (\d+) run, 0 cached, 0 failed$", summary).group(1))
    assert ran >= 10


def test_each_post_page_shows_every_lab_block_with_provenance(shipped):
    project, _ = shipped
    posts = sorted((project / "content" / "posts").glob("*.md"))
    assert len(posts) >= 3
    for post in posts:
        page_file = project / "output" / "posts" / f"{post.stem[11:]}.html"
        page = BeautifulSoup(page_file.read_text(), "html5lib")
        labs = page.select(".lab")
        assert len(labs) == lab_blocks(post), post.name
        for lab in labs:
            assert not lab.select(".lab-error")
            if "lab-source-only" not in lab["class"]:
                assert "Rerun: python build.py lab labcode." in lab.get_text(" ", strip=True)
        for img in page.select(".lab img"):
            assert (project / "output" / img["src"].lstrip("/")).is_file()


def test_training_post_shows_samples_and_a_loss_curve(shipped):
    project, _ = shipped
    page_file = project / "output" / "posts" / "training-a-tiny-gpt-on-this-blog.html"
    page = BeautifulSoup(page_file.read_text(), "html5lib")
    text = page.get_text(" ")
    assert "greedy" in text and "val loss" in text
    assert any(img["src"].endswith(".svg") for img in page.select(".lab img"))


def test_feed_llms_txt_and_mirrors_carry_the_lab_results(shipped):
    project, _ = shipped
    out = project / "output"
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert not feed.bozo
    for entry in feed.entries:
        content = BeautifulSoup(entry.content[0].value, "html5lib")
        for img in content.select("img"):
            assert img["src"].startswith("https://")
    llms = parse_llms_file((out / "llms.txt").read_text())
    links = [link["url"] for section in llms["sections"].values() for link in section]
    assert links and all(url.endswith((".md", "llms-full.txt")) for url in links)
    for url in links:
        if "/posts/" in url:
            mirror = out / url.split("/", 3)[3]
            assert re.search(r"\*Ran on .+ CPU(?: \(\w[^)]*\))? with torch", mirror.read_text())
    assert "Rerun:" in (out / "llms-full.txt").read_text()


def test_every_number_the_posts_cite_comes_from_a_lab_and_none_is_copied(shipped):
    project, result = shipped
    assert ": warning:" not in result.stderr        # the copied-number lint: nothing copied
    out = project / "output"
    cited = 0
    for page_file in (out / "posts").glob("*.html"):
        page = BeautifulSoup(page_file.read_text(), "html5lib")
        for cite in page.select(".lab-cite"):
            assert cite["title"].split(":")[0].isidentifier() and re.search(r" on .+ CPU(?: \(\w[^)]*\))?, torch", cite["title"])
            cited += 1
        for code in page.select("code, pre, .lab"):
            code.decompose()
        assert "{{" not in page.get_text(), page_file.name
        mirror = (page_file.parent / (page_file.name + ".md")).read_text()
        assert 'class="lab-cite"' not in mirror
    assert cited >= 100


def this_python_as_kernel(folder: Path, monkeypatch) -> str:
    """A Jupyter kernel running this Python (the project's .venv), found through a private
    JUPYTER_PATH: no user-level Jupyter set-up is read or needed, nothing is downloaded."""
    spec = folder / "jupyter" / "kernels" / "labnotes-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Lab Notes (test)", "language": "python"}))
    for name, sub in [("JUPYTER_PATH", "jupyter"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_CONFIG_DIR", "config"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")]:
        monkeypatch.setenv(name, str(folder / sub))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", os.environ.get("TIKTOKEN_CACHE_DIR", str(REPO / ".cache" / "tiktoken")))
    return "labnotes-test"


def without_measurements(table: str, measured: set[str]) -> str:
    """A value table (Markdown) with the rows or columns a lab declares `measured:` blanked."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.strip().splitlines()]
    if not rows or not measured:
        return table
    if rows[0] == ["name", "value"]:
        rows = [[n, "(measured)" if n in measured else v] for n, v in rows]
    else:
        masked = [i for i, column in enumerate(rows[0]) if column in measured]
        rows = [rows[0]] + [["(measured)" if i in masked else c for i, c in enumerate(row)] for row in rows[1:]]
    return "\n".join(" | ".join(row) for row in rows)


def test_a_shipped_notebook_run_by_a_kernel_of_this_environment_shows_what_its_post_published(
        shipped, tmp_path, monkeypatch):
    # The training loop's extras: its labs print, return a value table and draw figures, and
    # take seconds on a CPU.
    from nbclient import NotebookClient
    project, _ = shipped
    slug = "the-training-loops-extras"
    published = nbformat.read(project / "output" / "posts" / f"{slug}.ipynb", as_version=4)
    ran = nbformat.read(project / "output" / "posts" / f"{slug}.ipynb", as_version=4)
    post = next((project / "content" / "posts").glob(f"*-{slug}.md"))
    lines = post.read_text(encoding="utf-8").split("\n")
    measured = {call.ref: set(call.measured) for call in
                (parse_block(FencedBlock("lab", post, f.start + 1, f.inner(lines)))
                 for f in find_fences(lines) if f.info == "lab")}

    client = NotebookClient(ran, kernel_name=this_python_as_kernel(tmp_path, monkeypatch), timeout=600,
                            resources={"metadata": {"path": str(project)}})
    client.execute()

    labs = 0
    for before, after in zip(published.cells, ran.cells):
        if before.cell_type != "code" or "lab.start(\"" not in before.source:   # the set-up cell runs no lab
            continue
        labs += 1
        keys = measured[re.search(r'lab\.start\("([^"]+)"\)', before.source).group(1)]
        assert [o.output_type for o in after.outputs if o.output_type == "error"] == []
        text = lambda cell: "".join(o.text for o in cell.outputs if o.output_type == "stream")  # noqa: E731
        assert text(after) == text(before)
        kinds = lambda cell: [sorted(o.data) for o in cell.outputs if o.output_type == "display_data"]  # noqa: E731
        assert kinds(after) == kinds(before)
        values = lambda cell: [without_measurements(o.data["text/plain"], keys)  # noqa: E731
                               for o in cell.outputs if o.output_type == "execute_result"]
        assert values(after) == values(before)
    assert labs == len(measured) >= 3
    assert any(o.output_type == "execute_result" for cell in published.cells for o in cell.get("outputs", []))
    assert any(o.output_type == "display_data" for cell in published.cells for o in cell.get("outputs", []))

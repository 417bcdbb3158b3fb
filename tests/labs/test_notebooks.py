"""Each post with labs is also a Jupyter notebook: built from a temporary project with real labcode."""
import ast
import base64
import shutil
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from labnotes.fences import find_fences
from labnotes.labs.directive import parse_block
from labnotes.model import FencedBlock
from test_lab_builds import REPO, SITE_TOML, build, copy_of, new_project, write

# A lab that writes a file and one that reads it (a test module of this project).
COUNTING = '''\
"""Numbers written by one lab and summed by another (a test module of this project)."""
from pathlib import Path


def write_numbers(path: str = ".cache/labs/numbers.txt", scale: int = 2):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(" ".join(str(scale * n) for n in range(5)))
    print("wrote 5 numbers")


def numbers_summary(path: str = ".cache/labs/numbers.txt", device: str = "cpu"):
    numbers = [int(n) for n in Path(path).read_text().split()]
    print("sum", sum(numbers), "on", device)
    return {"total": sum(numbers), "mean": sum(numbers) / len(numbers)}
'''

ATTENTION_POST = """\
---
title: "Causal attention & its mask"
date: 2026-10-02T10:00:00+00:00
categories: [Attention]
---
The mask sets $w_{ij} = 0$ for $j > i$, so no word attends to a later one; the
[numbers post](/posts/numbers.html) is unrelated. Renting a GPU costs $5 and $10 an hour.

<!--more-->

```labsource
labcode.attention:CausalAttention
```

```lab
labcode.labs.attention:causal_weights_demo
name: causal
show: output, value, figures
seq_len: 4
text: "Your journey starts with one step"
```

GELU, drawn next to ReLU (a reference to another post: [](post:numbers)):

```lab
labcode.labs.gpt_model:gelu_vs_relu_plot
```

$$\\mathrm{GELU}(x) = x\\,\\Phi(x)$$
"""

NUMBERS_POST = """\
---
title: "Numbers"
date: 2026-10-03T10:00:00+00:00
---
A lab writes numbers to a file.

```lab
labcode.counting:write_numbers
scale: 2
```
"""

SUMMARY_POST = """\
---
title: "A summary"
date: 2026-10-04T10:00:00+00:00
---
The numbers add up to {{ summary.total }}, a mean of {{ summary.mean:.1f }}.

```lab
labcode.counting:numbers_summary
name: summary
after: labcode.counting:write_numbers
show: output, value
```
"""

PLAIN_POST = """\
---
title: "No labs"
date: 2026-10-05T10:00:00+00:00
---
Only prose, and the source of a class, which runs nothing:

```labsource
labcode.attention:CausalAttention
```
"""


def rebuild(project: Path) -> None:
    result = build(project)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    project = new_project(tmp_path_factory.mktemp("notebooks"), {
        "site.toml": SITE_TOML, "labcode/counting.py": COUNTING,
        **{f"content/posts/{name}": text for name, text in [
            ("attention.md", ATTENTION_POST), ("numbers.md", NUMBERS_POST),
            ("summary.md", SUMMARY_POST), ("plain.md", PLAIN_POST)]}})
    rebuild(project)
    return project


@pytest.fixture
def project(built, tmp_path) -> Path:
    return copy_of(built, tmp_path)


def notebook(project: Path, slug: str):
    return nbformat.read(project / "output" / "posts" / f"{slug}.ipynb", as_version=4)


def page(project: Path, slug: str) -> BeautifulSoup:
    return BeautifulSoup((project / "output" / "posts" / f"{slug}.html").read_text(), "html5lib")


def lab_calls(project: Path, slug: str):
    """The post's ```lab blocks, parsed as the build parses them, in the post's order."""
    path = project / "content" / "posts" / f"{slug}.md"
    lines = path.read_text().split("\n")
    return [parse_block(FencedBlock("lab", path, fence.start + 1, fence.inner(lines)))
            for fence in find_fences(lines) if fence.info == "lab"]


def argument(node: ast.expr):
    """A keyword argument's value: a literal as its Python value, a name such as `device` as text."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def called(cell) -> tuple[str, dict]:
    """The labcode function a code cell calls and its keyword arguments."""
    tree = ast.parse(cell.source)
    imported = {alias.asname or alias.name: node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imported)
    return (f"{imported[call.func.id]}:{call.func.id}",
            {k.arg: argument(k.value) for k in call.keywords})


def lab_cells(nb) -> list:
    """Code cells that call a labcode function (the first code cell only sets up)."""
    return [cell for cell in nb.cells[2:] if cell.cell_type == "code" and "from labcode." in cell.source]


def streams(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def test_each_post_with_labs_is_a_valid_notebook_at_its_url_with_ipynb(built):
    posts = built / "output" / "posts"
    assert sorted(p.name for p in posts.glob("*.ipynb")) == \
        ["attention.ipynb", "numbers.ipynb", "summary.ipynb"]      # plain.md runs no lab
    for path in posts.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert (nb.nbformat, nb.nbformat_minor) >= (4, 5)
        ids = [cell.id for cell in nb.cells]
        assert len(set(ids)) == len(ids)


def test_first_cells_name_the_post_where_the_outputs_were_made_and_set_up_the_device(built):
    nb = notebook(built, "attention")
    intro = nb.cells[0].source
    assert intro.startswith("# Causal attention & its mask\n")
    assert "(https://example.org/blog/posts/attention.html)" in intro
    provenance = page(built, "attention").select_one(".lab-provenance").get_text()
    assert " CPU (" in provenance and "CPU (" in intro and ") with torch" in intro and "make setup" in intro
    setup = nb.cells[1]
    assert setup.cell_type == "code" and "best_device()" in setup.source and "os.chdir(ROOT)" in setup.source


def test_prose_cells_show_cited_values_as_text_and_keep_latex_maths_and_absolute_links(built):
    cited = [span.get_text() for span in page(built, "summary").select(".lab-cite")]
    assert len(cited) == 2
    prose = "\n".join(cell.source for cell in notebook(built, "summary").cells[2:] if cell.cell_type == "markdown")
    assert f"add up to {cited[0]}, a mean of {cited[1]}." in prose
    assert "{{" not in prose

    attention = "\n".join(c.source for c in notebook(built, "attention").cells[2:] if c.cell_type == "markdown")
    assert "$w_{ij} = 0$ for $j > i$" in attention and "$$\\mathrm{GELU}(x) = x\\,\\Phi(x)$$" in attention
    assert "(https://example.org/blog/posts/numbers.html)" in attention
    assert "(a reference to another post: [Numbers](https://example.org/blog/posts/numbers.html))" in attention
    assert "costs \\$5 and \\$10 an hour" in attention     # prices, as on the page, not maths to Jupyter
    assert "<!--more-->" not in attention
    assert "class CausalAttention" in attention        # the labsource block, as source to read


def test_each_lab_is_a_code_cell_calling_its_function_with_the_directive_arguments_in_post_order(built):
    for slug in ("attention", "numbers"):
        calls = lab_calls(built, slug)
        cells = lab_cells(notebook(built, slug))
        assert len(cells) == len(calls)
        for cell, call in zip(cells, calls):
            ref, kwargs = called(cell)
            assert ref == call.ref
            expected = call.kwargs()
            if call.ref == "labcode.labs.attention:causal_weights_demo":   # takes a device: the notebook's
                expected["device"] = "device"
            assert kwargs == expected
            assert f"lab.start({call.ref!r})".replace("'", '"') in cell.source


def test_code_cells_carry_the_outputs_the_page_published(built):
    page_labs = page(built, "attention").select(".lab:not(.lab-source-only)")
    cells = lab_cells(notebook(built, "attention"))
    assert len(cells) == len(page_labs) == 2
    for cell, lab in zip(cells, page_labs):
        assert streams(cell).strip() == lab.select_one(".lab-output").get_text().strip()
        images = [o for o in cell.outputs if o.output_type == "display_data"]
        published = [img["src"].removeprefix("/blog/") for img in lab.select("img")]
        assert len(images) == len(published) >= 1
        for output, src in zip(images, published):
            data = (built / "output" / src).read_bytes()
            if src.endswith(".png"):
                assert base64.b64decode(output.data["image/png"]) == data
            else:
                assert output.data["image/svg+xml"] == data.decode()
    value = [o for o in cells[0].outputs if o.output_type == "execute_result"]
    shown = page_labs[0].select_one(".lab-value pre").get_text()
    assert len(value) == 1 and value[0].data["text/plain"].strip() == shown.strip()
    assert not [o for o in cells[1].outputs if o.output_type == "execute_result"]   # show: lacks value


def test_a_lab_that_runs_after_a_lab_of_another_post_gets_a_cell_running_that_lab_first(built):
    nb = notebook(built, "summary")
    cells = lab_cells(nb)
    assert [called(cell)[0] for cell in cells] == ["labcode.counting:write_numbers", "labcode.counting:numbers_summary"]
    assert called(cells[0])[1] == lab_calls(built, "numbers")[0].kwargs()
    note = nb.cells[nb.cells.index(cells[0]) - 1]
    assert note.cell_type == "markdown" and "(https://example.org/blog/posts/numbers.html)" in note.source
    table = [o for o in cells[1].outputs if o.output_type == "execute_result"][0]
    assert "| total |" in table.data["text/markdown"]
    cited = page(built, "summary").select_one(".lab-cite").get_text()
    assert f"| total | {cited} |" in table.data["text/plain"]


def test_post_page_links_its_notebook_and_a_post_without_labs_links_none(built):
    link = page(built, "attention").select_one("a[href$='.ipynb']")
    assert link is not None and link.get_text() == "Download as notebook"
    assert link["href"] == "/blog/posts/attention.ipynb"
    assert (built / "output" / "posts" / "attention.ipynb").is_file()
    assert page(built, "plain").select_one("a[href$='.ipynb']") is None


def test_notebooks_of_an_incremental_build_equal_those_of_a_clean_build(project):
    post = project / "content" / "posts" / "summary.md"
    post.write_text(post.read_text().replace("The numbers add up", "Summed, the numbers add up"))
    rebuild(project)
    incremental = {p.name: p.read_bytes() for p in (project / "output" / "posts").glob("*.ipynb")}
    assert b"Summed, the numbers" in incremental["summary.ipynb"]
    before = (project / "output" / "posts" / "attention.ipynb").stat().st_mtime_ns
    rebuild(project)     # nothing changed: no notebook is rewritten
    assert (project / "output" / "posts" / "attention.ipynb").stat().st_mtime_ns == before
    shutil.rmtree(project / "output")
    shutil.rmtree(project / ".cache" / "render")
    rebuild(project)
    clean = {p.name: p.read_bytes() for p in (project / "output" / "posts").glob("*.ipynb")}
    assert clean == incremental


def test_a_site_naming_its_repository_says_what_to_clone_in_notebooks_labs_page_and_footer(built, project):
    intro = notebook(built, "attention").cells[0].source
    assert "git clone <the blog's repository> lab-notes" in intro   # not said: a placeholder
    assert "repository" not in page(built, "attention").select_one(".site-footer").get_text()
    url = "https://git.example.org/lab-notes.git"
    toml = project / "site.toml"
    toml.write_text(f'repository = "{url}"\n' + toml.read_text(encoding="utf-8"), encoding="utf-8")
    rebuild(project)
    assert f"    git clone {url} lab-notes && cd lab-notes\n" in notebook(project, "attention").cells[0].source
    labs = BeautifulSoup((project / "output" / "labs" / "index.html").read_text(encoding="utf-8"), "html.parser")
    assert f"git clone {url}" in labs.select_one(".listing-header").get_text()
    assert f"(`git clone {url}`, then `make setup`)" in (project / "output" / "labs" / "index.html.md").read_text(encoding="utf-8")
    footer = page(project, "attention").select_one(".site-footer a[href='" + url + "']")
    assert footer is not None and footer.get_text() == "the blog's repository"

"""Every post with labs as a Jupyter notebook, `posts/<slug>.ipynb`, for learners to rerun.

The prose becomes Markdown cells (the text of the post's Markdown mirror: citations as their
plain values, maths as LaTeX, links absolute); each ```lab block becomes a code cell that
calls the same labcode function with the same arguments and carries the outputs the post
published. A lab that runs `after:` a lab the notebook has not run yet (one from another
post) gets a cell running that lab first. The first code cell sets up: it finds the clone of
the repository, picks the device as the build does (`labcode.device.best_device`: CUDA, then
MPS, then CPU) and starts a `labnotes.labs.session.LabSession`, which starts each lab from
the state the build starts it from and shows its value and figures as the post does.

Pure: a document and its labs in, the notebook's bytes out; no clock, cell ids from content.
"""
from __future__ import annotations

import base64
import hashlib
import json
import keyword
from collections.abc import Callable, Sequence

from .feeds import absolute_url
from .llms import absolutize_markdown, inline_text, link_text, markdown_url, split_fenced_code
from .maths import code_span_end, maths_end
from .model import Document, FencedBlock, NotebookLab, RenderedBlock, SiteConfig

# What the set-up cell defines: a lab's result is never bound to one of these names.
_SETUP_NAMES = {"ROOT", "device", "lab", "find_repository", "os", "sys", "Path", "best_device", "LabSession"}
_SHOWN_PARTS = ("output", "value", "figures")   # `show:` parts that LabSession.show displays

SETUP_CODE = '''\
# Set-up: run this cell first. It finds the clone of the repository (labs read files such as
# content/data/corpus.txt relative to its root), picks the device as the build does (CUDA,
# then Apple's MPS, then the CPU), and starts a LabSession: `lab.start(ref)` puts back the
# seeds and defaults the build starts that lab from, `lab.show(...)` shows what the post shows.
import os
import sys
from pathlib import Path


def find_repository() -> Path:
    """The clone this notebook runs in: $LABNOTES_ROOT, else the working folder or a parent."""
    here = Path.cwd().resolve()
    named = [Path(os.environ["LABNOTES_ROOT"])] if os.environ.get("LABNOTES_ROOT") else []
    for folder in [*named, here, *here.parents]:
        if (folder / "labcode" / "__init__.py").is_file() and (folder / "build.py").is_file():
            return folder.resolve()
    raise RuntimeError(
        "This notebook runs in a clone of the blog's repository: clone it, run `make setup`, "
        "then start Jupyter from the clone with the project's Python (.venv/bin/jupyter lab) "
        "and open the notebook there, or set LABNOTES_ROOT to the clone's folder.")


ROOT = find_repository()
os.chdir(ROOT)                   # relative paths in labs are relative to the repository's root
sys.path.insert(0, str(ROOT))    # its labcode, not another copy
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT / ".cache" / "tiktoken"))   # from `make setup`
try:
    from labcode.device import best_device
    from labnotes.labs.session import LabSession
except ImportError as missing:
    raise RuntimeError(f"{missing}: run this notebook with the project's Python, made by `make setup` "
                       "(.venv/bin/jupyter lab, or choose .venv/bin/python as the kernel)") from missing

device = str(best_device())      # device = "cpu" reproduces numbers the post made on a CPU
lab = LabSession()
'''


def has_notebook(doc: Document) -> bool:
    """A post with at least one ```lab block is also published as a notebook."""
    return doc.kind == "post" and any(block.kind == "lab" for block in doc.blocks)


def notebook_path(doc: Document) -> str:
    """Where the notebook of `doc` is written: its HTML file with `.ipynb` for `.html`."""
    return doc.output_path.removesuffix(".html") + ".ipynb"


def notebook_pieces(doc: Document, block_renderer: Callable[[FencedBlock], RenderedBlock],
                    notebook_lab: Callable[[FencedBlock], NotebookLab],
                    cite=None, refer=None) -> list[str | NotebookLab]:
    """The body as Markdown prose (```labsource blocks as their mirror text) and the labs between;
    `cite` and `refer` fill in citations and post references as the mirror does."""
    from .markdown import mirror_pieces
    pieces: list[str | NotebookLab] = []
    for piece in mirror_pieces(doc, cite, refer):
        if isinstance(piece, str):
            pieces.append(piece)
        elif piece.kind == "lab":
            pieces.append(notebook_lab(piece))
        else:
            pieces.append(block_renderer(piece).markdown)
    return pieces


def notebook_key(lab: NotebookLab) -> tuple:
    """Everything a notebook shows of `lab` (and the labs it runs after), for a cache key."""
    r = lab.result
    return (r.call.ref, r.call.args, r.call.show, r.call.name, lab.fills, r.status, r.error, r.output,
            json.dumps(r.value, sort_keys=True), [f["file"] for f in r.figures], r.device_name,
            [v.claim.text for v in r.claims],
            r.torch_version, r.wall_s, r.source, lab.post_title, lab.post_url,
            notebook_key(lab.upstream) if lab.upstream else None)


def render_notebook(config: SiteConfig, doc: Document, pieces: Sequence[str | NotebookLab]) -> bytes:
    """The notebook of `doc` as nbformat 4.5 JSON bytes; `pieces` as `notebook_pieces` gives them.

    Written as `nbformat.writes` writes it (sorted keys, one-space indent, multi-line text as a
    list of lines), without importing nbformat, whose schema validator takes longer to import
    than a notebook takes to make; the tests validate what this writes against nbformat's schema.
    """
    page_url = absolute_url(config, doc.url)
    cells: list[tuple[str, str, list]] = []   # (cell type, source, outputs)
    prose: list[str] = []
    ran: list[tuple] = []                     # (ref, args) of the labs the notebook has run so far
    defined: dict[str, str] = {}              # lab name -> the variable holding its result so far

    def end_prose() -> None:
        text = absolutize_markdown(_dollars_outside_maths("\n".join(prose)), page_url, config.base_url).strip()
        if text:
            cells.append(("markdown", text, []))
        prose.clear()

    def add_lab(lab: NotebookLab) -> None:
        upstream = lab.upstream
        if upstream is not None and _identity(upstream) not in ran:   # e.g. a lab of another post
            post = f"[{link_text(upstream.post_title)}]({markdown_url(absolute_url(config, upstream.post_url))})"
            cells.append(("markdown", f"The next lab runs after `{upstream.result.ref}`, a lab of {post}: "
                                      "this cell runs it first.", []))
            add_lab(upstream)
        if "source" in lab.result.show and lab.result.source:
            from .labs.render import source_markdown
            cells.append(("markdown", source_markdown(lab.result.ref, lab.result.source), []))
        cells.append(("code", lab_code(lab), lab_outputs(lab)))
        if lab.result.call.name:
            defined[lab.result.call.name] = _variable(lab)
        if lab.result.claims:
            cells.append(("code", claims_code(lab, defined), []))
        ran.append(_identity(lab))

    for piece in pieces:
        if isinstance(piece, str):
            prose.append(piece)
        else:
            end_prose()
            add_lab(piece)
    end_prose()

    labs = [piece for piece in pieces if not isinstance(piece, str)]
    made, seen, count = [], {}, 0
    for kind, source, outputs in [("markdown", _intro(config, doc, labs), []), ("code", SETUP_CODE.rstrip(), []),
                                  *cells]:
        cell_id = _cell_id(kind, source, seen)
        if kind == "markdown":
            made.append({"cell_type": "markdown", "id": cell_id, "metadata": {},
                         "source": source.splitlines(True)})
            continue
        count += 1
        for output in outputs:
            if output["output_type"] == "execute_result":
                output["execution_count"] = count
        made.append({"cell_type": "code", "execution_count": count, "id": cell_id, "metadata": {},
                     "outputs": outputs, "source": source.splitlines(True)})
    notebook = {"cells": made, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }}
    text = json.dumps(notebook, sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def lab_code(lab: NotebookLab) -> str:
    """The code cell of a lab: import its function, start as the build does, call, show."""
    r = lab.result
    module, qualname = r.ref.split(":", 1)
    function = qualname.split(".")[0]
    variable = _variable(lab)
    args = [f"{name}={source}" for name, source in r.call.args]
    args += [{"device": "device=device", "quick": "quick=True"}[fill] for fill in lab.fills]
    call = f"{variable} = {qualname}({', '.join(args)})"
    if len(call) > 100:
        call = f"{variable} = {qualname}(\n" + "".join(f"    {arg},\n" for arg in args) + ")"
    parts = "".join(f", {json.dumps(part)}" for part in r.show if part in _SHOWN_PARTS)
    made = "it failed when the post was built" if r.failed else \
        f"the outputs below are the post's, made on {r.device_name} with torch {r.torch_version} in {r.wall_text}"
    return "\n".join([
        f"# Lab {r.ref}; {made}.",
        f"from {module} import {function}",
        "",
        f"lab.start({json.dumps(r.ref)})",
        call,
        f"lab.show({variable}{parts})",
    ])


def claims_code(lab: NotebookLab, defined: dict[str, str]) -> str:
    """The claims the post checks about a lab's result, as asserts after its cell. A claim that
    reads a lab this notebook has not run (one of another post) is shown, not asserted."""
    from .labs.claims import notebook_assert
    r = lab.result
    keys = set(r.data) if isinstance(r.data, dict) else set()
    lines = ["# What the post says about this result, checked on every build (its `expect:` lines).",
             f"r = lab.data({_variable(lab)})"]
    for verdict in r.claims:
        others = _names(verdict.claim.text) - keys
        missing = sorted(name for name in others if name not in defined)
        if missing:
            lines.append(f"# checked by the build, not here (it reads lab {', '.join(missing)} of another "
                         f"post): {verdict.claim.text}")
            continue
        lines.append(notebook_assert(verdict.claim, keys, {name: f"lab.data({defined[name]})" for name in others}))
    return "\n".join(lines)


def _names(text: str) -> set[str]:
    """The names a claim reads that are not its functions, loop names or `result`."""
    import ast

    from .labs.claims import FUNCTIONS
    tree = ast.parse(text, mode="eval")
    loops = {node.target.id for node in ast.walk(tree) if isinstance(node, ast.comprehension)}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - loops - set(FUNCTIONS) - {"result"}


def _variable(lab: NotebookLab) -> str:
    r = lab.result
    function = r.ref.split(":", 1)[1].split(".")[0]
    return r.call.name if _free_name(r.call.name, function) else "result"


def lab_outputs(lab: NotebookLab) -> list:
    """The outputs the post published for `lab`, as running its cell makes them: what it printed,
    its figures, then its value (each as nbformat stores it: multi-line text as a list of lines)."""
    from .labs.render import markdown_table, value_text
    r = lab.result
    if r.failed:
        return []
    outputs = [{"output_type": "stream", "name": "stdout", "text": r.output.splitlines(True)}] \
        if r.output else []
    if "figures" in r.show:
        for figure, data in zip(r.figures, lab.figures):
            image = {"image/svg+xml": data.decode("utf-8")} if figure["file"].endswith(".svg") else \
                {"image/png": base64.b64encode(data).decode("ascii")}
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": _lines({**image, "text/plain": figure["alt"]})})
    if "value" in r.show and r.value:
        data = {"text/plain": value_text(r.value)}
        if r.value.get("kind") == "table":
            data["text/markdown"] = markdown_table(r.value["columns"], r.value["rows"])
        outputs.append({"output_type": "execute_result", "metadata": {}, "execution_count": None,
                        "data": _lines(data)})
    return outputs


def _lines(bundle: dict) -> dict:
    """A mime bundle with its text (and SVG) split into lines, as nbformat writes it."""
    return {mime: value.splitlines(True) if isinstance(value, str) and
            (mime.startswith("text/") or mime == "image/svg+xml") else value
            for mime, value in bundle.items()}


def _intro(config: SiteConfig, doc: Document, labs: Sequence[NotebookLab]) -> str:
    made = sorted({(lab.result.device_name, lab.result.torch_version) for lab in labs if not lab.result.failed})
    where = " and ".join(f"{device} with torch {torch}" for device, torch in made) or "no device (every lab failed)"
    return "\n".join([
        f"# {inline_text(doc.title)}",
        "",
        f"This notebook is the post [{link_text(doc.title)}]({markdown_url(absolute_url(config, doc.url))}) "
        f"of {inline_text(config.title)}: its prose, and each of its labs as a code cell that calls the same "
        f"`labcode` function with the same arguments. The outputs under the cells are the ones the post "
        f"published, made on {where}.",
        "",
        "**To run it**, clone the blog's repository, set it up and start Jupyter from the clone's root "
        "with the project's Python (`make setup` installs `ipykernel`; any Jupyter front end can use "
        "`.venv/bin/python` as its kernel):",
        "",
        f"    git clone {config.repository or '<the blog' + chr(39) + 's repository>'} lab-notes && cd lab-notes",
        "    make setup                        # .venv with torch and the GPT-2 encoding",
        "    .venv/bin/pip install jupyterlab",
        "    .venv/bin/jupyter lab             # then open this notebook inside the clone",
        "",
        "Run the cells in order, the set-up cell first. On the device the post names, the labs print "
        "what the post shows; elsewhere, and for timings, the numbers differ.",
    ])


def _dollars_outside_maths(markdown: str) -> str:
    """`$` that the site reads as prose ("$5 and $10") escaped, since Jupyter would read maths
    there; maths, code and `\\$` stay as written."""
    out = []
    for is_code, chunk in split_fenced_code(markdown):
        i = 0
        while not is_code and "$" in chunk[i:]:
            j = min(k for k in (chunk.find("$", i), chunk.find("`", i), chunk.find("\\", i)) if k >= 0)
            out.append(chunk[i:j])
            if chunk[j] == "`":
                i = code_span_end(chunk, j)
            elif chunk[j] == "\\":
                i = j + 2
            else:
                end = maths_end(chunk, j)
                i = end if end is not None else j + 1
                if end is None:
                    out.append("\\")
            out.append(chunk[j:i])
        out.append(chunk[i:])
    return "".join(out)


def _identity(lab: NotebookLab) -> tuple:
    return (lab.result.ref, lab.result.call.args)


def _free_name(name: str | None, function: str) -> bool:
    return bool(name) and not keyword.iskeyword(name) and name not in _SETUP_NAMES and name != function


def _cell_id(kind: str, source: str, seen: dict[str, int]) -> str:
    """A cell id from the cell's content (nbformat 4.5 wants one), numbered when repeated."""
    base = f"{kind[:2]}-" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:10]
    seen[base] = seen.get(base, 0) + 1
    return base if seen[base] == 1 else f"{base}-{seen[base]}"

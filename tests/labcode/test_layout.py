"""labcode keeps the shape STYLE.md asks for: chapters of ideas in the book's order, experiments
in labcode/labs/, every import at the top of its file, modules read in one sitting."""
import ast
import json
import re
from pathlib import Path

from labcode import CHAPTERS
from labcode.labs.figures import WIDTH

ROOT = Path(__file__).resolve().parents[2]
LABCODE = ROOT / "labcode"
LAB_REF = re.compile(r"^```lab[ \t]*\n(labcode(?:\.\w+)+):(\w+)[ \t]*$", re.M)


def _modules() -> dict[str, ast.Module]:
    """Every module of the repository's labcode, by dotted name, parsed."""
    modules = {}
    for path in sorted(LABCODE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return modules


def _labcode_imports(tree: ast.Module) -> set[str]:
    """The labcode modules a module imports (`from labcode.x import y` names labcode.x)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "labcode")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "labcode":
            found.add(node.module)
    return found


def _lab_refs():
    """(module, function) of every lab the posts and pages run."""
    refs = set()
    for path in sorted((ROOT / "content").glob("*/*.md")):
        refs.update(LAB_REF.findall(path.read_text(encoding="utf-8")))
    return sorted(refs)


def test_every_import_sits_at_the_top_of_its_module_never_inside_a_function():
    misplaced = []
    for name, tree in _modules().items():
        top = {id(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))}
        misplaced += [f"{name}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top]
    assert misplaced == []


def test_the_chapters_are_exactly_labcodes_top_level_modules():
    """A new module is either a chapter, placed in CHAPTERS, or an experiment in labcode/labs/."""
    top_level = {name.removeprefix("labcode.") for name in _modules()
                 if name.count(".") == 1 and not name.startswith("labcode.labs")}
    assert len(CHAPTERS) == len(set(CHAPTERS))
    assert set(CHAPTERS) == top_level


def test_every_chapter_imports_only_earlier_chapters_and_no_lab_and_no_matplotlib():
    modules = _modules()
    wrong = []
    for position, chapter in enumerate(CHAPTERS):
        tree = modules[f"labcode.{chapter}"]
        earlier = {f"labcode.{c}" for c in CHAPTERS[:position]}
        wrong += [f"{chapter} imports {m}" for m in sorted(_labcode_imports(tree) - earlier)]
        wrong += [f"{chapter} imports matplotlib" for node in ast.walk(tree)
                  if isinstance(node, (ast.Import, ast.ImportFrom))
                  for m in ([a.name for a in node.names] if isinstance(node, ast.Import)
                            else [node.module or ""])
                  if m.split(".")[0] == "matplotlib"]
    assert wrong == []


def test_every_lab_module_imports_only_chapters_and_the_figure_style():
    allowed = {f"labcode.{c}" for c in CHAPTERS} | {"labcode.labs.figures"}
    wrong = [f"{name} imports {m}" for name, tree in _modules().items()
             if name.startswith("labcode.labs.")
             for m in sorted(_labcode_imports(tree) - allowed)]
    assert wrong == []


def test_every_lab_the_posts_run_lives_in_labcode_labs():
    refs = _lab_refs()
    assert len(refs) > 20
    defined = {name: {node.name for node in tree.body
                      if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
               for name, tree in _modules().items()}
    outside = [f"{module}:{function}" for module, function in refs
               if not module.startswith("labcode.labs.")]
    missing = [f"{module}:{function}" for module, function in refs
               if function not in defined.get(module, ())]
    assert outside == [] and missing == []


def test_every_labcode_module_is_shorter_than_600_lines():
    lengths = {p.relative_to(LABCODE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
               for p in LABCODE.rglob("*.py")}
    assert len(lengths) > 30
    assert {name: n for name, n in lengths.items() if n >= 600} == {}


def test_every_published_lab_figure_is_drawn_to_fit_a_phone_column_and_has_a_title():
    """A figure wider than `labcode.labs.figures.WIDTH` is scaled down on a phone until its labels
    are too small to read; its title is its alt text, which a generic "Figure 1 of ..." is not."""
    from PIL import Image

    figures = [figure for path in sorted((ROOT / "labcache").glob("*.json"))
               for figure in json.loads(path.read_text(encoding="utf-8"))["result"].get("figures", [])]
    assert len(figures) > 15
    too_wide, untitled = [], []
    for figure in figures:
        path = ROOT / "labcache" / "figures" / figure["file"]
        if path.suffix == ".svg":
            inches = float(re.search(r'width="([0-9.]+)pt"', path.read_text(encoding="utf-8")[:2000])[1]) / 72
        else:
            with Image.open(path) as image:
                inches = image.width / image.info["dpi"][0]
        if inches > WIDTH + 0.2:   # a tight bounding box may overhang the axes a little
            too_wide.append(f"{figure['alt']}: {inches:.2f} in")
        if figure["alt"].startswith("Figure "):
            untitled.append(figure["alt"])
    assert too_wide == [] and untitled == []

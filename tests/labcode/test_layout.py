"""labcode keeps the shape STYLE.md asks for: modules read in one sitting, labs at the end."""
import ast
import json
import re
from pathlib import Path

from labcode.figures import WIDTH

ROOT = Path(__file__).resolve().parents[2]
LABCODE = ROOT / "labcode"
BANNER = "# === Lab entry points"
LAB_REF = re.compile(r"^```lab[ \t]*\n(labcode(?:\.\w+)+):(\w+)[ \t]*$", re.M)


def _lab_refs():
    """(module, function) of every lab the posts and pages run."""
    refs = set()
    for path in sorted((ROOT / "content").glob("*/*.md")):
        refs.update(LAB_REF.findall(path.read_text(encoding="utf-8")))
    return sorted(refs)


def test_every_labcode_module_is_shorter_than_600_lines():
    lengths = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in LABCODE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n >= 600} == {}


def test_every_lab_the_posts_run_sits_under_its_modules_lab_entry_points_banner():
    refs = _lab_refs()
    assert len(refs) > 20
    misplaced = []
    for module, function in refs:
        source = (ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
        banner = next(i for i, line in enumerate(source.splitlines(), 1) if line.startswith(BANNER))
        defined = next(node.lineno for node in ast.parse(source).body
                       if isinstance(node, ast.FunctionDef) and node.name == function)
        if defined < banner:
            misplaced.append(f"{module}:{function}")
    assert misplaced == []


def test_every_published_lab_figure_is_drawn_to_fit_a_phone_column_and_has_a_title():
    """A figure wider than `labcode.figures.WIDTH` is scaled down on a phone until its labels
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

#!/usr/bin/env python3
"""Screenshots of built pages in headless Chromium: 1280 and 390 px wide, light and dark.

    .venv/bin/python build.py && .venv/bin/python bench/screenshots.py [PAGE ...] [--out DIR]

PAGE is a site-relative URL (default: the home page and every post). The built site is served
from --site (default output/) on a local port, because pages link their CSS from the site root.
Each page is shot whole in a window --height px tall, trimmed of the empty background below it,
and cut into tiles --tile px tall (NAME-WIDTH-SCHEME-01.png, -02...) small enough to look at.
Dark mode is Chromium's --force-dark-mode, which makes `prefers-color-scheme: dark` match.
`--specimen` builds and shoots instead a one-post site holding every kind of prose element the
shipped posts lack (highlighted code, a transparent SVG plot, a table, a quote, footnotes).
Look at the PNGs: this is not a test.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

WIDTHS = (1280, 390)
SCHEMES = ("light", "dark")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", help="site-relative URLs, e.g. posts/a.html")
    parser.add_argument("--site", type=Path, default=Path("output"), help="built site (default output/)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/labnotes-shots"), help="where PNGs go")
    parser.add_argument("--height", type=int, default=30000, help="window height in CSS px (longest page)")
    parser.add_argument("--tile", type=int, default=1600, help="height of each tile in px")
    parser.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    parser.add_argument("--specimen", action="store_true", help="shoot a built specimen of prose elements")
    args = parser.parse_args()
    if args.specimen:
        args.site = _build_specimen(Path(tempfile.mkdtemp(prefix="labnotes-specimen-")))
        args.pages = ["posts/specimen.html"]
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 2
    if not (args.site / "index.html").is_file():
        print(f"no built site at {args.site}: run build.py first", file=sys.stderr)
        return 2
    pages = args.pages or ["", *sorted(f"posts/{p.name}" for p in (args.site / "posts").glob("*.html"))]
    args.out.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(args.site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        for page in pages:
            for width in (int(w) for w in args.widths.split(",")):
                for scheme in SCHEMES:
                    png = args.out / f"{_name(page)}-{width}-{scheme}.png"
                    _shoot(browser, base + page, png, width, args.height, scheme)
                    for tile in _tiles(png, args.tile):
                        print(tile)
        server.shutdown()
    return 0


def _shoot(browser: str, url: str, png: Path, width: int, height: int, scheme: str) -> None:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--window-size={width},{height}", f"--screenshot={png}", "--virtual-time-budget=3000"]
    if scheme == "dark":
        command.append("--force-dark-mode")
    subprocess.run(command + [url], check=True, capture_output=True, timeout=120)


SPECIMEN = """---
title: "Specimen: every prose element"
date: 2026-01-01
categories: [Style]
series: Specimens
summary: "Code, a plot, a table, a quote and footnotes, in light and dark."
---
A paragraph with `inline code`, a [link](https://example.org/), *emphasis*, maths $e^{i\\pi} + 1 = 0$
and a footnote.[^1]

```python
def attention(q, k, v, mask=None):  # (B, T, d) each; a line long enough to need more room than the text column gives it
    scores = q @ k.transpose(-2, -1) / k.shape[-1] ** 0.5
    return scores.softmax(-1) @ v
```

![A line plot with a transparent background](/images/plot.svg)

| model | parameters | loss |
|---|---:|---:|
| tiny | 0.93M | 3.75 |
| GPT-2 small | 124M | 3.28 |

> A quotation, set off from the text.

$$ \\mathrm{softmax}(x)_i = \\frac{e^{x_i}}{\\sum_j e^{x_j}} $$

[^1]: The footnote's text.
"""

PLOT = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 320 160" width="320" height="160">
<path d="M20 140 L20 20 M20 140 L300 140" stroke="#000" fill="none"/>
<path d="M20 130 C80 40 140 30 300 25" stroke="#1f77b4" stroke-width="2" fill="none"/>
<text x="150" y="155" font-size="10" font-family="sans-serif">step (black text on no background)</text>
</svg>"""


def _build_specimen(root: Path) -> Path:
    """A one-post site in `root`, built with the real pipeline and the repository's templates."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from labnotes.pipeline import build

    (root / "content/posts").mkdir(parents=True)
    (root / "content/images").mkdir()
    (root / "content/posts/specimen.md").write_text(SPECIMEN, encoding="utf-8")
    (root / "content/images/plot.svg").write_text(PLOT, encoding="utf-8")
    (root / "site.toml").write_text('title = "Specimen"\n', encoding="utf-8")
    build(root / "site.toml", root / "content", root / "output")
    return root / "output"


def _tiles(png: Path, tile: int) -> list[Path]:
    """Trim the empty background below the page, cut the shot into tiles; the whole shot is removed."""
    import numpy
    from PIL import Image   # Pillow and numpy come with matplotlib

    with Image.open(png) as image:
        image = image.convert("RGB")
        pixels = numpy.asarray(image)
        differs = (pixels != pixels[-1, -1]).any(axis=(1, 2))   # rows unlike the bottom-right pixel
        bottom = int(numpy.nonzero(differs)[0][-1]) + 1 if differs.any() else 1
        width = image.size[0]
        paths = []
        for number, top in enumerate(range(0, bottom, tile), start=1):
            path = png.with_name(f"{png.stem}-{number:02d}.png")
            image.crop((0, top, width, min(top + tile, bottom))).save(path)
            paths.append(path)
    png.unlink()
    return paths


def _name(page: str) -> str:
    return page.replace(".html", "").replace("/", "_").strip("_") or "index"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Screenshots of built pages in headless Chromium: 1280 and 390 px wide, light and dark.

    .venv/bin/python build.py && .venv/bin/python bench/screenshots.py [PAGE ...] [--out DIR]

PAGE is a site-relative URL (default: the home page and every post). The built site is served
from --site (default output/) on a local port, because pages link their CSS from the site root.
Each page is shot whole in a window --height px tall, trimmed of the empty background below it,
and cut into tiles --tile px tall (NAME-WIDTH-SCHEME-01.png, -02...) small enough to look at.
Dark mode is Chromium's --force-dark-mode, which makes `prefers-color-scheme: dark` match.
Look at the PNGs: this is not a test.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
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
    args = parser.parse_args()
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


def _tiles(png: Path, tile: int) -> list[Path]:
    """Trim the empty background below the page, cut the shot into tiles; the whole shot is removed."""
    from PIL import Image   # Pillow comes with matplotlib

    with Image.open(png) as image:
        image = image.convert("RGB")
        width, height = image.size
        background = image.getpixel((width - 1, height - 1))
        bottom = height
        while bottom > 1 and all(image.getpixel((x, bottom - 1)) == background for x in range(0, width, 7)):
            bottom -= 1
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

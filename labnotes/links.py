"""Find broken internal links and anchors in a built site (used by `build.py check`)."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit


class _PageLinks(HTMLParser):
    """Collects the ids of a page and the href/src values it points at."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, int]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            elif name in ("href", "src"):
                self.links.append((value, self.getpos()[0]))


def broken_links(out_dir: Path, base_url: str) -> list[str]:
    """`path:line: broken link URL (why)` for every internal link that leads nowhere."""
    out_dir = Path(out_dir)
    base_path = urlsplit(base_url).path or "/"
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base_url))
    pages: dict[Path, _PageLinks] = {}
    for page in sorted(out_dir.rglob("*.html")):
        parser = _PageLinks()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page] = parser
    problems = []
    for page, parser in pages.items():
        page_url = base_path + page.relative_to(out_dir).as_posix()
        for link, line in parser.links:
            target_url = urljoin(page_url, link)
            if target_url.startswith(origin):
                target_url = target_url[len(origin):]
            parts = urlsplit(target_url)
            if parts.scheme or parts.netloc or not parts.path.startswith(base_path):
                continue                      # external, mailto:, data:, another site
            target = out_dir / unquote(parts.path[len(base_path):])
            if parts.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(out_dir.parent) if out_dir.parent != out_dir else page}:{line}"
            if not target.is_file():
                problems.append(f"{where}: broken link {link} (no {target.relative_to(out_dir)})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: broken anchor {link} (no id "
                                    f"\"{unquote(parts.fragment)}\" in {target.relative_to(out_dir)})")
    return problems

"""The build, in one screen: load -> labs -> Markdown -> pages, feeds, llms.txt -> write."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .config import load_config
from .content import load_content
from .feeds import render_rss
from .llms import mirror_path, render_llms_full, render_llms_txt, render_markdown_mirror
from .labs.stage import run_lab_stage
from .markdown import render_document
from .model import BuildOptions, Content, LabCounts, RenderedDocument, SiteConfig
from .output import write_site
from .pages import base_path, group_categories, group_months, Entry, render_site_pages
from .sitemap import render_sitemap

BUILTIN_STATIC = Path(__file__).resolve().parent.parent / "static"


@dataclass(frozen=True)
class BuildReport:
    """What one build did: the closing line of `build.py` is made from it."""

    pages: int            # HTML pages written
    files: int            # all files in the output folder
    changed: int          # files whose bytes changed
    seconds: float
    labs: LabCounts

    def summary(self) -> str:
        """`built P pages in S s; labs: R run, C cached, F failed`."""
        return (f"built {self.pages} pages in {self.seconds:.2f} s; "
                f"labs: {self.labs.run} run, {self.labs.cached} cached, {self.labs.failed} failed")


def build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str,
          options: BuildOptions = BuildOptions()) -> BuildReport:
    """Build the site; raises BuildError on bad input, leaving `out_dir` untouched."""
    started = time.perf_counter()
    config = load_config(config_path)
    content = load_content(Path(content_dir), config)
    labs = run_lab_stage(list(content.documents), config, options)
    root = base_path(config)
    posts = [render_document(doc, labs.block_renderer, root) for doc in content.posts]
    pages = [render_document(doc, labs.block_renderer, root) for doc in content.pages]
    files = site_files(config, content, posts, pages, labs.files)
    changed = write_site(Path(out_dir), files)
    html_pages = sum(1 for path in files if path.endswith(".html"))
    return BuildReport(html_pages, len(files), changed, time.perf_counter() - started, labs.counts)


def site_files(config: SiteConfig, content: Content, posts: list[RenderedDocument],
               pages: list[RenderedDocument], lab_files: dict[str, bytes]) -> dict[str, bytes]:
    """Every output file, keyed by output-relative path, in a stable order."""
    files: dict[str, bytes] = {}
    files.update(static_files(config))
    files.update({path: source.read_bytes() for path, source in content.assets.items()})
    files.update(lab_files)
    files.update(render_site_pages(config, posts, pages))
    files["feed.xml"] = render_rss(config, posts)
    for group in group_categories([Entry(p, p.document.url) for p in posts], ""):
        files[group.path + "feed.xml"] = render_rss(
            config, [e.rendered for e in group.entries], path=group.path + "feed.xml",
            title=f"{config.title}: {group.name}")
    for doc in posts + pages:
        files[mirror_path(doc.document)] = render_markdown_mirror(config, doc).encode("utf-8")
    files["llms.txt"] = render_llms_txt(config, posts, pages).encode("utf-8")
    files["llms-full.txt"] = render_llms_full(config, posts, pages).encode("utf-8")
    files["sitemap.xml"] = render_sitemap(config, sitemap_urls(config, posts, pages, files))
    return dict(sorted(files.items()))


def sitemap_urls(config: SiteConfig, posts: list[RenderedDocument], pages: list[RenderedDocument],
                 files: dict[str, bytes]):
    """(site-relative URL, last change) of every HTML page but the 404."""
    changed = {d.document.output_path: d.document.updated or d.document.date for d in posts + pages}
    newest = max((c for c in changed.values() if c), default=None)
    urls = []
    for path in files:
        if path.endswith(".html") and path != "404.html":
            url = path[: -len("index.html")] if path.endswith("index.html") else path
            urls.append((url, changed.get(path, newest)))
    return urls


def static_files(config: SiteConfig) -> dict[str, bytes]:
    """The generator's static/ folder, overridden file by file by the site's own static/."""
    files: dict[str, bytes] = {}
    for folder in (BUILTIN_STATIC, config.root / "static"):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    files[f"static/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
    return files

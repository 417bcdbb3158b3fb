"""The build, in one screen: load -> labs -> Markdown -> pages, feeds, llms.txt -> write."""
from __future__ import annotations

import dataclasses
import functools
import gc
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

from .citations import check_cited_names, cite_document
from .config import line_of_key, load_config
from .content import load_content
from .errors import BuildError, BuildWarning
from .feeds import FEED_END, feed_order, newest_change, rss_channel, rss_items
from .input_manifest import Look, build_clock, input_stats, record_build, stats_at_start, watched_paths
from .llms import (llms_full_head, llms_full_order, llms_full_part, mirror_path, render_labs_mirror, render_llms_txt,
                   render_markdown_mirror, render_series_mirror, series_mirror_path)
from .markdown import highlight_code, render_code_block, render_document
from .notebooks import has_notebook, notebook_key, notebook_path, notebook_pieces, render_notebook
from .model import (BuildOptions, BuildReport, Content, Document, LabRecord, LabStage, RenderedDocument,
                    SiteConfig)
from .output import (MARKER, MARKER_TEXT, OutputFile, Spread, check_apart_from_inputs, check_output_folder,
                     input_folders, write_site)
from .parallel import can_fork, cores, map_batches
from .parsed_cache import ParsedDocuments
from .pages import BUILTIN_TEMPLATES, base_path, category_members, Entry, index_folder, lab_rows, site_pages
from .post_references import refer_from, resolve_references
from .render_cache import CACHE_DIR, RenderCache, config_key, content_key, generator_version, text_digest
from .series import group_series
from .sitemap import render_sitemap
from .written_links import check_written_links, template_ids

BUILTIN_STATIC = Path(__file__).resolve().parent.parent / "static"


def build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str,
          options: BuildOptions = BuildOptions(), warm_labs=None, look: Look | None = None,
          patch: bool = True) -> BuildReport:
    """Build the site; raises BuildError on bad input, leaving `out_dir` untouched.

    `warm_labs` (a `labs.executor.WarmPools`) keeps lab workers for the next build (`serve`);
    `look` is what `unchanged_build` saw of the inputs just before, so they are not looked at twice.
    An edit of a few documents' prose is patched into the last site (patch.py) unless `patch`
    is false."""
    # A build makes hundreds of thousands of small objects that live until it ends, and almost
    # no cyclic garbage: the cyclic collector would walk them again and again (a fifth of a
    # one-post edit of 10,000 posts), so it waits until the build is over.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if patch:
            from .patch import patch_build
            report = patch_build(config_path, content_dir, out_dir, options, look)
            if report is not None:
                return report
        return _build(config_path, content_dir, out_dir, options, warm_labs, look)
    finally:
        if collecting:
            gc.enable()


def _build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str,
           options: BuildOptions, warm_labs, look: Look | None) -> BuildReport:
    from .patch import forget_snapshot, save_snapshot   # that module builds on this one

    started, started_ns = time.perf_counter(), time.time_ns()
    clock = Stages()
    config = load_config(config_path)
    check_output_folder(Path(out_dir), {"the project": config.root, "the content folder": Path(content_dir)},
                        manifest=RenderCache.manifest_path_in(config.root / CACHE_DIR, out_dir))
    check_apart_from_inputs(Path(out_dir), config.root / config.labs.cache_dir,
                            input_folders(config.root, Path(content_dir)), Path(config_path),
                            line_of_key(config_path, "labs", "cache_dir"))
    inputs = watched_paths(config_path, content_dir, config)
    inputs_before = stats_at_start(inputs, started_ns, look)
    clock.lap("look at the inputs")
    code_version = generator_version()
    parsed = ParsedDocuments(config.root / CACHE_DIR, started_ns, code_version, inputs_before)
    content = load_content(Path(content_dir), config, drafts=options.drafts,
                           until=None if options.future else build_clock(options), load=parsed.load)
    check_cited_names(content.documents)   # a misspelt citation fails before any lab runs
    refer = refer_from(resolve_references(content))   # and so does a reference to no post
    clock.lap("load content")
    # labcode/ is an input too, but Python itself writes its __pycache__ there.
    protected = (Path(content_dir), config.root / "templates", config.root / "static", Path(out_dir))
    cache = RenderCache(config.root / CACHE_DIR)
    labs = lab_stage(content, config, options, warm_labs, protected=protected, remember=cache.get)
    cite = functools.partial(cite_document, values=labs.values, failed_labs=labs.counts.failed > 0)
    clock.lap("labs")
    written = None
    try:
        renders = Renders(config, cache, generator_version(config.root / "templates", code_version), content.series)
        posts = renders.documents(content.posts, labs.block_renderer, cite, refer)
        pages = renders.documents(content.pages, labs.block_renderer, cite, refer)
        clock.lap("render Markdown")
        files = site_files(config, content, posts, pages, labs.files, renders, labs.records,
                           notebook_files(config, posts, labs, cite, renders, refer))
        check_written_links(posts + pages, files, config.base_url, content.drafts + content.held_back,
                            functools.cache(lambda: template_ids([config.root / "templates", BUILTIN_TEMPLATES])))
        clock.lap("key every output file")
        # From here the site may change: a build that fails now leaves no snapshot to patch.
        forget_snapshot(config.root / CACHE_DIR, out_dir)
        written = write_site(Path(out_dir), files, manifest=cache.manifest_path(out_dir), spread=renders.spread())
        clock.lap("render and write the files that changed")
    finally:
        # What was parsed and rendered stays useful even when a later stage failed; saved after
        # the site is written, so `serve` shows an edit a little sooner. A failed build forgets
        # no parsed document: the snapshot of the last good one (patch.py) names them.
        parsed.save(complete=written is not None)
        cache.save()
        clock.lap("save the caches")
    warnings = copied_number_warnings(content, labs)
    html_pages = sum(1 for path in files if path.endswith(".html"))
    watched = watched_paths(config_path, content_dir, config, labs)
    # The inputs as they were when the build started, which is safe to remember (one changed
    # since then differs from them, so the next build looks again), and the files labs read,
    # known only now.
    inputs_after = {**inputs_before, **input_stats([path for path in watched if path not in inputs], started_ns)}
    clock.lap("look at the files labs read")
    report = BuildReport(html_pages, len(files), written.changed, time.perf_counter() - started, labs.counts,
                         written.rendered, renders.rendered, warnings, content.held_back, clock.laps())
    token = os.urandom(8).hex()
    if record_build(config_path, content_dir, out_dir, options, watched, inputs_before, inputs_after, content, report,
                    {path: entry[1:4] for path, entry in written.manifest.items()}, snapshot=token):
        save_snapshot(config.root / CACHE_DIR, out_dir, token, content_dir, content, parsed, renders, labs.records,
                      labs.published, [config.root / path for path in labs.inputs])
    return report


class Stages:
    """Wall-clock seconds of each stage of a build, for `build --timings`."""

    def __init__(self):
        self._start = time.perf_counter()
        self._laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        """The stage named `stage` ends now."""
        now = time.perf_counter()
        self._laps.append((stage, now - self._start))
        self._start = now

    def laps(self) -> tuple[tuple[str, float], ...]:
        return tuple(self._laps)


def copied_number_warnings(content: Content, labs: LabStage) -> tuple[BuildWarning, ...]:
    """Prose numbers that repeat a lab's instead of citing it; the lint is loaded only when labs
    published something."""
    if not labs.published:
        return ()
    from .copied_numbers import copied_number_warnings as lint
    return lint(content.documents, labs.published)


def lab_stage(content: Content, config: SiteConfig, options: BuildOptions, warm_labs=None,
              protected: tuple[Path, ...] = (), remember=None) -> LabStage:
    """Labs run or taken from their cache; a site with no lab block does not load the lab engine.
    A lab that writes into a `protected` folder (the inputs, the output) fails; `remember` keeps
    highlighted lab source from one build to the next."""
    if not any(doc.blocks for doc in content.documents):
        return LabStage(render_code_block)
    from .labs.stage import run_lab_stage
    return run_lab_stage(list(content.documents), config, options, warm_labs, protected, remember)


class MissingText(LookupError):
    """The rendered texts of a document restored from the last build are not in the cache."""


class Renders:
    """Markdown rendering through the render cache, and the keys of what was rendered.

    A document's key covers its source, the rendered lab blocks it shows, the text and
    provenance of every lab value it cites, the text and URL of every post it refers to, the
    site's base path and the generator version (so a lab rerun re-renders exactly the documents
    whose blocks or cited values changed, a retitled post exactly the documents showing its title);
    `identity` adds the front matter pages and feeds show, so any file made from rendered
    documents can be keyed on their identities.
    """

    def __init__(self, config: SiteConfig, cache: RenderCache, version: str, series=()):
        self.config = config
        self.series_of = {doc.output_path: one for one in series for doc in one.posts}
        self.cache = cache
        self.version = version
        self.config_key = config_key(config)
        self.root = base_path(config)
        self.identity: dict[str, str] = {}    # output path of the document -> key
        self.meta: dict[str, str] = {}        # output path -> key of its front matter as listings show it
        self._keys: dict[str, tuple[str, str, str]] = {}   # output path -> (code, mirror, rss-item) keys
        self._mirror_suffix = content_key(config.base_url)
        self._item_suffix = content_key(config.base_url, config.author)
        # output path -> (key, has_more, summary, links, ids, intro_key, meta, identity): what a
        # later build needs of a document it does not render or key again (`restore`).
        self.state: dict[str, tuple] = {}
        self.rendered = 0

    def documents(self, docs: Sequence[Document], block_renderer, cite=None, refer=None) -> list[RenderedDocument]:
        """Each of `docs` rendered, from the cache where its key is known; the others are
        rendered on every core when there are many (a first build).

        `cite(document)` gives each citation of a document its text and provenance
        (`citations.cite_document`); without it a citation is an error. `refer(document)` gives
        each post reference of a document its link (`post_references.refer_from`).
        """
        blocks = [{(b.path, b.line): block_renderer(b) for b in doc.blocks} for doc in docs]
        cited = [cite(doc) if cite is not None else {} for doc in docs]
        referred = [refer(doc) if refer is not None else {} for doc in docs]
        keys = [content_key(self.version, self.root, str(doc.source), doc.body_digest, doc.body_line, doc.url,
                            doc.summary, [(b.html, b.markdown) for b in shown.values()],
                            [(value.text, value.title) for value in values.values()],
                            [(link.text, link.url) for link in links.values()])
                for doc, shown, values, links in zip(docs, blocks, cited, referred)]
        jobs = list(zip(docs, blocks, cited, referred))
        known = self.cache.known("outline", keys) & self.cache.known("document", keys)
        missing = [(key, job) for key, job in zip(keys, jobs) if key not in known]
        for (key, job), (parts, code) in zip(missing, render_documents([self._job(job) for _, job in missing],
                                                                       self.root)):
            self._remember(key, job[0], parts, code)
        rendered = [self._rendered(doc, key, job) for doc, key, job in zip(docs, keys, jobs)]
        # Kept for the next build, unread: the texts, highlighted code, mirror and feed item of each.
        self.cache.keep("document", *keys)
        for index, kind in enumerate(("code", "mirror", "rss-item")):
            self.cache.keep(kind, *(self._keys[doc.output_path][index] for doc in docs))
        return rendered

    def _job(self, job: tuple) -> tuple:
        doc, shown, values, links = job
        return (doc, shown, values, self.cache.peek("code", self._code_key(doc)) or {}, links)

    def _remember(self, key: str, doc: Document, parts: tuple, code: dict) -> None:
        """Keep what rendering `doc` made: its texts, its outline (what every build reads of
        it) and its highlighted code."""
        _, intro, has_more, _, summary, links, ids = parts
        self.cache.put("document", key, _texts(parts))
        self.cache.put("outline", key, (has_more, summary, links, ids, text_digest(intro)))
        self.cache.put("code", self._code_key(doc), code)
        self.rendered += 1

    def _render_now(self, key: str, job: tuple) -> tuple:
        # A cache entry named but not readable (a damaged shard): the document is rendered again.
        ((parts, code),) = render_documents([self._job(job)], self.root)
        self._remember(key, job[0], parts, code)
        return parts

    def _rendered(self, doc: Document, key: str, job: tuple) -> RenderedDocument:
        """`doc` as rendered under `key`: its outline now, its texts when first asked for."""
        def render_outline() -> tuple:
            self._render_now(key, job)
            return self.cache.peek("outline", key)

        def texts() -> tuple:
            return self.cache.get("document", key, lambda: _texts(self._render_now(key, job)))

        has_more, summary, links, ids, intro_key = self.cache.get("outline", key, render_outline)
        document = doc if summary == doc.summary else dataclasses.replace(doc, summary=summary)
        series = self.series_of.get(doc.output_path)
        place = (series.name, series.slug, series.part_of(doc), len(series.posts)) if series else None
        meta = content_key(doc.kind, doc.shown_key, summary, place)
        self._note(doc, (key, has_more, summary, links, ids, intro_key, meta, content_key(key, meta)))
        return RenderedDocument.deferred(document, has_more, key, links, ids, texts, intro_key)

    def _note(self, doc: Document, state: tuple) -> None:
        path = doc.output_path
        self.state[path] = state
        self.meta[path], self.identity[path] = meta, identity = state[6], state[7]
        # A mirror shows the document and base_url, a feed item also the author: their keys
        # join the document's identity with those (no hashing: they are digests already).
        self._keys[path] = (self._code_key(doc), identity + self._mirror_suffix, identity + self._item_suffix)

    def restore(self, docs: Sequence[Document], state: dict[str, tuple]) -> list[RenderedDocument]:
        """`docs` as the build that left `state` (its `Renders.state`) rendered them, neither
        keyed nor read again: the caller knows that nothing they show changed since (patch.py).
        A text is read from the cache when first asked for; `MissingText` when it is not there."""
        restored = []
        for doc in docs:
            key, has_more, summary, links, ids, intro_key = state[doc.output_path][:6]
            self._note(doc, state[doc.output_path])
            document = doc if summary == doc.summary else dataclasses.replace(doc, summary=summary)
            restored.append(RenderedDocument.deferred(document, has_more, key, links, ids,
                                                      functools.partial(self._stored_texts, key), intro_key))
        return restored

    def _stored_texts(self, key: str) -> tuple:
        def missing() -> tuple:
            raise MissingText(key)
        return self.cache.get("document", key, missing)

    def _code_key(self, doc: Document) -> str:
        # A document's highlighted code blocks, kept for its next edit: prose edits leave the
        # code as it was, and highlighting it again would cost more than the rest of the edit.
        return self.version + doc.source_key

    def key_of(self, *parts, documents: Sequence[RenderedDocument] = (), front_matter_only: bool = False) -> str:
        """A key for a file made from `parts`, the site configuration and `documents`; with
        `front_matter_only`, of their front matter alone, for a file that lists titles and
        summaries but shows no body (llms.txt)."""
        ids = self.meta if front_matter_only else self.identity
        return content_key(self.version, self.config_key, parts, [ids[d.document.output_path] for d in documents])

    def mirror(self, rendered: RenderedDocument) -> str:
        """`render_markdown_mirror`, through the cache."""
        return self.cache.get("mirror", self.mirror_key(rendered),
                              lambda: render_markdown_mirror(self.config, rendered,
                                                             self.series_of.get(rendered.document.output_path)))

    def spread(self) -> Spread:
        """How the write stage makes files on every core, taking back the cache entries (and
        the count of documents rendered) of what each process made."""
        def mark() -> tuple[int, int]:
            return self.cache.mark(), self.rendered

        def gather(mark: tuple[int, int]) -> tuple[list, int]:
            return self.cache.since(mark[0]), self.rendered - mark[1]

        def keep(gathered: tuple[list, int]) -> None:
            self.cache.take(gathered[0])
            self.rendered += gathered[1]
        return Spread(min(cores(), 8), mark, gather, keep)

    def feed_items(self, posts: list[RenderedDocument]) -> list[bytes]:
        """`rss_items` through the cache: the items no build made yet are made in one go."""
        keys = [self.item_key(p) for p in posts]
        known = self.cache.known("rss-item", keys)
        missing = [(key, p) for key, p in zip(keys, posts) if key not in known]
        made = dict(zip([key for key, _ in missing], rss_items(self.config, [p for _, p in missing])))
        return [self.cache.get("rss-item", key, lambda key=key: made[key]) for key in keys]

    def mirror_key(self, rendered: RenderedDocument) -> str:
        """The key of a document's Markdown mirror."""
        return self._keys[rendered.document.output_path][1]

    def item_key(self, rendered: RenderedDocument) -> str:
        """The key of a post's feed item."""
        return self._keys[rendered.document.output_path][2]


def _texts(parts: tuple) -> tuple[str, str, str]:
    """(html, intro_html, markdown) of what `render_documents` made of a document."""
    return parts[0], parts[1], parts[3]


# Below this many documents to render, starting worker processes costs more than it saves.
PARALLEL_MIN_DOCUMENTS = 64


def render_documents(jobs: list[tuple[Document, dict, dict, dict, dict]], base: str) -> list[tuple[tuple, dict]]:
    """`render_document` of each (document, its rendered lab blocks by (path, line), its cited
    values by citation, code blocks highlighted before by (info, code), its post references'
    links by reference): the tuple the render
    cache keeps and the document's highlighted code blocks; on several processes when there
    are many. The first error, in document order, is raised as a serial render would raise it."""
    if cores() < 2 or len(jobs) < PARALLEL_MIN_DOCUMENTS or not can_fork():
        outcomes = [_render_job(job, base) for job in jobs]
    else:
        # The first document is rendered here, its code highlighted afresh, so the renderers
        # are imported before the fork (a forked child must not import while another thread,
        # e.g. `serve`'s, may hold the lock).
        outcomes = [_render_job((*jobs[0][:3], {}, jobs[0][4]), base)]
        workers = min(cores(), 8)
        rest = jobs[1:]
        size = max(1, -(-len(rest) // (workers * 4)))
        for batch in map_batches(lambda i: [_render_job(job, base) for job in rest[i * size:(i + 1) * size]],
                                 -(-len(rest) // size), workers) if rest else ():
            outcomes += batch
    for outcome in outcomes:
        if outcome[0] == "error":
            raise BuildError(*outcome[1:])
    return [outcome[1:] for outcome in outcomes]


def _render_job(job: tuple[Document, dict, dict, dict, dict], base: str) -> tuple:
    # A BuildError does not survive pickling (its constructor takes three arguments): it
    # travels back from a worker as its parts.
    doc, blocks, cited, highlighted, referred = job
    code: dict[tuple[str, str], str] = {}

    def highlight(text: str, info: str) -> str:
        if (info, text) not in code:
            code[(info, text)] = highlighted.get((info, text)) or highlight_code(text, info)
        return code[(info, text)]

    try:
        r = render_document(doc, lambda block: blocks[(block.path, block.line)], base, cited.__getitem__,
                            highlight=highlight, refer=referred.__getitem__)
    except BuildError as error:
        return ("error", error.path, error.message, error.line)
    return ("ok", (r.html, r.intro_html, r.has_more, r.markdown, r.document.summary, r.links, r.ids), code)


def notebook_files(config: SiteConfig, posts: list[RenderedDocument], labs: LabStage, cite,
                   renders: Renders, refer=None) -> dict[str, OutputFile]:
    """The notebook of each post with labs, keyed on its document and the labs it shows."""
    files: dict[str, OutputFile] = {}
    for post in posts:
        doc = post.document
        if labs.notebook_lab is None or not has_notebook(doc):
            continue
        shown = [notebook_key(labs.notebook_lab(block)) for block in doc.blocks if block.kind == "lab"]
        files[notebook_path(doc)] = OutputFile(
            renders.key_of("notebook", shown, documents=[post]),
            lambda doc=doc: render_notebook(config, doc, notebook_pieces(
                doc, labs.block_renderer, labs.notebook_lab, cite(doc).__getitem__,
                refer(doc).__getitem__ if refer is not None else None)))
    return files


def site_files(config: SiteConfig, content: Content, posts: list[RenderedDocument],
               pages: list[RenderedDocument], lab_files: dict[str, bytes], renders: Renders,
               lab_records: Sequence[LabRecord] = (),
               notebooks: dict[str, OutputFile] | None = None) -> dict[str, OutputFile]:
    """Every output file, keyed by output-relative path, in a stable order; each is rendered
    only if the write stage finds no copy of it from the last build."""
    files: dict[str, OutputFile] = {MARKER: OutputFile.of(MARKER_TEXT)}
    for path, data in static_files(config).items():
        files[path] = OutputFile.of(data)
    for path, source in content.assets.items():
        files[path] = OutputFile.of(source.read_bytes())
    for path, data in lab_files.items():
        files[path] = OutputFile.of(data)
    files.update(notebooks or {})
    pages_html = site_pages(config, posts, pages, renders.version, lab_records)
    files.update(pages_html)
    if "labs/index.html" in pages_html:
        rows = lab_rows(lab_records, [Entry(d, d.document.url) for d in posts + pages])
        files["labs/index.html.md"] = OutputFile.of(render_labs_mirror(config, rows).encode("utf-8"))
    for path, title, entries in site_feeds(config, posts):
        files[path] = feed_file(config, renders, path, title, entries)
    for doc in posts + pages:
        files[mirror_path(doc.document)] = mirror_file(renders, doc)
    series = group_series([p.document for p in posts])
    for one in series:
        files[series_mirror_path(one)] = OutputFile.of(render_series_mirror(config, one).encode("utf-8"))
    labs_page = "labs/index.html.md" in files
    files["llms.txt"] = OutputFile(
        renders.key_of("llms.txt", [(s.name, s.slug, [d.output_path for d in s.posts]) for s in series],
                       labs_page, documents=posts + pages, front_matter_only=True),
        lambda: render_llms_txt(config, posts, pages, series, labs_page=labs_page).encode("utf-8"))
    files["llms-full.txt"] = llms_full_file(config, renders, posts, pages)
    html_files = [path for path in files if path.endswith(".html")]
    files["sitemap.xml"] = OutputFile(
        renders.key_of("sitemap", html_files, [(d.document.output_path, d.document.dates_key) for d in posts + pages]),
        lambda: render_sitemap(config, sitemap_urls(config, posts, pages, html_files)))
    return dict(sorted(files.items()))


def files_showing(shown: Sequence[RenderedDocument], config: SiteConfig, posts: list[RenderedDocument],
                  pages: list[RenderedDocument], renders: Renders, lab_records: Sequence[LabRecord] = (),
                  intros: Collection[str] = ()) -> dict[str, OutputFile]:
    """The output files whose bytes show the body of a document of `shown` (documents without
    labs, so without a notebook), made as `site_files` makes them: its page and Markdown mirror,
    the feeds that carry it and llms-full.txt, and for the posts in `intros` (output paths:
    those whose intro changed) the page of the index that shows it. Every other file shows at
    most a document's front matter, summary, fold, anchors and place, so it stays as it is while
    those do (patch.py)."""
    paths = {rendered.document.output_path for rendered in shown}
    listed = {index_folder(i // config.posts_per_page + 1) + "index.html"
              for i, post in enumerate(posts) if post.document.output_path in intros}
    files = site_pages(config, posts, pages, renders.version, lab_records, only=paths | listed)
    for rendered in shown:
        files[mirror_path(rendered.document)] = mirror_file(renders, rendered)
    for path, title, entries in site_feeds(config, posts):
        if any(entry.document.output_path in paths for entry in entries):
            files[path] = feed_file(config, renders, path, title, entries)
    files["llms-full.txt"] = llms_full_file(config, renders, posts, pages)
    return files


def site_feeds(config: SiteConfig, posts: list[RenderedDocument]) -> list[tuple[str, str | None, list[RenderedDocument]]]:
    """(output path, title, posts) of every feed: the site's, then one per category."""
    return [("feed.xml", None, posts)] + [(path + "feed.xml", f"{config.title}: {name}", members)
                                          for name, path, members in category_members(posts)]


def mirror_file(renders: Renders, rendered: RenderedDocument) -> OutputFile:
    """The Markdown mirror of a document (its cache key names its text already)."""
    return OutputFile(renders.mirror_key(rendered), lambda: renders.mirror(rendered).encode("utf-8"))


def feed_file(config: SiteConfig, renders: Renders, path: str, title: str | None,
              entries: list[RenderedDocument]) -> OutputFile:
    """The RSS feed of `entries` at `path` (`render_rss`) as pieces: its channel, one per item,
    its end; a rebuild makes only the items of the posts that changed."""
    ordered = feed_order(entries)
    keys = (renders.key_of("rss-channel", path, title, repr(newest_change(ordered))),
            *(renders.item_key(post) for post in ordered), "rss-end")

    def make_pieces(indices: list[int]) -> list[bytes]:
        wanted = [i for i in indices if 0 < i <= len(ordered)]
        items = dict(zip(wanted, renders.feed_items([ordered[i - 1] for i in wanted])))
        return [rss_channel(config, ordered, path, title) if i == 0 else items.get(i, FEED_END) for i in indices]
    return OutputFile.pieced(renders.key_of("rss", path, title, documents=entries), keys, make_pieces)


def llms_full_file(config: SiteConfig, renders: Renders, posts: list[RenderedDocument],
                   pages: list[RenderedDocument]) -> OutputFile:
    """`llms-full.txt` (`render_llms_full`) as pieces: its head, one per document, its end."""
    docs = llms_full_order(posts, pages)
    keys = (renders.key_of("llms-full-head"), *(renders.mirror_key(doc) for doc in docs), "llms-full-end")

    def make_pieces(indices: list[int]) -> list[bytes]:
        return [(llms_full_head(config) if i == 0 else llms_full_part(renders.mirror(docs[i - 1])) if i <= len(docs)
                 else "\n").encode("utf-8") for i in indices]
    return OutputFile.pieced(renders.key_of("llms-full", documents=posts + pages), keys, make_pieces)


def sitemap_urls(config: SiteConfig, posts: list[RenderedDocument], pages: list[RenderedDocument],
                 files: Sequence[str]):
    """(site-relative URL, last change) of every HTML page of `files` (output paths) but the 404."""
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

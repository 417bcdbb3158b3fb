"""An edit of a few posts' prose, patched into the last site instead of building it again.

A full build keys every output file on what it shows, so an edit rewrites only the files whose
keys changed; but to know which, it loads, keys and lists every post: a tenth of a millisecond
a post, about a second for 10,000 of them. When all the last build's inputs are as it left them
but the text of a few posts or pages, and what the rest of the site shows of those did not
change, the files an edit can change are known without looking at the others: the edited
document's page and Markdown mirror, the feeds that carry it, llms-full.txt and, when its intro
changed, the index page showing it (`pipeline.files_showing`). This module makes those from a
snapshot of the last build.

The snapshot (written by every full build the input manifest remembers) holds the order of the
documents, as the keys the parsed-document cache (parsed_cache.py) keeps them under, and what
the render stage made of each (`Renders.state`). A build patches when

- the input manifest (input_manifest.py) remembers the last build, under the same environment
  and options, with no held-back post come out since, and the snapshot it names is there;
- every input file that differs from what it recorded is a published post or page of that
  build (no template, configuration, image, labcode or file a lab reads), at most
  `MAX_DOCUMENTS` of them;
- each such document, parsed again, differs only in its body, and neither the old nor the new
  body has a lab block, a lab citation or a post reference (the copied-number lint runs on the
  edited documents; the other documents' warnings are the last build's);
- rendered again, it has the summary, fold, anchors and place in its series it had: what
  listings, the sitemap and llms.txt show of it; its links are checked as a full build checks
  them;
- the files to patch are as the last build wrote them. The rest of the output is not looked
  at: a file edited by hand elsewhere stays until a build that is no patch (one with nothing
  changed finds the output unlike its record and builds in full; so does `build --full`).

Anything else, an error included, is left to a full build, which also reports the error as it
always does. The result is byte for byte what a full build makes (tests/site/test_patch.py
compares them); `build --full` never patches.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from .citations import find_citations
from .config import load_config
from .content import load_document
from .errors import BuildError, BuildWarning
from .input_manifest import (RACY_NS, UNKNOWN, Look, changed_inputs, clock_moved, environment_key, forget_build,
                             input_stats, last_build, record_patch)
from .markdown import render_code_block
from .model import BuildOptions, BuildReport, Content, Document
from .output import patch_site
from .pages import BUILTIN_TEMPLATES
from .parsed_cache import ParsedDocuments, saved_documents
from .pipeline import MissingText, Renders, files_showing
from .render_cache import CACHE_DIR, RenderCache, content_key, read_blob, write_blob
from .series import group_series
from .written_links import check_written_links, template_ids

# More edited documents than this at once (a `git checkout`, a search and replace): a full build.
MAX_DOCUMENTS = 16
# The layout of a snapshot; one of another layout (another version of Lab Notes) is not used.
SNAPSHOT_FORMAT = 2


def snapshot_path(cache_folder: Path, out_dir: Path | str) -> Path:
    """Where the snapshot of the last full build of `out_dir` lives; the edits patched in since
    are kept beside it (`_edits_path`)."""
    return Path(cache_folder) / f"snapshot-{content_key(str(Path(out_dir).resolve()))}.bin"


def _edits_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.stem + "-edits.bin")


def forget_snapshot(cache_folder: Path, out_dir: Path | str) -> None:
    """Drop the snapshot before a full build: one that fails leaves none to patch."""
    path = snapshot_path(cache_folder, out_dir)
    for one in (path, _edits_path(path)):
        one.unlink(missing_ok=True)


def save_snapshot(cache_folder: Path, out_dir: Path | str, token: str, content_dir: Path | str, content: Content,
                  parsed: ParsedDocuments, renders: Renders, lab_records: tuple, published: tuple,
                  lab_inputs: list[Path]) -> None:
    """Keep what a patch needs of this full build, under `token` (the input manifest's); the
    documents themselves are those `parsed` keeps. `published`: what its labs published (for
    the copied-number lint); `lab_inputs`: the files its labs read or wrote."""
    documents = content.posts + content.pages
    if any(str(doc.source) not in parsed.saved_as for doc in documents):
        return   # a document saved in the build's own clock tick: the next build is a full one
    write_blob(snapshot_path(cache_folder, out_dir), {
        "format": SNAPSHOT_FORMAT, "token": token, "cwd": os.getcwd(), "content_dir": str(content_dir),
        "documents": tuple(parsed.saved_as[str(doc.source)] for doc in documents),
        "content": dataclasses.replace(content, posts=(), pages=(), series=()), "posts": len(content.posts),
        # As the input manifest names them (`watched_paths`): output path and place in `documents`.
        "sources": {str(doc.source.absolute()): (doc.output_path, at) for at, doc in enumerate(documents)},
        "lab_inputs": frozenset(str(path.absolute()) for path in lab_inputs),
        "state": {doc.output_path: renders.state[doc.output_path] for doc in documents},
        "version": renders.version, "lab_records": tuple(lab_records), "published": published,
    }, dumps=pickle.dumps)


def _load_snapshot(cache_folder: Path, out_dir: Path | str, token: str) -> dict | None:
    """The snapshot named `token` with the edits patched in since (under "edits": the documents
    and states by output path), or None; the documents are read by `_document` and `_content`."""
    path = snapshot_path(cache_folder, out_dir)
    snapshot = read_blob(path, loads=pickle.loads)
    if not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT or snapshot.get("token") != token:
        return None
    edits = read_blob(_edits_path(path), loads=pickle.loads)
    if not isinstance(edits, dict) or edits.get("token") != token:
        edits = {"token": token, "documents": {}, "state": {}}
    # `read_blob` may hand the value it read for an earlier build of this process (`serve`):
    # it is left as it is.
    return {**snapshot, "state": {**snapshot["state"], **edits["state"]}, "edits": edits}


def _document(snapshot: dict, cache_folder: Path, source: str) -> Document:
    """The document of the file `source` as the snapshot has it."""
    output_path, at = snapshot["sources"][source]
    edited = snapshot["edits"]["documents"].get(output_path)
    found = [edited] if edited is not None else saved_documents(cache_folder, [snapshot["documents"][at]])
    if found is None:
        raise _Unpatchable(f"the parsed document of {source} is gone")
    return found[0]


def _content(snapshot: dict, cache_folder: Path, edited: dict[str, Document]) -> Content:
    """The content as the snapshot has it, the documents of `edited` (by output path) in place."""
    documents = saved_documents(cache_folder, snapshot["documents"])
    if documents is None:
        raise _Unpatchable("a parsed document of the last build is gone")
    replaced = {**snapshot["edits"]["documents"], **edited}
    documents = [replaced.get(doc.output_path, doc) for doc in documents]
    posts, pages = tuple(documents[:snapshot["posts"]]), tuple(documents[snapshot["posts"]:])
    return dataclasses.replace(snapshot["content"], posts=posts, pages=pages, series=group_series(posts))


class _Unpatchable(Exception):
    """The edit is not one a patch covers: the build is made in full."""


def patch_build(config_path: Path | str, content_dir: Path | str, out_dir: Path | str,
                options: BuildOptions = BuildOptions(), look: Look | None = None) -> BuildReport | None:
    """Patch an edit of a few documents' prose into the last site (see the module's text); the
    report of the build it made, or None when the site must be built in full. `look`: what
    `unchanged_build` saw of the inputs a moment before."""
    started, started_ns = time.perf_counter(), time.time_ns()
    try:
        return _patch(config_path, content_dir, out_dir, options, look, started, started_ns)
    except (_Unpatchable, MissingText, BuildError, OSError):
        return None
    except Exception:   # noqa: BLE001 - a patch is a shortcut: whatever goes wrong, the full build is right
        return None


def _patch(config_path, content_dir, out_dir, options: BuildOptions, look: Look | None,
           started: float, started_ns: int) -> BuildReport:
    saved = last_build(config_path, content_dir, out_dir)
    if saved is None or not saved.get("snapshot") or saved.get("environment") != environment_key(options):
        raise _Unpatchable("no build to patch")
    if clock_moved(saved, options):
        raise _Unpatchable("the clock publishes other posts")
    watched = saved["watched"]
    same_look = look is not None and [str(p) for p in look.paths] == [str(p) for p in watched]
    stats = look.stats if same_look else input_stats(watched)
    changed = changed_inputs(saved, stats)
    if not changed or len(changed) > MAX_DOCUMENTS:
        raise _Unpatchable("nothing or too much changed")
    config = load_config(config_path)
    cache_folder = config.root / CACHE_DIR
    snapshot = _load_snapshot(cache_folder, out_dir, saved["snapshot"])
    if snapshot is None or snapshot["cwd"] != os.getcwd() or snapshot["content_dir"] != str(content_dir):
        raise _Unpatchable("no snapshot of the last build, or one a patch cannot use")

    for source in changed:
        if source not in snapshot["sources"] or source not in stats or source in snapshot["lab_inputs"]:
            # a new file, one deleted, one that is no document or one a lab reads
            raise _Unpatchable(f"{source} is not a published post or page of the last build")
    zone = ZoneInfo(config.timezone)
    edited: dict[str, Document] = {}
    for source in changed:
        old = _document(snapshot, cache_folder, source)
        new = load_document(old.source, old.kind, zone, snapshot["content"].assets)
        if any(getattr(new, name) != getattr(old, name) for name in _OUTSIDE_BODY):
            raise _Unpatchable(f"{source}: more than the prose changed")
        if not (_prose_only(old) and _prose_only(new)):
            raise _Unpatchable(f"{source} has labs, citations or post references")
        edited[old.output_path] = new
    content = _content(snapshot, cache_folder, edited)
    timings = [("look at the inputs and the last build", time.perf_counter() - started)]

    cache = RenderCache(cache_folder)
    renders = Renders(config, cache, snapshot["version"], content.series)
    shown = renders.documents([content_doc for content_doc in content.posts + content.pages
                               if content_doc.output_path in edited], render_code_block)
    old_state = snapshot["state"]
    for path in edited:
        # (key, has_more, summary, links, ids, intro_key, meta, identity): the fold, summary,
        # anchors and place must be as they were; the key, links, intro and identity may change
        if [renders.state[path][i] for i in (1, 2, 4, 6)] != [old_state[path][i] for i in (1, 2, 4, 6)]:
            cache.save_added()   # what was rendered serves the full build
            raise _Unpatchable(f"{path}: what other pages show of it changed")
    intros = {path for path in edited if renders.state[path][5] != old_state[path][5]}
    restored = iter(renders.restore([doc for doc in content.posts + content.pages if doc.output_path not in edited],
                                    old_state))
    by_edit = {rendered.document.output_path: rendered for rendered in shown}
    everything = [by_edit[doc.output_path] if doc.output_path in by_edit else next(restored)
                  for doc in content.posts + content.pages]
    posts, pages = everything[:len(content.posts)], everything[len(content.posts):]
    timings.append(("render the edited documents", time.perf_counter() - started - sum(t for _, t in timings)))

    manifest_path = cache.manifest_path(out_dir)
    previous = read_blob(manifest_path)
    if not isinstance(previous, dict):
        raise _Unpatchable("no manifest of the site")
    check_written_links(everything, previous.keys(), config.base_url, content.drafts + content.held_back,
                        functools.cache(lambda: template_ids([config.root / "templates", BUILTIN_TEMPLATES])),
                        only=edited.keys())
    files = files_showing(shown, config, posts, pages, renders, snapshot["lab_records"], intros)
    for path in files:
        entry = previous.get(path)
        try:
            stat = os.lstat(Path(out_dir) / path)
        except OSError:
            raise _Unpatchable(f"{path} is missing from the site") from None
        if entry is None or (stat.st_size, stat.st_mtime_ns, stat.st_ino) != tuple(entry[1:4]):
            raise _Unpatchable(f"{path} is not as the last build wrote it")
    written = patch_site(Path(out_dir), files, manifest_path, previous)
    timings.append(("make and write the files showing them", time.perf_counter() - started - sum(t for _, t in timings)))

    report = dataclasses.replace(saved["report"], warnings=_warnings(saved["report"].warnings, content, edited,
                                                                     snapshot["published"]))
    cache.save_added()
    edits = snapshot["edits"]
    if write_blob(_edits_path(snapshot_path(cache_folder, out_dir)), {
            "token": saved["snapshot"], "documents": {**edits["documents"], **edited},
            "state": {**edits["state"], **{path: renders.state[path] for path in edited}}}, dumps=pickle.dumps):
        # As `stats_at_start` marks them: a file saved in this build's clock tick is looked at again.
        inputs = {path: UNKNOWN if stat[1] >= started_ns - RACY_NS else stat for path, stat in stats.items()}
        record_patch(config_path, content_dir, out_dir, {**saved, "report": report}, inputs,
                     {path: tuple(entry[1:4]) for path, entry in written.manifest.items()})
    else:   # the snapshot no longer tells the site as it is now (a full disk)
        forget_build(config_path, content_dir, out_dir)
    timings.append(("save the caches", time.perf_counter() - started - sum(t for _, t in timings)))
    return dataclasses.replace(report, changed=written.changed, rendered=written.rendered,
                               documents_rendered=renders.rendered, seconds=time.perf_counter() - started,
                               stages=tuple(timings), patched=True)


def _warnings(last: tuple[BuildWarning, ...], content: Content, edited: dict[str, Document],
              published: tuple) -> tuple[BuildWarning, ...]:
    """The warnings a full build gives (`pipeline.copied_number_warnings`, document by
    document in site order): the last build's for the documents not edited, the edited ones
    linted again."""
    if not published:
        return ()
    from .copied_numbers import copied_number_warnings
    last_of: dict[str, list[BuildWarning]] = {}
    for warning in last:
        last_of.setdefault(str(warning.path), []).append(warning)
    found: list[BuildWarning] = []
    for doc in content.documents:
        if doc.output_path in edited:
            found += copied_number_warnings([doc], published)
        else:
            found += last_of.get(str(doc.source), [])
    return tuple(found)


# Document fields an edit of the prose alone leaves as they were.
_OUTSIDE_BODY = tuple(f.name for f in dataclasses.fields(Document) if f.name != "body")


def _prose_only(doc: Document) -> bool:
    """Whether `doc` has no lab block, no lab citation and no post reference."""
    return not doc.blocks and not find_citations(doc) and not doc.references

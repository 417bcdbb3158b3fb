"""`build.py serve`: a local preview server that rebuilds on change and reloads the browser.

It serves files of the output folder and nothing else: a request path is decoded once, any
`.`/`..` segment, backslash or NUL is refused, and the file it names must still lie inside the
output folder once symlinks are resolved. The reload script is added to HTML responses only,
with an overlay showing the error while the last build failed; the files on disk stay exactly
what `build` wrote.
"""
from __future__ import annotations

import errno
import ipaddress
import mimetypes
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from http import HTTPStatus
from html import escape as html_escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .errors import BuildError
from .inotify import ChangeSignal
from .output import scan_folder

RELOAD_PATH = "/__reload"
POLL_SECONDS = 0.05         # how often the watcher looks at mtimes (a look at 1,000 posts: ~3-5 ms of CPU)
# With inotify the watcher looks when the kernel reports an event, and also this often, in case
# it dropped one (queue overflow) or a new folder could not be watched.
IDLE_LOOK_SECONDS = 2.0
LONG_POLL_SECONDS = 20.0    # how long /__reload holds a request open waiting for a build

# The few types a blog serves, with charsets, so browsers never guess; the rest from mimetypes.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
}

# Asks the server for the build number, waiting until it differs from the one this page was
# built with, then reloads. A failed request (server restarting) retries after a second.
RELOAD_SCRIPT = """<script>(function(){var b=%d;function poll(){fetch("%s?since="+b,{cache:"no-store"})
.then(function(r){return r.text()}).then(function(t){if(+t!==b){location.reload()}else{poll()}})
.catch(function(){setTimeout(poll,1000)})}poll()})();</script>"""

# Laid over every page served while the last build failed: its error as the terminal shows it
# (escaped), over the last good site.
ERROR_OVERLAY = """<div id="labnotes-build-error" role="alert" style="position:fixed;left:0;right:0;bottom:0;
z-index:2147483647;max-height:60vh;overflow:auto;margin:0;padding:.8em 1.2em;background:#fff1f0;color:#4d0000;
border-top:3px solid #b00020;box-shadow:0 -4px 18px rgba(0,0,0,.25);font:14px/1.45 system-ui,sans-serif">
<button type="button" onclick="this.parentNode.remove()" style="float:right">Hide</button>
<strong>The last build failed.</strong> This is the last good site; fix the error and save, and the page reloads.
<pre style="white-space:pre-wrap;margin:.6em 0 0;font:13px/1.4 ui-monospace,monospace">%s</pre></div>"""

# What a request is answered with while the last build failed and there is no page to lay it over.
NO_SITE_PAGE = b"<!DOCTYPE html><html><head><title>Build failed</title></head><body></body></html>"


class BuildCounter:
    """How many builds finished since the server started, and the error of the last one when it
    failed; waiters wake when a build finishes, and open pages reload to show what it made."""

    def __init__(self) -> None:
        self.value = 0
        self.error: str | None = None
        self._changed = threading.Condition()

    def bump(self) -> None:
        """A build succeeded: pages reload onto the new site."""
        self._finished(None)

    def fail(self, error: str) -> None:
        """A build failed with `error` (its whole text): pages reload to show it over the last good site."""
        self._finished(error)

    def _finished(self, error: str | None) -> None:
        with self._changed:
            self.value += 1
            self.error = error
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> int:
        """The counter once it differs from `seen`, or as it is after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.value != seen, timeout=timeout)
            return self.value


class SiteServer(ThreadingHTTPServer):
    """An HTTP server for one output folder; `counter` drives browser reloads."""

    daemon_threads = True

    def __init__(self, address, out_dir: Path, counter: BuildCounter, verbose: bool, base_path: str = "/"):
        self.out_dir = Path(out_dir)
        self.base_path = base_path      # where the site lives: "/", or base_url's path ("/blog/")
        self.counter = counter
        self.verbose = verbose
        self.long_poll_seconds = LONG_POLL_SECONDS
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, SiteRequestHandler)

    def handle_error(self, request, client_address) -> None:
        """A browser that went away (a tab closed mid-poll) is normal; anything else is shown."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"


class SiteRequestHandler(BaseHTTPRequestHandler):
    """GET and HEAD for files of the output folder, plus the reload long-poll."""

    server: SiteServer
    server_version = "LabNotes"

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        parts = urlsplit(self.path)
        if parts.path == RELOAD_PATH:
            return self._reload(parts.query, send_body)
        base = self.server.base_path
        if base != "/" and not (parts.path.startswith(base) and self.path.startswith(base)):
            # A site published under https://host/blog/ links its pages as /blog/...: the
            # preview serves it there too, and sends the bare host (or /blog) to it.
            if parts.path in ("/", base.rstrip("/")):
                return self._redirect(HTTPStatus.FOUND, base)
            status, target = HTTPStatus.NOT_FOUND, None
        else:
            within = self.path[len(base) - 1:] if base != "/" else self.path
            status, target = resolve_request_path(self.server.out_dir, within)
        if status == HTTPStatus.MOVED_PERMANENTLY:
            return self._redirect(status, parts.path + "/" + (f"?{parts.query}" if parts.query else ""))
        if status == HTTPStatus.OK:
            return self._send_file(HTTPStatus.OK, target, send_body)
        found, not_found_page = resolve_request_path(self.server.out_dir, "/404.html")
        if status == HTTPStatus.NOT_FOUND and found == HTTPStatus.OK:
            return self._send_file(status, not_found_page, send_body)
        if status == HTTPStatus.NOT_FOUND and self.server.counter.error is not None:
            return self._send_html(status, NO_SITE_PAGE, send_body)
        self._send_bytes(status, f"{status.value} {status.phrase}\n".encode(),
                         "text/plain; charset=utf-8", send_body)

    def _redirect(self, status: HTTPStatus, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, status: HTTPStatus, path: Path, send_body: bool) -> None:
        content_type = content_type_for(path)
        if content_type.startswith("text/html"):
            return self._send_html(status, path.read_bytes(), send_body)
        self._send_bytes(status, path.read_bytes(), content_type, send_body)

    def _send_html(self, status: HTTPStatus, html: bytes, send_body: bool) -> None:
        counter = self.server.counter
        body = inject_reload_script(html, counter.value, counter.error)
        self._send_bytes(status, body, CONTENT_TYPES[".html"], send_body)

    def _reload(self, query: str, send_body: bool) -> None:
        try:
            seen = int(parse_qs(query).get("since", [""])[0])
        except ValueError:
            value = self.server.counter.value
        else:
            value = self.server.counter.wait_past(seen, self.server.long_poll_seconds)
        self._send_bytes(HTTPStatus.OK, str(value).encode(), "text/plain; charset=utf-8", send_body)

    def _send_bytes(self, status: HTTPStatus, body: bytes, content_type: str, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_request(self, code="-", size="-") -> None:
        """Only what went wrong is logged (a 404 is a broken link to fix), not every GET."""
        status = code.value if isinstance(code, HTTPStatus) else code
        if str(status).isdigit() and int(status) >= 400:
            super().log_request(code, size)

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            sys.stderr.write(f"serve: {format % args}\n")


def resolve_request_path(out_dir: Path, request_target: str) -> tuple[HTTPStatus, Path | None]:
    """What a request target names inside `out_dir`: (200, file), (301, None) for a folder
    asked without its slash, (404, None), or (403, None) for anything that tries to leave."""
    # Origin-form ("/a?q") is cut by hand: urlsplit would read "//etc/x" as a host name.
    if request_target.startswith("/"):
        raw = request_target.split("?", 1)[0].split("#", 1)[0]
    else:
        raw = urlsplit(request_target).path
    if not raw.startswith("/"):
        return HTTPStatus.FORBIDDEN, None
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return HTTPStatus.NOT_FOUND, None
    if "\\" in decoded or "\x00" in decoded:
        return HTTPStatus.FORBIDDEN, None
    segments = decoded.split("/")
    if any(s in (".", "..") for s in segments):
        return HTTPStatus.FORBIDDEN, None
    root = out_dir.resolve()
    target = root.joinpath(*(s for s in segments if s))
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):     # symlink loops
        return HTTPStatus.FORBIDDEN, None
    if resolved != root and root not in resolved.parents:
        return HTTPStatus.FORBIDDEN, None
    if resolved.is_dir():
        if not raw.endswith("/"):
            return HTTPStatus.MOVED_PERMANENTLY, None
        index = target / "index.html"
        resolved_index = index.resolve()
        if root not in resolved_index.parents:
            return HTTPStatus.FORBIDDEN, None
        return (HTTPStatus.OK, resolved_index) if resolved_index.is_file() else (HTTPStatus.NOT_FOUND, None)
    if resolved.is_file():
        return HTTPStatus.OK, resolved
    return HTTPStatus.NOT_FOUND, None


def content_type_for(path: Path) -> str:
    """The Content-Type header for a file of the site."""
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def inject_reload_script(html: bytes, build: int, error: str | None = None) -> bytes:
    """`html` with the reload script before its last `</body>` (or at the end), and the
    overlay showing `error`, the last build's, when it failed."""
    script = (RELOAD_SCRIPT % (build, RELOAD_PATH)).encode()
    if error is not None:
        script = (ERROR_OVERLAY % html_escape(error.rstrip())).encode() + script
    at = html.lower().rfind(b"</body>")
    return html + script if at < 0 else html[:at] + script + html[at:]


def error_text(error: BaseException) -> str:
    """A failed build's whole error: its line, then the details a lab's failure carries (its
    traceback cut to labcode); a bug in the generator is its traceback."""
    if isinstance(error, BuildError):
        return "\n".join(filter(None, [error.one_line(), getattr(error, "details", "").rstrip()]))
    return "".join(traceback.format_exception(error)).rstrip()


class SourceWatcher(threading.Thread):
    """Looks at the stats of the watched files when inotify reports an event under them (or
    every `interval` seconds where there is no inotify); on a change calls `rebuild` and bumps
    `counter`.

    A failed rebuild prints its whole error and hands it to `counter`, whose pages show it; the
    server keeps the last good site.
    """

    def __init__(self, watch: Sequence[Path], rebuild: Callable[[], None], counter: BuildCounter,
                 ignore: Sequence[Path] = (), interval: float = POLL_SECONDS, notify: bool = True):
        super().__init__(name="labnotes-watcher", daemon=True)
        self.watch = [Path(p) for p in watch]
        self.ignore = [Path(p).absolute() for p in ignore]
        self.rebuild = rebuild
        self.counter = counter
        self.interval = interval
        self.stopped = threading.Event()
        self.notify = notify
        self.signal: ChangeSignal | None = None    # set while running with inotify
        self._last: dict = {}                       # the first look, taken by start()
        self.looks = 0                              # how many times it looked at the files

    def snapshot(self) -> dict[Path, tuple[int, int, int]]:
        """(size, mtime, inode) of every watched file, skipping hidden folders, caches and the output."""
        return {top / relative: stat for (top, relative), stat in self._stats().items()}

    def _stats(self) -> dict[tuple[Path, str], tuple[int, int, int]]:
        # Keyed by (watched path, relative path): making a Path per file would cost more than the look.
        self.looks += 1
        seen: dict[tuple[Path, str], tuple[int, int, int]] = {}
        for top in self.watch:
            if top.is_file():
                stat = top.stat()
                seen[(top, "")] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
                continue
            ignored = tuple(f"{skip.relative_to(top.absolute()).as_posix()}/" for skip in self.ignore
                            if skip.is_relative_to(top.absolute()))
            for relative, stat in scan_folder(top, frozenset({"__pycache__"})).items():
                if not (relative.startswith(".") or "/." in relative or relative.startswith(ignored)):
                    seen[(top, relative)] = stat
        return seen

    def start(self) -> None:
        """Take the first look here, before the thread starts: a file saved as soon as this
        returns (the server is up) is a change, whenever the thread gets to run."""
        # The signal opens before the look, so that nothing saved in between goes unseen.
        self.signal = ChangeSignal.open(self.watch, skip=self.ignore) if self.notify else None
        self._last = self._stats()
        super().start()

    def run(self) -> None:
        try:
            last = self._last
            while not self.stopped.is_set():
                if self.signal is not None:
                    self.signal.wait(IDLE_LOOK_SECONDS)
                else:
                    self.stopped.wait(self.interval)
                if self.stopped.is_set():
                    break
                current = self._stats()
                if current == last:
                    continue
                last = current
                self.rebuild_once()
        finally:
            if self.signal is not None:
                self.signal.close()

    def rebuild_once(self) -> bool:
        """Run `rebuild`; True and a bumped counter on success; otherwise False, the error
        printed and handed to the counter."""
        started = time.perf_counter()
        try:
            self.rebuild()
        except Exception as exc:  # noqa: BLE001 - a dev server must survive any rebuild bug
            text = error_text(exc)
            print(f"serve: rebuild failed, still serving the last good site: {text}", file=sys.stderr, flush=True)
            self.counter.fail(text)
            return False
        self.counter.bump()
        print(f"serve: rebuilt in {time.perf_counter() - started:.2f} s", file=sys.stderr)
        return True

    def stop(self) -> None:
        self.stopped.set()
        if self.signal is not None:
            self.signal.interrupt()


def make_server(out_dir: Path, host: str = "127.0.0.1", port: int = 0,
                counter: BuildCounter | None = None, verbose: bool = False, base_path: str = "/") -> SiteServer:
    """A server for `out_dir` bound to a loopback `host` (port 0: a free one), the site at
    `base_path` (base_url's path); not started.

    A port already in use is a BuildError naming the next port to try.
    """
    if not _is_loopback(host):
        raise ValueError(f"serve binds to the loopback interface only, not {host!r}")
    try:
        return SiteServer((host, port), Path(out_dir), counter or BuildCounter(), verbose, base_path)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BuildError(None, f"port {port} is in use: try --port {port + 1}") from None
        raise


def serve(server: SiteServer, rebuild: Callable[[], None], watch: Sequence[Path]) -> None:
    """Run `server` until Ctrl-C, calling `rebuild` whenever a file under `watch` changes.

    `rebuild` raises BuildError when the build fails: the server then keeps the last good site
    and open pages reload to show the error over it. The caller builds the site once before
    calling this (and hands a failure of that build to `server.counter.fail`).
    """
    watcher = SourceWatcher(watch, rebuild, server.counter, ignore=[server.out_dir])
    watcher.start()
    print(f"serving {server.out_dir} at {server.url} (watching {', '.join(str(p) for p in watch)}; "
          "Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        server.server_close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

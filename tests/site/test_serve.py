"""The dev server on a free port, asked what a browser (or an attacker) would ask."""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

import build as cli
from conftest import TinySite, post_text
from labnotes.errors import BuildError
from labnotes.serve import BuildCounter, SourceWatcher, make_server

REPO = Path(__file__).resolve().parents[2]

SECRET = "top secret outside the site"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text(SECRET)
    out = tmp_path / "output"
    (out / "posts").mkdir(parents=True)
    (out / "about").mkdir()
    (out / "index.html").write_text("<!doctype html><html><body><h1>Home</h1></body></html>")
    (out / "about" / "index.html").write_text("<!doctype html><html><body><h1>About</h1></body></html>")
    (out / "posts" / "a.html").write_text("<!doctype html><html><body><p>Post A</p></body></html>")
    (out / "posts" / "a.html.md").write_text("# Post A\n")
    (out / "feed.xml").write_text("<?xml version='1.0'?><rss version='2.0'/>")
    (out / "404.html").write_text("<!doctype html><html><body><h1>Not here</h1></body></html>")
    return out


@pytest.fixture
def server(site: Path):
    srv = make_server(site, port=0)
    srv.long_poll_seconds = 2.0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get(server, path: str):
    """(status, headers, body) of a GET for `path` sent as given."""
    try:
        with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def raw_get(server, target: str) -> tuple[int, bytes]:
    """A request line sent byte for byte, so no client normalises `..` away first."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_serve_binds_to_loopback_only(site):
    srv = make_server(site, port=0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
    finally:
        srv.server_close()
    with pytest.raises(ValueError):
        make_server(site, host="0.0.0.0", port=0)


def test_serve_gives_folder_index_and_files(server):
    status, headers, body = get(server, "/")
    assert status == 200 and BeautifulSoup(body, "html.parser").h1.get_text() == "Home"
    status, _, body = get(server, "/about/")
    assert status == 200 and BeautifulSoup(body, "html.parser").h1.get_text() == "About"
    status, _, body = get(server, "/posts/a.html?utm=x")
    assert status == 200 and b"Post A" in body


def test_serve_redirects_folder_without_slash(server, site):
    status, body = raw_get(server, "/about")
    assert status == 301
    status, _, body = get(server, "/about")          # urllib follows the redirect
    assert status == 200 and b"About" in body


def test_serve_sends_content_types_with_charset(server):
    assert get(server, "/posts/a.html.md")[1]["Content-Type"] == "text/markdown; charset=utf-8"
    assert get(server, "/posts/a.html")[1]["Content-Type"] == "text/html; charset=utf-8"
    assert get(server, "/feed.xml")[1]["Content-Type"].startswith("application/xml")


def test_serve_missing_file_gives_the_site_404_page(server):
    status, headers, body = get(server, "/posts/nope.html")
    assert status == 404
    assert BeautifulSoup(body, "html.parser").h1.get_text() == "Not here"


@pytest.mark.parametrize("target", [
    "/../secret.txt",
    "/posts/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/posts/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/..%5csecret.txt",
    "/posts\\..\\..\\secret.txt",
    "/%00/../secret.txt",
])
def test_serve_refuses_parent_paths_raw_and_encoded(server, target):
    status, body = raw_get(server, target)
    assert status in (403, 404)
    assert SECRET.encode() not in body


def test_serve_refuses_encoded_parent_path(server):
    status, _, body = get(server, "/%2e%2e%2fsecret.txt")
    assert status in (403, 404) and SECRET.encode() not in body


def test_serve_refuses_absolute_paths(server, site):
    for target in ["//etc/passwd", "/%2Fetc%2Fpasswd", str(site.parent / "secret.txt"),
                   "/" + str(site.parent / "secret.txt"), "http://localhost/../secret.txt"]:
        status, body = raw_get(server, target)
        assert status in (403, 404), target
        assert SECRET.encode() not in body and b"root:" not in body


def test_serve_refuses_symlink_out_of_the_folder(server, site):
    (site / "leak.txt").symlink_to(site.parent / "secret.txt")
    (site / "leakdir").symlink_to(site.parent, target_is_directory=True)
    for path in ["/leak.txt", "/leakdir/secret.txt"]:
        status, _, body = get(server, path)
        assert status in (403, 404), path
        assert SECRET.encode() not in body


def test_serve_follows_symlink_inside_the_folder(server, site):
    (site / "same.html").symlink_to(site / "posts" / "a.html")
    assert get(server, "/same.html")[0] == 200


def test_serve_injects_reload_script_into_html_only_not_on_disk(server, site):
    _, _, body = get(server, "/posts/a.html")
    soup = BeautifulSoup(body, "html.parser")
    script = soup.body.find("script")
    assert script is not None and "/__reload" in script.string
    assert soup.body.contents[-1] is script      # just before </body>, after the content
    assert "__reload" not in (site / "posts" / "a.html").read_text()
    assert b"__reload" not in get(server, "/posts/a.html.md")[2]
    assert b"__reload" not in get(server, "/feed.xml")[2]


def test_reload_endpoint_answers_when_the_build_counter_changes(server):
    assert get(server, "/__reload")[2] == b"0"
    threading.Timer(0.2, server.counter.bump).start()
    started = time.monotonic()
    assert get(server, "/__reload?since=0")[2] == b"1"
    assert time.monotonic() - started < 1.5         # woken by the build, not by the timeout
    assert get(server, "/__reload?since=0")[2] == b"1"   # a stale page reloads at once


def test_watcher_rebuilds_on_change_and_bumps_the_counter(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    (content / "a.md").write_text("one")
    calls = []
    counter = BuildCounter()
    watcher = SourceWatcher([content], lambda: calls.append(1), counter, interval=0.05, notify=False)  # polling
    watcher.start()
    try:
        time.sleep(0.15)
        (content / "a.md").write_text("two, longer")
        deadline = time.monotonic() + 3
        while counter.value == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert calls and counter.value == 1


needs_inotify = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@needs_inotify
def test_watcher_sleeps_until_the_kernel_reports_a_save_then_rebuilds_at_once(tmp_path):
    """With inotify the watcher does not look at 1,000 posts twenty times a second while the
    author is thinking, and it sees a save sooner than a poll would."""
    content = tmp_path / "content"
    (content / "posts").mkdir(parents=True)
    (content / "posts" / "a.md").write_text("one")
    counter = BuildCounter()
    watcher = SourceWatcher([content], lambda: None, counter, interval=60)   # a poll would come too late
    watcher.start()
    try:
        assert wait_until(lambda: watcher.signal is not None, 2)
        time.sleep(0.5)
        assert watcher.looks <= 2                          # the first look, and no polling
        saved = time.monotonic()
        (content / "posts" / "a.md").write_text("two, longer")
        assert wait_until(lambda: counter.value == 1, 3)
        assert time.monotonic() - saved < 1.0
        # an editor's save: a new file renamed over the old one
        (content / "posts" / ".a.md.swp").write_text("three")
        os.replace(content / "posts" / ".a.md.swp", content / "posts" / "a.md")
        assert wait_until(lambda: counter.value == 2, 3)
        # a folder made after the watcher started is watched too
        (content / "posts" / "2026").mkdir()
        time.sleep(0.1)
        (content / "posts" / "2026" / "b.md").write_text("new")
        assert wait_until(lambda: counter.value >= 3, 3)
    finally:
        watcher.stop()
        watcher.join(2)
    assert not watcher.is_alive()   # stop wakes it at once


@needs_inotify
def test_watcher_with_inotify_ignores_writes_to_the_output_folder(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "a.md").write_text("x")
    (tmp_path / "output").mkdir()
    counter = BuildCounter()
    watcher = SourceWatcher([tmp_path], lambda: None, counter, ignore=[tmp_path / "output"], interval=60)
    watcher.start()
    try:
        assert wait_until(lambda: watcher.signal is not None, 2)
        for n in range(20):
            (tmp_path / "output" / f"{n}.html").write_text("built")
        time.sleep(0.3)
        assert watcher.looks <= 2 and counter.value == 0
    finally:
        watcher.stop()
        watcher.join(2)


def test_a_failed_rebuild_prints_its_whole_error_and_open_pages_reload_to_show_it(tmp_path, capsys):
    def broken():
        error = BuildError(tmp_path / "content/posts/a.md", "lab labcode.labs.demo:run failed: ValueError: boom", line=12)
        error.details = ('Traceback (most recent call last):\n  File "labcode/labs/demo.py", line 3, in run\n'
                         '    raise ValueError("boom")\nValueError: boom\n')
        raise error

    counter = BuildCounter()
    watcher = SourceWatcher([tmp_path], broken, counter)
    assert watcher.rebuild_once() is False
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("serve: rebuild failed, still serving the last good site: ")
    assert "a.md:12: error: lab labcode.labs.demo:run failed: ValueError: boom" in err.splitlines()[0]
    assert 'File "labcode/labs/demo.py", line 3, in run' in err     # the lab's traceback, in the terminal
    assert counter.value == 1                                          # open pages reload...
    assert "a.md:12: error: lab" in counter.error and 'raise ValueError("boom")' in counter.error   # ...to show it
    watcher.rebuild = lambda: None
    assert watcher.rebuild_once() is True
    assert counter.value == 2 and counter.error is None


def overlay(body: bytes):
    """The build-error overlay of a served page, or None."""
    return BeautifulSoup(body, "html.parser").find(id="labnotes-build-error")


def test_while_the_last_build_failed_every_page_shows_its_error_over_the_last_good_site(server):
    assert overlay(get(server, "/posts/a.html")[2]) is None
    server.counter.fail("content/posts/b.md:3: error: cannot read `date: soon`\n<details> & more")
    status, _, body = get(server, "/posts/a.html")
    assert status == 200 and b"Post A" in body
    shown = overlay(body)
    assert "content/posts/b.md:3: error: cannot read `date: soon`\n<details> & more" in shown.get_text()
    assert overlay(get(server, "/nowhere")[2]) is not None     # the 404 page too
    assert get(server, "/posts/a.html.md")[2] == b"# Post A\n"   # not in files that are not HTML
    server.counter.bump()
    assert overlay(get(server, "/posts/a.html")[2]) is None


def test_watcher_ignores_the_output_folder(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "a.md").write_text("x")
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "index.html").write_text("x")
    watcher = SourceWatcher([tmp_path], lambda: None, BuildCounter(), ignore=[tmp_path / "output"])
    assert list(watcher.snapshot()) == [tmp_path / "content" / "a.md"]


def wait_until(condition, seconds: float = 10.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass; returns whether it held."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except (urllib.error.HTTPError) as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def test_serve_shows_a_failed_rebuild_over_the_last_good_site_until_it_is_fixed(tmp_path):
    site = TinySite(tmp_path)
    site.post("a.md", post_text(title="Good"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    err_file = tmp_path / "serve.err"
    with open(err_file, "w") as err, open(tmp_path / "serve.out", "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "build.py"), "serve", "--port", str(port),
                                 "--out", str(site.out)], cwd=site.root, stdout=out, stderr=err)
    try:
        assert wait_until(lambda: fetch(url + "/posts/a.html")[0] == 200, 30), err_file.read_text()
        assert fetch(url + "/__reload") == (200, b"0")

        site.post("b.md", post_text(title="Bad", date="not a date"))
        assert wait_until(lambda: "rebuil" in err_file.read_text()), err_file.read_text()
        time.sleep(0.2)
        err = err_file.read_text()
        (failure,) = [line for line in err.splitlines() if "rebuil" in line]
        assert "rebuild failed" in failure and "b.md" in failure and "date" in failure
        assert "Traceback" not in err
        assert fetch(url + "/__reload") == (200, b"1")        # the open page reloads...
        status, body = fetch(url + "/posts/a.html")
        assert status == 200 and b"Good" in body               # ...the last good site, still served,
        shown = overlay(body)                                  # under the error
        assert "b.md:3: error: cannot read `date: not a date`" in shown.get_text()

        site.post("b.md", post_text(title="Fixed", date="2026-04-01"))
        assert wait_until(lambda: fetch(url + "/__reload") == (200, b"2")), err_file.read_text()
        assert fetch(url + "/posts/b.html")[0] == 200
        assert overlay(fetch(url + "/posts/a.html")[1]) is None
        assert "serve: rebuilt in" in err_file.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_started_on_a_broken_site_shows_the_error_over_the_last_good_one(tmp_path, capsys, monkeypatch):
    import labnotes.serve

    site = TinySite(tmp_path)
    site.post("a.md", post_text(title="Good"))
    site.build()
    site.post("b.md", post_text(title="Bad", date="not a date"))
    monkeypatch.chdir(site.root)
    shown = []

    def serve(server, rebuild, watch):   # what the first page would show, then stop
        shown.append(server.counter.error)
        server.server_close()
    monkeypatch.setattr(labnotes.serve, "serve", serve)
    assert cli.main(["serve", "--port", "0"]) == 0
    assert "b.md:3: error: cannot read `date: not a date`" in shown[0]
    assert "b.md:3: error: cannot read `date: not a date`" in capsys.readouterr().err


def test_serve_on_a_busy_port_is_a_one_line_error_and_exit_1(tmp_path, capsys, monkeypatch):
    site = TinySite(tmp_path)
    site.post("a.md", post_text())
    monkeypatch.chdir(site.root)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["serve", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [err.strip()]
    assert err.strip().endswith(f"port {port} is in use: try --port {port + 1}")
    assert not site.out.exists()      # the port is checked before the site is built


def test_a_browser_tab_closed_mid_poll_prints_no_traceback(server, capsys, monkeypatch):
    polling, finished = threading.Event(), threading.Event()
    wait_past, shutdown_request = server.counter.wait_past, server.shutdown_request

    def wait_past_noting(seen, timeout):
        polling.set()
        return wait_past(seen, timeout)

    def shutdown_request_noting(request):
        shutdown_request(request)
        finished.set()

    monkeypatch.setattr(server.counter, "wait_past", wait_past_noting)
    monkeypatch.setattr(server, "shutdown_request", shutdown_request_noting)
    host, port = server.server_address[:2]
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(b"GET /__reload?since=0 HTTP/1.0\r\nHost: localhost\r\n\r\n")
    assert polling.wait(5)
    # Closing with a zero linger resets the connection, as a closed tab can.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    server.counter.bump()                # the poll answers into the closed connection
    assert finished.wait(5)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception" not in err
    assert get(server, "/")[0] == 200    # and the server carries on


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_with_a_port_out_of_range_is_a_usage_error_not_a_traceback(tmp_path, capsys, monkeypatch, port):
    site = TinySite(tmp_path)
    site.post("a.md", post_text())
    monkeypatch.chdir(site.root)
    assert cli.main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert "argument --port: must be a port number, 1-65535" in err and "Traceback" not in err
    assert not site.out.exists()


def test_a_site_published_under_a_path_is_previewed_under_that_path(site):
    """base_url https://host/blog/ makes every link /blog/...: the preview serves the site
    there, so its stylesheet and links work, and sends the bare host to it."""
    srv = make_server(site, port=0, base_path="/blog/")
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert srv.url.endswith("/blog/")
        status, body = raw_get(srv, "/blog/posts/a.html")
        assert status == 200 and b"Post A" in body
        assert raw_get(srv, "/blog/")[0] == 200 and b"Home" in raw_get(srv, "/blog/")[1]
        assert raw_get(srv, "/blog/about")[0] == 301           # a folder without its slash
        assert raw_get(srv, "/")[0] == 302 and raw_get(srv, "/blog")[0] == 302
        status, body = raw_get(srv, "/posts/a.html")           # outside the site's path
        assert status == 404 and b"Not here" in body
        status, body = raw_get(srv, "/blog/../secret.txt")
        assert status == 403 and SECRET.encode() not in body
    finally:
        srv.shutdown()
        srv.server_close()


def test_serve_logs_only_requests_that_went_wrong(site, capsys):
    srv = make_server(site, port=0, verbose=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        for path in ("/", "/posts/a.html", "/feed.xml", "/nope.html"):
            get(srv, path)
    finally:
        srv.shutdown()
        srv.server_close()
    logged = capsys.readouterr().err.strip().splitlines()
    assert len(logged) == 1 and '"GET /nope.html HTTP/1.1" 404' in logged[0]

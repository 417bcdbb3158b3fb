"""Just enough of the Chrome DevTools Protocol to read a page's text in headless Chromium, over
`--remote-debugging-pipe`, with the standard library only (no websocket client needed).

With that flag Chromium reads commands from its file descriptor 3 and writes replies and
events to its descriptor 4, each message a JSON object ended by a NUL byte. The page is asked
for its text again and again until its own script has written it: no virtual-time budget to
run out on a busy machine, no guess at when layout and fonts are done.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run between this process and the browser: puts the two pipe ends at descriptors 3 and 4
# (moved out of the way first, in case either already has one of those numbers), then execs it.
_PLUMB = ("import fcntl, os, sys\n"
          "ends = [int(fd) for fd in sys.argv[1:3]]\n"
          "moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in ends]\n"
          "for fd in ends: os.close(fd)\n"
          "os.dup2(moved[0], 3); os.dup2(moved[1], 4)\n"
          "os.execvp(sys.argv[3], sys.argv[3:])\n")


class DevToolsError(RuntimeError):
    """The browser answered a command with an error, went away, or took too long."""


class Browser:
    """One headless browser process, spoken to over the DevTools pipe; use as a context manager."""

    def __init__(self, command: list[str], timeout: float = 60.0):
        self.timeout = timeout
        self._folder = tempfile.TemporaryDirectory(prefix="devtools-")
        self._log_path = Path(self._folder.name) / "browser.log"
        commands_read, commands_write = os.pipe()      # we write commands, the browser reads fd 3
        replies_read, replies_write = os.pipe()        # the browser writes fd 4, we read replies
        # Each browser a profile of its own: two test workers must not find each other's.
        flags = ["--remote-debugging-pipe", f"--user-data-dir={self._folder.name}/profile"]
        with open(self._log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _PLUMB, str(commands_read), str(replies_write), *command, *flags],
                pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.close(commands_read)
        os.close(replies_write)
        self._commands, self._replies = commands_write, replies_read
        self._buffer = b""
        self._last_id = 0

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, method: str, session: str | None = None, **params) -> dict:
        """Send one command (to the page of `session`, else to the browser) and return its result."""
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._commands, data):]
        except BrokenPipeError:
            raise DevToolsError(f"{method}: the browser has gone away; {self.log_tail()}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == self._last_id:       # anything else is an event: not needed here
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})

    def _receive(self, deadline: float, method: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise DevToolsError(f"{method}: no answer in {self.timeout:.0f} s; {self.log_tail()}")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise DevToolsError(f"{method}: the browser has gone away; {self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the browser printed, for an error message."""
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        return "browser said: " + (" | ".join(text.splitlines()[-lines:]) or "nothing")

    def close(self) -> None:
        """Ask the browser to close, and make sure it has."""
        try:
            if self.process.poll() is None:
                self.timeout = min(self.timeout, 10.0)
                self.send("Browser.close")
        except DevToolsError:
            pass
        finally:
            for fd in (self._commands, self._replies):
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._folder.cleanup()


def text_once_written(browser: Browser, url: str, element_id: str, *, dark: bool = False,
                      timeout: float = 120.0, every: float = 0.1) -> str:
    """Open `url` in a new tab (preferring a dark or light colour scheme) and return the text of
    element `element_id` once the page's script has written some there."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    browser.send("Emulation.setEmulatedMedia", session,
                 features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
    browser.send("Page.navigate", session, url=url)
    # Asked of whichever document the tab holds: about:blank, or the page before its script ran,
    # answers "" and is asked again.
    expression = (f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); "
                  f"return location.href === {json.dumps(url)} && e ? e.textContent : ''; }})()")
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = browser.send("Runtime.evaluate", session, expression=expression, returnByValue=True)
        except DevToolsError:
            if browser.process.poll() is not None:
                raise
            answer = {}         # the document went away mid-call (navigation): ask the next one
        text = answer.get("result", {}).get("value")
        if text:
            return text
        if time.monotonic() > deadline:
            raise DevToolsError(f"#{element_id} of {url} still empty after {timeout:.0f} s; {browser.log_tail()}")
        time.sleep(every)

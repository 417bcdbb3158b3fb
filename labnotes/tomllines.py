"""Where each key and array item of a TOML file is written, so site.toml errors can name a line.

tomllib parses the values but forgets positions; this scanner walks text that tomllib already
accepted and records the line of every key (`("labs", "timeout")`), array item
(`("blogroll", 2)`) and key inside an inline table (`("blogroll", 2, "url")`).
"""
from __future__ import annotations

import re

KeyPath = tuple  # of str (keys) and int (array positions)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


def key_lines(text: str) -> dict[KeyPath, int]:
    """{key path: 1-based line} for every key, table header and array item of `text`."""
    return _Scanner(text).run()


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.lines: dict[KeyPath, int] = {}
        self.table_arrays: dict[KeyPath, int] = {}   # [[name]] headers seen so far

    def run(self) -> dict[KeyPath, int]:
        table: KeyPath = ()
        while self._skip_blank(newlines=True) < len(self.text):
            if self.text[self.i] == "[":
                table = self._header()
            else:
                self._value(table + self._key(table))
        return self.lines

    def _line(self) -> int:
        return self.text.count("\n", 0, self.i) + 1

    def _skip_blank(self, newlines: bool) -> int:
        """Skip spaces and comments (and newlines when asked); returns the new position."""
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                end = self.text.find("\n", self.i)
                self.i = len(self.text) if end < 0 else end
            else:
                break
        return self.i

    def _header(self) -> KeyPath:
        line = self._line()
        array = self.text.startswith("[[", self.i)
        self.i += 2 if array else 1
        path = self._key((), until="]")
        self.i += 2 if array else 1
        if array:
            index = self.table_arrays.get(path, -1) + 1
            self.table_arrays[path] = index
            self.lines.setdefault(path, line)
            path = path + (index,)
        self.lines.setdefault(path, line)
        return path

    def _key(self, table: KeyPath, until: str = "=") -> KeyPath:
        """A dotted key up to `until` (`=` is consumed); the key and each of its prefixes,
        inside `table`, are recorded at this line."""
        line = self._line()
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            ch = self.text[self.i]
            if ch in "\"'":
                parts.append(self._string())
            else:
                match = _BARE_KEY.match(self.text, self.i)
                parts.append(match.group(0))
                self.i = match.end()
            self._skip_blank(newlines=False)
            if self.text[self.i] == ".":
                self.i += 1
                continue
            break
        if until == "=":
            self.i += 1   # the "="
        for end in range(1, len(parts) + 1):
            self.lines.setdefault(table + tuple(parts[:end]), line)
        return tuple(parts)

    def _value(self, path: KeyPath) -> None:
        self._skip_blank(newlines=False)
        ch = self.text[self.i]
        if ch in "\"'":
            self._string()
        elif ch == "[":
            self.i += 1
            index = 0
            while self._skip_blank(newlines=True) < len(self.text) and self.text[self.i] != "]":
                if self.text[self.i] == ",":
                    self.i += 1
                    continue
                self.lines[path + (index,)] = self._line()
                self._value(path + (index,))
                index += 1
            self.i += 1
        elif ch == "{":
            self.i += 1
            while self._skip_blank(newlines=True) < len(self.text) and self.text[self.i] != "}":
                if self.text[self.i] == ",":
                    self.i += 1
                    continue
                self._value(path + self._key(path))
            self.i += 1
        else:
            match = _SCALAR_END.search(self.text, self.i)
            self.i = len(self.text) if match is None else match.start()

    def _string(self) -> str:
        """Skip a string (basic, literal, or either multi-line) and return its raw content."""
        quote = self.text[self.i]
        delimiter = quote * 3 if self.text.startswith(quote * 3, self.i) else quote
        start = j = self.i + len(delimiter)
        while not self.text.startswith(delimiter, j):
            j += 2 if quote == '"' and self.text[j] == "\\" else 1
        while len(delimiter) == 3 and self.text.startswith(quote, j + 3):
            j += 1   # up to two quotes may end the content: `""""` is `"` then the delimiter
        self.i = j + len(delimiter)
        return self.text[start:j]

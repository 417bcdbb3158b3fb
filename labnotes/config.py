"""Read site.toml (standard library tomllib) into a SiteConfig; every key is optional."""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import BuildError
from .model import LabSettings, Link, SiteConfig
from .tomllines import key_lines

# key -> accepted Python types, in the order a user would write them
_SITE_KEYS = {
    "title": (str,),
    "author": (str,),
    "base_url": (str,),
    "description": (str,),
    "timezone": (str,),
    "language": (str,),
    "posts_per_page": (int,),
    "repository": (str,),
    "blogroll": (list,),
    "labs": (dict,),
}
_LAB_KEYS = {
    "timeout": (int, float),
    "cache_dir": (str,),
    "device": (str,),
    "max_output_chars": (int,),
    "tiktoken_cache_dir": (str,),
}


def load_config(path: Path | str) -> SiteConfig:
    """Parse `path` into a SiteConfig; a missing file gives the defaults rooted at its folder."""
    path = Path(path)
    root = path.parent
    if not path.exists():
        return SiteConfig(root=root)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise BuildError(path, f"not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8", line) from None
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise BuildError(path, f"not valid TOML: {exc}", line) from None
    return config_from_dict(data, path, key_lines(text))


def config_from_dict(data: dict, path: Path, lines: dict[tuple, int] | None = None) -> SiteConfig:
    """Check keys and types of parsed site.toml data and build the SiteConfig; `lines` (key
    path -> line, from `key_lines`) lets each error name the line it is about."""
    def error(message: str, *key) -> BuildError:
        return BuildError(path, message, _line_of(lines or {}, key))

    _check_keys(data, _SITE_KEYS, error, table="")
    values: dict = {k: v for k, v in data.items() if k not in ("blogroll", "labs")}
    if "base_url" in values:
        values["base_url"] = _normalise_base_url(values["base_url"], error)
    if "timezone" in values:
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise error(f"unknown timezone {values['timezone']!r}; use an IANA name such as 'Europe/Paris' or 'UTC'",
                        "timezone") from None
    if "repository" in values:
        values["repository"] = _check_repository(values["repository"].strip(), error)
    if "posts_per_page" in values and values["posts_per_page"] < 1:
        raise error("posts_per_page must be at least 1", "posts_per_page")
    if "blogroll" in data:
        values["blogroll"] = _blogroll(data["blogroll"], error)
    if "labs" in data:
        _check_keys(data["labs"], _LAB_KEYS, error, table="labs")
        values["labs"] = LabSettings(**{k: (float(v) if k == "timeout" else v) for k, v in data["labs"].items()})
        if values["labs"].timeout <= 0:
            raise error("[labs] timeout must be a positive number of seconds", "labs", "timeout")
        if values["labs"].device not in (None, "cpu", "cuda", "mps"):
            raise error(f'[labs] device must be "cpu", "cuda" or "mps" (or left out: CUDA, then MPS, '
                        f'then CPU), not {values["labs"].device!r}', "labs", "device")
    return SiteConfig(root=path.parent, source=path, **values)


def line_of_key(path: Path | str, *key) -> int | None:
    """The line of `key` (`"labs", "device"`) in the TOML file at `path`, for errors found after
    loading; None when the file or the key is not there."""
    try:
        return _line_of(key_lines(Path(path).read_text(encoding="utf-8")), key)
    except (OSError, UnicodeDecodeError):
        return None


def _line_of(lines: dict[tuple, int], key: tuple) -> int | None:
    """The line of `key`, or of the nearest enclosing key written in the file."""
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table"}


def _check_keys(data: dict, allowed: dict, error, table: str) -> None:
    where = f"[{table}] " if table else ""
    path = (table,) if table else ()
    for key, value in data.items():
        if key not in allowed:
            known = ", ".join(allowed)
            raise error(f"unknown key {where}{key!r}; known keys: {known}", *path, key)
        types = allowed[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = " or ".join(_TYPE_WORDS[t] for t in types)
            raise error(f"{where}{key} must be {wanted}, not {type(value).__name__} {value!r}", *path, key)


def _normalise_base_url(url: str, error) -> str:
    if not url.startswith(("http://", "https://")):
        raise error(f"base_url must start with http:// or https://, not {url!r}", "base_url")
    return url if url.endswith("/") else url + "/"


# What `git clone` takes: a URL of a scheme git speaks, or scp-like `user@host:path`.
_CLONE_URL = re.compile(r"(?:(?:https?|ssh|git|file)://\S+|[\w.-]+@[\w.-]+:\S+)")


def _check_repository(url: str, error) -> str:
    if not _CLONE_URL.fullmatch(url):
        raise error(f"repository must be an address `git clone` takes (https://..., ssh://... or "
                    f"user@host:path), not {url!r}", "repository")
    return url


def _blogroll(entries: list, error) -> tuple[Link, ...]:
    links = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"name", "url"} or not all(isinstance(v, str) for v in entry.values()):
            raise error(f'each blogroll entry must be {{ name = "...", url = "https://..." }}, not {entry!r}',
                        "blogroll", index)
        links.append(Link(entry["name"], entry["url"]))
    return tuple(links)


def _toml_error_line(message: str) -> int | None:
    # tomllib says "... (at line 3, column 7)"
    marker = "at line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].split(")", 1)[0]
        if digits.isdigit():
            return int(digits)
    return None


def replace(config: SiteConfig, **changes) -> SiteConfig:
    """A copy of `config` with `changes` (tests and the CLI use it for overrides)."""
    return dataclasses.replace(config, **changes)

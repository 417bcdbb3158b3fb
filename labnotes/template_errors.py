"""A template that does not compile or render, as one line naming the template file and line.

Jinja reports a syntax error with its file and line. An error while rendering (an undefined
variable, a missing include, an exception in an expression) carries neither, but Jinja rewrites
the traceback so that each template frame has the template's file name and line number: the
innermost frame in a template folder is the line to fix.
"""
from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import BuildError


@contextlib.contextmanager
def template_errors(folders: Sequence[Path | str]) -> Iterator[None]:
    """Turn a Jinja error raised in the block by a template of `folders` into a BuildError
    `templates/base.html:61: error: <message>; fix the template`."""
    import jinja2   # loaded by whoever renders templates: costs nothing more here

    try:
        yield
    except jinja2.TemplateSyntaxError as error:
        raise BuildError(error.filename or error.name, f"{_one_line(error.message)}; fix the template",
                         error.lineno) from None
    except BuildError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever a template raises, if a template raised it
        where = _template_frame(error, folders)
        if where is None:
            raise
        raise BuildError(where[0], f"{_describe(error, jinja2)}; fix the template", where[1]) from None


def _template_frame(error: BaseException, folders: Sequence[Path | str]) -> tuple[Path, int] | None:
    """(file, line) of the innermost traceback frame in a template of `folders`."""
    roots = [Path(folder).resolve() for folder in folders]
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = Path(frame.filename)
        if frame.lineno is not None and path.suffix != ".py" and any(path.resolve().is_relative_to(r) for r in roots):
            return path, frame.lineno
    return None


def _describe(error: Exception, jinja2) -> str:
    if isinstance(error, jinja2.TemplateNotFound):
        return f"no template named {error.name!r}"
    if isinstance(error, jinja2.UndefinedError):
        return _one_line(error.message)
    return f"{type(error).__name__}: {_one_line(str(error))}"


def _one_line(message: str | None) -> str:
    # "; fix the template" follows: Jinja's closing full stop would stand before it.
    return " ".join((message or "").split()).rstrip(".")

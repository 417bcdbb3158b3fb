"""Which labs need torch: read from their source, so a worker imports torch only for them.

A lab whose module, with every labcode module it imports (and theirs, and the packages they
sit in), imports nothing but the standard library and labcode is *light*: the worker runs it
without importing torch or matplotlib, which is most of a worker's start-up. Anything else
(torch, numpy, matplotlib, tiktoken, a package we do not know) makes it *heavy*, and the
worker imports torch and sets its state before the lab, as it always did. A light lab that
imports torch anyway (through `importlib`, say) is run again as a heavy one by the worker,
so a wrong guess costs time, never a result.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "labcode"
_LIGHT_ROOTS = frozenset(sys.stdlib_module_names) | {PACKAGE, "__future__"}


class ImportReader:
    """Reads labcode's sources once per file version (a worker asks for every lab)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._parsed: dict[Path, tuple[float, list[str]]] = {}

    def is_light(self, ref: str) -> bool:
        """True when `ref`'s module and the labcode modules it reaches import only the
        standard library and labcode."""
        seen: set[str] = set()
        todo = _with_parents(ref.split(":", 1)[0])
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            path = self._source(name)
            if path is None:
                if name.partition(".")[0] != PACKAGE:
                    return False
                continue          # `from labcode.x import name` where name is not a module
            for imported in self._imports(path, name):
                if imported.partition(".")[0] not in _LIGHT_ROOTS:
                    return False
                if imported.partition(".")[0] == PACKAGE:
                    todo.extend(_with_parents(imported))
        return True

    def _source(self, module: str) -> Path | None:
        if module.partition(".")[0] != PACKAGE:
            return None
        base = self.root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def _imports(self, path: Path, module: str) -> list[str]:
        """Every module `path` imports anywhere in it (a function's imports too), absolute."""
        mtime = path.stat().st_mtime
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            names = ["<unreadable>"]          # heavy: the worker reports the error as it runs
        else:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            names = []
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = _absolute(node, package)
                    names.append(base)
                    # `from labcode.labs import figures` imports the module labcode.labs.figures
                    names += [f"{base}.{alias.name}" for alias in node.names
                              if alias.name != "*" and base.partition(".")[0] == PACKAGE]
        self._parsed[path] = (mtime, names)
        return names


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[:len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _with_parents(module: str) -> list[str]:
    """`labcode.labs.x` and the packages Python imports before it: labcode, labcode.labs."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

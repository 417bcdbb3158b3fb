"""Check lab references against the labcode sources before anything runs.

Resolution reads the modules with `ast`, so it needs neither torch nor an
import of labcode: a typo fails the build in milliseconds, naming the post, the
line and the nearest valid names.
"""
from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from labnotes.errors import BuildError
from labnotes.labs.directive import RESERVED_ARGS, LabCall, SourceCall

PACKAGE = "labcode"


@dataclass(frozen=True)
class Callable_:
    """A function or class found in a labcode module."""

    ref: str                  # "labcode.attention:CausalAttention"
    file: Path
    node: ast.AST             # FunctionDef / ClassDef
    params: tuple[str, ...]   # keyword-passable parameter names (a class: its __init__'s)
    takes_any: bool           # has **kwargs
    required: tuple[str, ...] = ()   # parameters without a default: a block must give them


class LabcodeIndex:
    """Every top-level function and class (and their methods) of the labcode package."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.package_dir = self.root / PACKAGE
        self.callables: dict[str, Callable_] = {}
        self._sources: dict[Path, str] = {}
        if self.package_dir.is_dir():
            for file in sorted(self.package_dir.rglob("*.py")):
                self._index_file(file)

    def _index_file(self, file: Path) -> None:
        module = module_name(self.root, file)
        try:
            source = file.read_text(encoding="utf-8")
            tree = ast.parse(source, filename=str(file))
        except (SyntaxError, UnicodeDecodeError) as exc:
            line = getattr(exc, "lineno", None)
            raise BuildError(file, f"labcode module cannot be read: {exc.__class__.__name__}: "
                             f"{getattr(exc, 'msg', exc)}", line) from None
        self._sources[file] = source
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self._add(module, node.name, file, node)
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self._add(module, f"{node.name}.{item.name}", file, item)

    def _add(self, module: str, qualname: str, file: Path, node: ast.AST) -> None:
        target = node
        if isinstance(node, ast.ClassDef):
            init = next((n for n in node.body if isinstance(n, ast.FunctionDef)
                         and n.name == "__init__"), None)
            target = init
        params, takes_any, required = (), True, ()
        if target is not None:
            a = target.args
            positional = [p.arg for p in a.posonlyargs + a.args]
            names = positional + [p.arg for p in a.kwonlyargs]
            required = positional[:len(positional) - len(a.defaults)] + \
                [p.arg for p, default in zip(a.kwonlyargs, a.kw_defaults) if default is None]
            if names and names[0] in ("self", "cls"):
                names = names[1:]
                required = [r for r in required if r not in ("self", "cls")]
            params, takes_any = tuple(names), a.kwarg is not None
        ref = f"{module}:{qualname}"
        self.callables[ref] = Callable_(ref, file, node, params, takes_any, tuple(required))

    def nearest(self, ref: str, n: int = 3) -> list[str]:
        """The valid references closest to a mistyped one; private names (`_helper`, methods
        such as `__init__`) only when the typo itself names something private."""
        def private(name: str) -> bool:
            return any(part.startswith("_") for part in re.split(r"[.:]", name))
        names = [r for r in self.callables if private(ref) or not private(r)]
        return difflib.get_close_matches(ref, names, n=n, cutoff=0.5)

    def resolve(self, call: LabCall | SourceCall) -> Callable_:
        """The callable a block names; BuildError (post and line) when there is none."""
        if call.module != PACKAGE and not call.module.startswith(PACKAGE + "."):
            raise BuildError(call.path, f"{call.ref}: only callables inside the labcode package "
                             "can be referenced (e.g. labcode.labs.attention:causal_weights_demo)",
                             call.ref_line)
        found = self.callables.get(call.ref)
        if found is None:
            near = self.nearest(call.ref)
            hint = f"; nearest: {', '.join(near)}" if near else \
                f"; no close match in {self.package_dir}"
            raise BuildError(call.path, f"lab reference {call.ref} does not resolve{hint}",
                             call.ref_line)
        if isinstance(call, LabCall) and not found.takes_any:
            allowed = [p for p in found.params if p not in RESERVED_ARGS]
            for name, _ in call.args:
                if name not in found.params:
                    near = difflib.get_close_matches(name, allowed, n=1)
                    hint = f" (did you mean {near[0]}?)" if near else ""
                    raise BuildError(call.path, f"{call.ref} has no parameter `{name}`{hint}; "
                                     f"its parameters: {', '.join(allowed) or 'none'}",
                                     call.arg_lines.get(name, call.ref_line))
        if isinstance(call, LabCall):
            given = {name for name, _ in call.args}
            missing = [p for p in found.required if p not in given and p not in RESERVED_ARGS]
            if missing:
                raise BuildError(call.path, f"{call.ref} needs `{missing[0]}` (it has no default): give it "
                                 f"in the block (`{missing[0]}: ...`) or with `--arg {missing[0]}=...`",
                                 call.ref_line)
        return found

    def source_of(self, ref: str) -> tuple[str, Path, int]:
        """Source text, file and first line of a resolved callable, decorators included."""
        found = self.callables[ref]
        source = self._sources[found.file]
        node = found.node
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        lines = source.splitlines()[start - 1:node.end_lineno]
        indent = min(len(l) - len(l.lstrip()) for l in lines if l.strip())
        return "\n".join(l[indent:] for l in lines), found.file, start


def module_name(root: Path, file: Path) -> str:
    """labcode/attention.py -> labcode.attention; labcode/__init__.py -> labcode."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_file(root: Path, module: str) -> Path | None:
    """The source file of a labcode module name, or None if it is gone."""
    base = Path(root).joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def code_digests(source: str) -> tuple[str, dict[str, str]]:
    """Digests of what executes in a module: the whole, and each top-level definition.

    Docstrings, comments and formatting do not count, so editing them reruns no lab;
    the per-definition digests let `--why` name the function that changed.
    """
    tree = ast.parse(source)
    _drop_docstrings(tree)
    parts: dict[str, str] = {}
    for node in tree.body:
        names = [node.name] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                 ast.ClassDef)) else []
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        for name in names:
            parts[name] = _digest(ast.dump(node))
    return _digest(ast.dump(tree)), parts


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]


def _digest(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()[:16]

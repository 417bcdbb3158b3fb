"""Claims a post makes about a lab's result, checked on every build (SPEC 3, `expect:`).

    expect: forward_max < 1e-6
    expect: speedup > 5 and history[-1].val_loss < history[0].val_loss
    expect: all(row.loss < 4 for row in history)

An `expect:` line is a Python comparison over the result's paths, written as citations write
them (`history[-1].val_loss`, `["max |grad|"]`): a name is a key of this lab's result, else the
`name:` of a lab of the site (its whole result); `result` is this lab's whole result
(`result["max |grad|"]` for a key that is not a plain word). Only a small, safe part of Python is allowed:
comparisons, `and`/`or`/`not`, arithmetic, literals, `abs`, `min`, `max`, `len`, `all`, `any`,
and one `for` inside `all(...)`/`any(...)`. Parsing is checked before any lab runs; evaluation
is pure and reads only the JSON tree the lab returned.
"""
from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

FUNCTIONS = {"abs": abs, "min": min, "max": max, "len": len, "all": all, "any": any}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
               ast.Pow: operator.pow}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}
ALLOWED = "comparisons, and/or/not, arithmetic, numbers and strings, abs, min, max, len, all, any"


class ClaimSyntaxError(ValueError):
    """An `expect:` line that is not a claim this engine evaluates (the message says why)."""


class ClaimError(ValueError):
    """A claim that cannot be evaluated against a result (a missing key, a wrong type)."""


@dataclass(frozen=True)
class Claim:
    """One `expect:` line of a lab block."""

    text: str                      # "forward_max < 1e-6"
    line: int                      # its line in the post
    tree: ast.Expression = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Verdict:
    """A claim evaluated against one result."""

    claim: Claim
    holds: bool
    reads: tuple[tuple[str, object], ...] = ()   # (path as written, value read), in order
    error: str = ""                              # why it could not be evaluated

    @property
    def values_text(self) -> str:
        """`forward_max = 1.2e-07, speedup = 4.1`: what the claim read."""
        return ", ".join(f"{path} = {show_value(value)}" for path, value in self.reads)


def parse_claim(text: str, line: int = 0) -> Claim:
    """`text` as a Claim; ClaimSyntaxError names what is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ClaimSyntaxError(f"expect: {text.strip()!r} is not a Python expression "
                               f"({error.msg})") from None
    _check_node(tree.body, text.strip(), loop_allowed=False)
    return Claim(text.strip(), line, tree)


def _check_node(node: ast.AST, text: str, loop_allowed: bool) -> None:
    def refuse(what: str) -> ClaimSyntaxError:
        return ClaimSyntaxError(f"expect: {text!r}: {what} is not allowed in a claim; a claim "
                                f"uses {ALLOWED}")

    if isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise refuse(f"the comparison {type(op).__name__}")
    elif isinstance(node, ast.BoolOp | ast.Name | ast.List | ast.Tuple | ast.Attribute | ast.Subscript):
        pass
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise refuse(f"the operator {type(node.op).__name__}")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            raise refuse(f"the operator {type(node.op).__name__}")
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise refuse(f"the constant {node.value!r}")
    elif isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise refuse(f"calling {shown}")
        if node.keywords:
            raise refuse("a keyword argument")
        for arg in node.args:
            comprehension = isinstance(arg, ast.GeneratorExp | ast.ListComp)
            if comprehension and name not in ("all", "any", "min", "max"):
                raise refuse(f"a comprehension inside {name}()")
            _check_node(arg, text, loop_allowed=comprehension)
        return
    elif isinstance(node, ast.GeneratorExp | ast.ListComp):
        if not loop_allowed:
            raise refuse("a comprehension outside all(), any(), min() or max()")
        if len(node.generators) != 1 or node.generators[0].is_async or \
                not isinstance(node.generators[0].target, ast.Name):
            raise refuse("a comprehension with more than one plain `for NAME in PATH`")
    elif isinstance(node, ast.Starred | ast.keyword):
        raise refuse(type(node).__name__)
    elif not isinstance(node, ast.comprehension | ast.expr_context | ast.boolop | ast.cmpop |
                        ast.operator | ast.unaryop):
        raise refuse(_describe_node(node))
    for child in ast.iter_child_nodes(node):
        _check_node(child, text, loop_allowed=False)


def _describe_node(node: ast.AST) -> str:
    names = {"IfExp": "a conditional expression (x if c else y)", "Lambda": "a lambda",
             "NamedExpr": "an assignment (:=)", "Dict": "a dict", "Set": "a set",
             "JoinedStr": "an f-string", "Await": "await", "Yield": "yield",
             "DictComp": "a dict comprehension", "SetComp": "a set comprehension",
             "Slice": "a slice"}
    return names.get(type(node).__name__, type(node).__name__)


def evaluate(claim: Claim, data: object, labs: Mapping[str, object] = {}) -> Verdict:
    """`claim` against `data` (this lab's result as JSON); `labs` maps other lab names to
    their results. A claim that cannot be evaluated holds not, with the reason."""
    reads: list[tuple[str, object]] = []
    try:
        value = _Evaluator(data, labs, reads).eval(claim.tree.body, {})
    except ClaimError as error:
        return Verdict(claim, False, tuple(reads), str(error))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as error:
        return Verdict(claim, False, tuple(reads), f"{type(error).__name__}: {error}")
    if not isinstance(value, bool):
        return Verdict(claim, False, tuple(reads), f"it gives {show_value(value)}, not true or "
                       "false: write a comparison such as x < 1e-6")
    return Verdict(claim, value, tuple(dict.fromkeys(reads)))


class _Evaluator:
    def __init__(self, data, labs: Mapping[str, object], reads: list):
        self.data, self.labs, self.reads = data, labs, reads

    def eval(self, node: ast.AST, scope: dict):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Compare):
            left = self.eval(node.left, scope)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.eval(right_node, scope)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._truth(v, scope) for v in node.values)
            return any(self._truth(v, scope) for v in node.values)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self.eval(node.operand, scope))
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left, scope), self.eval(node.right, scope)
            if isinstance(node.op, ast.Pow) and abs(right) > 1000:
                raise ClaimError(f"{ast.unparse(node)}: an exponent above 1000 is not a claim")
            return _ARITHMETIC[type(node.op)](left, right)
        if isinstance(node, ast.List | ast.Tuple):
            return [self.eval(e, scope) for e in node.elts]
        if isinstance(node, ast.Call):
            function = FUNCTIONS[node.func.id]
            args = [self._iterate(a, scope) if isinstance(a, ast.GeneratorExp | ast.ListComp)
                    else self.eval(a, scope) for a in node.args]
            return function(*args)
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            return self._path(node, scope)
        raise ClaimError(f"cannot evaluate {ast.unparse(node)}")

    def _truth(self, node, scope) -> bool:
        value = self.eval(node, scope)
        if not isinstance(value, bool):
            raise ClaimError(f"{ast.unparse(node)} gives {show_value(value)}, not true or false")
        return value

    def _iterate(self, node: ast.GeneratorExp | ast.ListComp, scope: dict) -> list:
        loop = node.generators[0]
        items = self.eval(loop.iter, scope)
        if isinstance(items, dict):
            items = list(items.values())
        if not isinstance(items, list):
            raise ClaimError(f"{ast.unparse(loop.iter)} is {_kind(items)}, not a list to loop over")
        out = []
        for item in items:
            inner = {**scope, loop.target.id: item}
            if all(self._truth(cond, inner) for cond in loop.ifs):
                out.append(self.eval(node.elt, inner))
        return out

    def _path(self, node: ast.AST, scope: dict):
        """A name followed by `.key`, `["key"]` and `[index]`, as citations walk results."""
        steps: list[ast.AST] = []
        while isinstance(node, ast.Attribute | ast.Subscript):
            steps.insert(0, node)
            node = node.value
        if not isinstance(node, ast.Name):
            raise ClaimError(f"{ast.unparse(node)} is not a path into a result")
        name = node.id
        local = name in scope
        if local:
            value = scope[name]
        elif isinstance(self.data, dict) and name in self.data:
            value = self.data[name]
        elif name in self.labs:
            value = self.labs[name]
        elif name == "result":
            value = self.data
        else:
            keys = list(self.data) if isinstance(self.data, dict) else []
            nearest = difflib.get_close_matches(name, [*keys, *self.labs], n=3)
            hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
            raise ClaimError(f"{name} is not a key of this lab's result (its keys: "
                             f"{_listing(keys)}) nor the name of a lab{hint}")
        written = name
        for step in steps:
            if isinstance(step, ast.Attribute):
                key = step.attr
                written_next = f"{written}.{key}"
            else:
                key = self.eval(step.slice, scope)
                # as the claim writes it: ["key"], as citations do
                written_next = f'{written}["{key}"]' if isinstance(key, str) else f"{written}[{key}]"
            value = _step(value, key, written)
            written = written_next
        if not local and isinstance(value, (int, float, str, bool)) or value is None:
            self.reads.append((written, value))
        return value


def _step(value, key, where: str):
    if isinstance(value, dict):
        if not isinstance(key, str):
            raise ClaimError(f"{where} is a dict, not a list: use a key ({_listing(list(value))})")
        if key not in value:
            nearest = difflib.get_close_matches(key, [str(k) for k in value], n=3)
            hint = f"; nearest: {', '.join(nearest)}" if nearest else ""
            raise ClaimError(f"{where} has no key {key!r}; its keys: {_listing(list(value))}{hint}")
        return value[key]
    if isinstance(value, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise ClaimError(f"{where} is a list of {len(value)} items, not a dict: use an index "
                             "such as [0] or [-1]")
        if not -len(value) <= key < len(value):
            raise ClaimError(f"{where} has no index [{key}]: it is a list of {len(value)} items")
        return value[key]
    raise ClaimError(f"{where} is {_kind(value)}, which has no keys or indices")


def show_value(value) -> str:
    """A value in a message: floats to 4 significant digits, as tables show them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    if isinstance(value, dict):
        return f"a dict of {len(value)} keys"
    return repr(value)


def _kind(value) -> str:
    if isinstance(value, dict):
        return "a dict"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return f"{show_value(value)}"


def _listing(items: list, limit: int = 10) -> str:
    if not items:
        return "none"
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def notebook_assert(claim: Claim, keys, labs: Mapping[str, str] = {}, variable: str = "r") -> str:
    """The claim as a Python `assert` over `variable`, a result whose dict keys read as
    attributes (labs/session.py `LabSession.data`): `assert r.forward_max < 1e-6, "..."`.

    Names resolve as in `evaluate`: loop names stay, `keys` of this result become
    `r.key`, another lab's name becomes `labs[name]` (an expression), `result` becomes `r`."""
    class Rename(ast.NodeTransformer):
        def __init__(self, bound: set[str]):
            self.bound = bound

        def visit_Name(self, node):
            if node.id in FUNCTIONS or node.id in self.bound:
                return node
            if node.id in keys or node.id not in labs and node.id != "result":
                new = ast.Attribute(ast.Name(variable, ast.Load()), node.id, ast.Load())
            elif node.id in labs:
                new = ast.parse(labs[node.id], mode="eval").body
            else:
                new = ast.Name(variable, ast.Load())
            return ast.copy_location(new, node)

    tree = ast.parse(claim.text, mode="eval")
    bound = {n.target.id for n in ast.walk(tree) if isinstance(n, ast.comprehension)}
    expression = ast.unparse(Rename(bound).visit(tree))
    return f"assert {expression}, {claim.text!r}"

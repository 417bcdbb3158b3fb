"""Pygments' tokens, found faster: the same tokens as `lexer.get_tokens(text)`.

A Pygments `RegexLexer` is a list of rules per state, each a regex; at every position its loop
tries the current state's rules one after another, in Python, until one matches. Python's
own lexer has about forty rules in its main state, so a token costs some forty regex calls,
almost all of them failing, and highlighting an eight-line function took about half a
millisecond: in a first build of many posts, more than the rest of rendering a post's Markdown.

`tokens(lexer, text)` runs the same loop, with the same rules in the same order, but asks
fewer of them. For each state and each ASCII character it works out, from the parsed form of
each rule's regex (`re._parser`), which rules could match a text starting with that character
(or match nothing at all), and joins just those into one regex of alternatives, `(r1)|(r2)|...`:
Python's regex engine tries alternatives in order, as the loop does, and the group that
closed last (`Match.lastindex`) says which rule matched, whose own regex then runs once more to
give its action the groups it expects. Where the analysis cannot be sure (a backreference, a
state that will not join), that state keeps the plain loop; before a character past ASCII,
or at the end of the text, every rule of the state is asked. The tables are made as states and
characters are first met, and kept for the life of the process, one set per set of rules (a
lexer's class, or its options where they choose the rules, as C#'s `unicodelevel` does).

Python code lexes three to four times faster. Lexers that are not plain `RegexLexer`s (those with
their own `get_tokens_unprocessed`) are left to Pygments. tests/site/test_lexing.py holds the
tokens to Pygments' own for every fenced block of the shipped posts, the project's source and
snippets in a dozen languages.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from re import _compiler, _constants as sre, _parser

from pygments.filter import apply_filters
from pygments.lexer import RegexLexer
from pygments.token import Error, Whitespace, _TokenType

# Group numbers change when rules are joined: a rule that refers to a group by number (a
# backreference, a conditional) keeps its state on the plain loop.
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\(\?\(")
_LEADING_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_SCOPED_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}
_ASCII = [chr(code) for code in range(128)]
_EVERY_CHARACTER = frozenset(range(128))
_BEYOND_ASCII = 128   # the table's index for a non-ASCII character or the end of the text


def tokens(lexer, text: str) -> Iterator[tuple]:
    """`lexer.get_tokens(text)`: (token type, value) pairs, the same ones Pygments gives."""
    if (type(lexer).get_tokens_unprocessed is not RegexLexer.get_tokens_unprocessed
            or not hasattr(lexer, "_preprocess_lexer_input")):
        return lexer.get_tokens(text)
    text = lexer._preprocess_lexer_input(text)
    stream = ((kind, value) for _, kind, value in _unprocessed(lexer, text))
    return apply_filters(stream, lexer.filters, lexer) if lexer.filters else stream


def highlight(code: str, lexer, formatter) -> str:
    """`pygments.highlight(code, lexer, formatter)`, its tokens found by `tokens`."""
    import pygments
    return pygments.format(tokens(lexer, code), formatter)


def _unprocessed(lexer, text: str, stack=("root",)) -> Iterator[tuple]:
    """`RegexLexer.get_tokens_unprocessed`, choosing the rule through the tables."""
    tables = _tables(lexer)
    pos, end = 0, len(text)
    rules_of = lexer._tokens
    statestack = list(stack)
    rules = rules_of[statestack[-1]]
    table = tables[statestack[-1]]
    while True:
        if table is not None:
            code = ord(text[pos]) if pos < end else _BEYOND_ASCII
            joined = table.joined(code if code < _BEYOND_ASCII else _BEYOND_ASCII)
            found = joined[0](text, pos) if joined is not None else None
            m = None
            if found:
                rexmatch, action, new_state = joined[1][found.lastindex]
                m = rexmatch(text, pos)
                if m is None:   # never seen: should a rule disagree with its join, ask them all
                    m, action, new_state = _first_match(rules, text, pos)
        else:
            m, action, new_state = _first_match(rules, text, pos)
        if m:
            if action is not None:
                if type(action) is _TokenType:
                    yield pos, action, m.group()
                else:
                    yield from action(lexer, m)
            pos = m.end()
            if new_state is not None:
                _move(statestack, new_state)
                rules = rules_of[statestack[-1]]
                table = tables[statestack[-1]]
        elif pos < end:
            if text[pos] == "\n":   # at the end of a line, back to the root state
                statestack = ["root"]
                rules = rules_of["root"]
                table = tables["root"]
                yield pos, Whitespace, "\n"
            else:
                yield pos, Error, text[pos]
            pos += 1
        else:
            break


def _first_match(rules: list, text: str, pos: int) -> tuple:
    """(match, action, new state) of the first of `rules` that matches at `pos`, as
    RegexLexer's own loop finds it; (None, None, None) when none does."""
    for rexmatch, action, new_state in rules:
        m = rexmatch(text, pos)
        if m:
            return m, action, new_state
    return None, None, None


def _move(statestack: list, new_state) -> None:
    """A rule's state transition, as RegexLexer makes it."""
    if isinstance(new_state, tuple):
        for state in new_state:
            if state == "#pop":
                if len(statestack) > 1:
                    statestack.pop()
            elif state == "#push":
                statestack.append(statestack[-1])
            else:
                statestack.append(state)
    elif isinstance(new_state, int):   # pop, keeping at least one state
        if abs(new_state) >= len(statestack):
            del statestack[1:]
        else:
            del statestack[new_state:]
    elif new_state == "#push":
        statestack.append(statestack[-1])
    else:
        raise ValueError(f"wrong state definition: {new_state!r}")


class _Tables(dict):
    """State name -> its `_StateTable`, made on the state's first visit; None for a state that
    keeps the plain loop."""

    def __init__(self, rules: dict, flags: int):
        super().__init__()
        self.rules, self.flags = rules, flags

    def __missing__(self, state: str):
        try:
            table = _StateTable(self.rules[state], self.flags)
        except (ValueError, TypeError, AttributeError, RecursionError, re.error):
            table = None
        self[state] = table
        return table


# (id of a lexer's processed rules, its flags) -> (those rules, their tables). Most lexers share
# one set of rules per class; a few (C#, Nemerle, Inform) pick theirs per instance from options.
_ALL_TABLES: dict[tuple[int, int], tuple[dict, _Tables]] = {}


def _tables(lexer) -> _Tables:
    rules = lexer._tokens
    key = (id(rules), lexer.flags)
    known = _ALL_TABLES.get(key)
    if known is None or known[0] is not rules:
        known = _ALL_TABLES[key] = (rules, _Tables(rules, lexer.flags))
    return known[1]


class _StateTable:
    """One state's rules joined per first character: `joined(code)` is (match of the joined
    regex, {group number: rule}) for the rules that could match there, or None if none can."""

    __slots__ = ("rules", "flags", "firsts", "by_code", "made")

    def __init__(self, rules: list, flags: int):
        patterns = [rule[0].__self__ for rule in rules]
        if any(_BACKREFERENCE.search(p.pattern) for p in patterns):
            raise ValueError("a backreference")
        self.rules, self.flags = rules, flags
        self.firsts = [_first_characters(_parser.parse(p.pattern, p.flags), p.flags) for p in patterns]
        self.by_code: list = [False] * (_BEYOND_ASCII + 1)
        self.made: dict[tuple, tuple | None] = {}
        # Every rule joined, for a character past ASCII or the end of the text: made now, so a
        # state whose rules will not join (a group name used twice, flags that cannot be
        # scoped) keeps the plain loop; any subset of rules that joins whole joins too.
        self.by_code[_BEYOND_ASCII] = self._join(_BEYOND_ASCII)

    def joined(self, code: int):
        found = self.by_code[code]
        if found is False:
            found = self.by_code[code] = self._join(code)
        return found

    def _join(self, code: int):
        picked = tuple(i for i, first in enumerate(self.firsts)
                       if code == _BEYOND_ASCII or first is None or code in first)
        if picked not in self.made:
            self.made[picked] = _joined([self.rules[i] for i in picked], self.flags) if picked else None
        return self.made[picked]


def _joined(rules: list, flags: int) -> tuple:
    """(match of `(r1)|(r2)|...`, {number of the group around each rule: the rule})."""
    parts, owners, group = [], {}, 1
    for rule in rules:
        pattern = rule[0].__self__
        parts.append(_grouped(pattern, flags))
        owners[group] = rule
        group += 1 + pattern.groups
    joined = re.compile("|".join(parts), flags)
    if joined.groups != group - 1:
        raise ValueError("groups did not add up")
    return joined.match, owners


def _grouped(pattern: re.Pattern, base_flags: int) -> str:
    """`pattern` as one group of the joined regex, its own flags (inline `(?i)` included)
    scoped to it."""
    text = pattern.pattern
    leading = _LEADING_FLAGS.match(text)
    if leading:
        if set(leading.group(1)) - set(_SCOPED_FLAGS):
            raise ValueError("flags that cannot be scoped")
        text = text[leading.end():]
    add = "".join(k for k, f in _SCOPED_FLAGS.items() if pattern.flags & f and not base_flags & f)
    drop = "".join(k for k, f in _SCOPED_FLAGS.items() if base_flags & f and not pattern.flags & f)
    if pattern.flags & re.X:
        text += "\n"   # a verbose pattern may end in a comment, which would swallow the `)`
    if not (add or drop):
        return f"({text})"
    return f"((?{add}{'-' + drop if drop else ''}:{text}))"


def _first_characters(items, flags: int) -> frozenset | None:
    """The ASCII codes a match of the parsed regex `items` can start with; None if it can
    match nothing (then it may match before any character)."""
    first, can_be_empty = _first(items, flags)
    return None if can_be_empty else frozenset(first)


def _first(items, flags: int) -> tuple[set, bool]:
    """(ASCII codes a match can start with, whether it can match the empty string). Where it
    cannot tell, every code and True: never fewer rules than could match."""
    first: set = set()
    for op, av in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.IN, sre.ANY):
            return first | _one_character((op, av), flags), False
        if op is sre.SUBPATTERN:
            _, add, drop, sub = av
            codes, can_be_empty = _first(sub, (flags | add) & ~drop)
        elif op is sre.ATOMIC_GROUP:
            codes, can_be_empty = _first(av, flags)
        elif op is sre.BRANCH:
            branches = [_first(branch, flags) for branch in av[1]]
            codes = set().union(*(b[0] for b in branches))
            can_be_empty = any(b[1] for b in branches)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            least, _, sub = av
            codes, can_be_empty = _first(sub, flags)
            can_be_empty = can_be_empty or least == 0
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):   # anchors and lookarounds consume nothing
            continue
        else:                                               # a group reference, a conditional
            return set(_EVERY_CHARACTER), True
        first |= codes
        if not can_be_empty:
            return first, False
    return first, True


_ONE_CHARACTER: dict[tuple, frozenset] = {}


def _one_character(item: tuple, flags: int) -> frozenset:
    """The ASCII codes one single-character item (a literal, a class, `.`) matches, under
    `flags` (IGNORECASE included): asked of the regex engine itself."""
    key = (repr(item), flags)
    if key not in _ONE_CHARACTER:
        match = _compiler.compile(_parser.SubPattern(_parser.State(), [item]), flags).match
        _ONE_CHARACTER[key] = frozenset(code for code, char in enumerate(_ASCII) if match(char))
    return _ONE_CHARACTER[key]

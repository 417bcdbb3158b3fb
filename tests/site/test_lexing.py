"""labnotes.lexing gives exactly Pygments' tokens, only sooner: a highlighted block must not
change by one span because the rules were asked in a different way."""
import re
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name

from pygments.lexer import RegexLexer, default
from pygments.token import Keyword, Name, Text

from labnotes.lexing import _tables, tokens
from labnotes.markdown import highlight_code

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w[\w+-]*)\n(.*?)^```", re.M | re.S)


def same_tokens(language: str, text: str) -> None:
    lexer = get_lexer_by_name(language)
    assert list(tokens(lexer, text)) == list(get_lexer_by_name(language).get_tokens(text)), language


def test_every_fenced_block_of_the_shipped_posts_lexes_as_pygments_lexes_it():
    blocks = [(m.group(1), m.group(2)) for post in sorted((ROOT / "content").rglob("*.md"))
              for m in FENCE.finditer(post.read_text())]
    languages = {language for language, _ in blocks}
    assert len(blocks) > 20 and "python" in languages
    for language, text in blocks:
        if language not in ("lab", "labsource"):
            same_tokens(language, text)


@pytest.mark.parametrize("language, pattern", [
    ("python", "labcode/**/*.py"), ("python", "labnotes/**/*.py"), ("python", "tests/site/*.py"),
    ("html+jinja", "templates/*.html"), ("css", "static/*.css"), ("toml", "pyproject.toml"),
    ("markdown", "README.md"), ("make", "Makefile"), ("bash", ".ci/run"),
])
def test_the_projects_own_files_lex_as_pygments_lexes_them(language, pattern):
    files = sorted(ROOT.glob(pattern))
    assert files, pattern
    for path in files:
        same_tokens(language, path.read_text())


SNIPPETS = {
    "c": '#include <stdio.h>\nint main(void) { printf("%d\\n", 0x1f); /* done */ return 0; }\n',
    "rust": 'fn main() { let v: Vec<u8> = vec![1, 2]; println!("{:?}", v); } // ok\n',
    "javascript": "const f = (a) => `x ${a}`; /re+g/.test('s'); // c\n",
    "json": '{"a": [1, 2.5e3, true, null], "b": {"c": "d\\u00e9"}}\n',
    "yaml": "key: value\nlist:\n  - 1\n  - 'two'\n# comment\nanchor: &a {x: 1}\n",
    "diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n",
    "sql": "SELECT name, COUNT(*) FROM t WHERE x > 1 group By name; -- note\n",
    "ini": "[section]\nkey = value ; comment\n",
    "latex": r"\begin{equation} \frac{a}{b} = \alpha^2 \end{equation} % c" + "\n",
    "text": "plain words, nothing to highlight\n",
    "pycon": ">>> 1 + 1\n2\n>>> def f():\n...     return 'x'\n",
    "python": ("café = 'ünï' + \"\"\"tri\nple\"\"\"  # ok\nK = f'{café!r:>10}' + rb'\\x00'\n"
               "@decorator\nclass Ω(Base, metaclass=Meta):\n    async def m(self, *a, **k) -> None: ...\n"
               "match x:\n    case [1, *rest] if rest: pass\n$ ` ?\n"),
}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippets_in_many_languages_lex_as_pygments_lexes_them(language):
    same_tokens(language, SNIPPETS[language])


def test_case_insensitive_rules_and_characters_past_ascii_are_still_found():
    # SQL's keywords are matched ignoring case; the Kelvin sign and the long s fold to k and s
    same_tokens("sql", "sElEcT \u212a, \u017f FROM dual WHERE ñ = 'é';\n")
    same_tokens("python", "x = 1\n\u00e9t\u00e9 = [\u212a for \u017f in x]\n")


def test_highlighted_html_is_the_same_and_python_takes_the_joined_path():
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    code = (ROOT / "labcode" / "model.py").read_text()
    ours = highlight_code(code.rstrip("\n"), "python")
    theirs = highlight(code.rstrip("\n") + "\n", get_lexer_by_name("python"),
                       HtmlFormatter(cssclass="codehilite", wrapcode=True))
    assert ours == theirs
    # the point of the module: Python's main state is joined, not the rule-by-rule loop
    assert _tables(get_lexer_by_name("python"))["root"] is not None


@pytest.mark.parametrize("language, text", [
    ("irc", "[12:00] <nick> hello\n* nick waves\n"),       # verbose rules ending in a comment
    ("evoque", "$begin{x} $begin{%x} ${y}\n"),               # conditionals refer to groups by number
])
def test_lexers_whose_rules_do_not_join_as_written_still_give_pygments_tokens(language, text):
    same_tokens(language, text)


def test_options_that_choose_the_rules_are_followed():
    # C# picks its rules from `unicodelevel` per instance: tables made for one level must not
    # serve another
    text = "int \u00e9 = 1;\n"
    for level in ("basic", "none", "full", "none"):
        ours = list(tokens(get_lexer_by_name("csharp", unicodelevel=level), text))
        assert ours == list(get_lexer_by_name("csharp", unicodelevel=level).get_tokens(text)), level


class Awkward(RegexLexer):
    """Rules a join cannot take as they are: a group name twice, a flag that cannot be scoped,
    two leading flag groups, a numbered conditional; and an empty-matching default."""
    name = "awkward"
    tokens = {
        "root": [
            (r"(?P<q>a)b", Keyword),
            (r"(?P<q>c)d", Keyword),
            (r"(?a)\w+", Name),
            (r"(?i)(?s)e.", Keyword),
            (r"(<)?x(?(1)>)", Keyword),
            (r"\(", Text, "inner"),
            (r"[^\S\n]+|\n|.", Text),
        ],
        "inner": [
            (r"\)", Text, "#pop"),
            (r"[a-z]+", Name),
            default("#pop"),
        ],
    }


def test_a_lexer_with_rules_that_cannot_be_joined_gives_the_same_tokens():
    text = "ab cd \u00e9t\u00e9 E\nx <x> <x (abc) (1 ) zz\n"
    assert list(tokens(Awkward(), text)) == list(Awkward().get_tokens(text))

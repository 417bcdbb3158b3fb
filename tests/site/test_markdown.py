"""Markdown to HTML: code, footnotes, tables, quotes, maths to MathML, the fold, the lab seam."""
from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from labnotes.errors import BuildError
from labnotes.markdown import render_code_block, render_document
from labnotes.model import Document, RenderedBlock


def render(body: str, renderer=render_code_block, base_path="/", **fields):
    doc = Document("post", Path("content/posts/p.md"), "T", "p", body, body_line=10, **fields)
    return render_document(doc, renderer, base_path)


def soup(fragment: str) -> BeautifulSoup:
    return BeautifulSoup(fragment, "html5lib")


def test_inline_and_display_maths_become_mathml():
    html = soup(render("The score $q \\cdot k$ scaled:\n\n$$\n\\frac{QK^T}{\\sqrt{d_k}}\n$$\n").html)
    inline, display = html.find_all("math")
    assert inline["display"] == "inline" and inline["alttext"] == "q \\cdot k"
    assert display["display"] == "block" and display.find("mfrac") and display.find("msqrt")
    assert display.parent.name != "p"


def test_price_dollars_stay_prose():
    for text in ["It costs $5 and $10.", "From $5/$10 a month.", "Pay $5, or $ 10 $ later."]:
        html = soup(render(text).html)
        assert html.find("math") is None and "$5" in html.get_text()


def test_escaped_dollar_is_a_literal_dollar():
    html = soup(render("A \\$x\\$ is money, $y$ is maths.").html)
    assert html.get_text().strip().startswith("A $x$ is money")
    assert [m["alttext"] for m in html.find_all("math")] == ["y"]


def test_no_maths_in_code_spans_or_fenced_code():
    html = soup(render("Use `$x$` here.\n\n```python\ncost = '$a$'\n```\n").html)
    assert html.find("math") is None
    assert html.find("code").get_text() == "$x$"
    assert "'$a$'" in html.find("pre").get_text()


@pytest.mark.parametrize("body, line", [
    ("Fine.\n\nBroken $\\frac{a}{b$ here.", 12),
    ("$$\nx^\n$$", 10),
    ("Text\n$\\notacommand x$", 11),
    ("Text $$ never closed", 10),
])
def test_invalid_maths_names_file_and_line(body, line):
    with pytest.raises(BuildError) as err:
        render(body)
    assert err.value.one_line().startswith(f"content/posts/p.md:{line}: error:")
    assert "maths" in err.value.message


def test_code_is_highlighted_and_prose_gets_smart_quotes():
    html = soup(render('He said "hi" -- it\'s fine.\n\n```python\nx = "a"\n```\n').html)
    assert "\u201chi\u201d" in html.p.get_text() and "\u2019" in html.p.get_text()
    code = html.find("div", class_="codehilite")
    assert code.find("span", class_="s2").get_text() == '"a"'


def test_footnotes_tables_and_heading_ids():
    body = "## Heads & tails\n\nText[^1].\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Heads & tails\n\n[^1]: The note.\n"
    html = soup(render(body).html)
    assert [h["id"] for h in html.find_all("h2")] == ["heads-tails", "heads-tails-2"]
    assert [td.get_text() for td in html.find_all("td")] == ["1", "2"]
    ref = html.find("sup").a["href"]
    assert html.find(id=ref[1:]).get_text(strip=True).startswith("The note.")


def test_fold_splits_intro_and_points_footnotes_at_the_post():
    rendered = render("Intro[^n].\n\n<!--more-->\n\nRest.\n\n[^n]: Note.\n")
    assert rendered.has_more
    intro = soup(rendered.intro_html)
    assert intro.get_text().strip() == "Intro1." and intro.find("sup").a["href"] == "/posts/p.html#fn-n"
    whole = soup(rendered.html)
    assert "Rest." in whole.get_text() and "more" not in rendered.html
    assert "<!--more-->" not in rendered.markdown


def test_without_fold_the_intro_is_the_whole_post():
    rendered = render("One.\n\nTwo.")
    assert not rendered.has_more and rendered.intro_html == rendered.html


def test_summary_defaults_to_intro_text():
    assert render("First *para* with $x$.\n\n<!--more-->\n\nLater.").document.summary == "First para with $x$."
    assert render("Text", summary="Given.").document.summary == "Given."


def test_lab_blocks_go_through_the_block_renderer():
    seen = []

    def renderer(block):
        seen.append(block)
        return RenderedBlock(html='<figure class="lab">OUT &amp; $x$</figure>', markdown="    lab output")

    body = "Before $a$.\n\n```lab\nlabcode.m:f\nn: 1\n```\n\nAfter."
    rendered = render(body, renderer)
    assert [(b.kind, b.line, b.text) for b in seen] == [("lab", 12, "labcode.m:f\nn: 1")]
    html = soup(rendered.html)
    assert html.find("figure", class_="lab").get_text() == "OUT & $x$"
    assert rendered.markdown == "Before $a$.\n\n    lab output\n\nAfter.\n"


def test_default_block_renderer_shows_the_block_as_code():
    html = soup(render("```labsource\nlabcode.attention:SelfAttention\n```").html)
    assert html.find("pre").get_text().strip() == "labcode.attention:SelfAttention"


def test_root_relative_links_get_the_base_path():
    html = soup(render("[x](/posts/a.html) ![i](/images/a.png) [y](https://o.org/) [z](#top)", base_path="/blog/").html)
    assert [a["href"] for a in html.find_all("a")] == ["/blog/posts/a.html", "https://o.org/", "#top"]
    assert html.find("img")["src"] == "/blog/images/a.png"


def test_sized_delimiters_show_their_character_not_their_command():
    # latex2mathml wrote `\Big\{` as the text "\{": the decoding post's top-p set read \{ n : ... \}
    html = soup(render("$$m = \\min\\Big\\{\\, n : \\sum_{i=1}^{n} p_{(i)} \\ge p \\,\\Big\\}$$\n\n"
                       "$$\\big\\langle q, k \\big\\rangle = \\Big\\| x \\Big\\|$$\n").html)
    operators = [mo.get_text() for mo in html.find_all("mo")]
    assert "{" in operators and "}" in operators and "\u27e8" in operators and "\u2016" in operators
    assert "\\" not in "".join(operators)


def test_an_unknown_sized_delimiter_is_an_error_not_a_backslash_on_the_page():
    with pytest.raises(BuildError, match="unknown command"):
        render("$$\\Big\\foo x \\Big\\}$$")


def test_inline_maths_keeps_the_punctuation_after_it_on_its_line():
    # layer norm post at 390 px: "with γ = 1 and β = 0" then a line starting with ", follows"
    html = soup(render("With $\\beta = 0$, it follows; and $x$. But $y$ is alone.\n\n$$z$$\n").html)
    kept = html.select(".math-nowrap")
    assert [span.get_text() for span in kept] == ["\u03b2=0,", "x."]    # MathML text, then the mark
    assert [span.math["alttext"] for span in kept] == ["\\beta = 0", "x"]
    assert html.find("math", alttext="y").parent.name == "p"           # nothing follows it: no span

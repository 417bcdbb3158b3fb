"""Prose cites lab values (SPEC 3): `{{ train.val_loss:.2f }}` shows a named lab's returned value.

The lab engine is not needed here: `labnotes.pipeline.lab_stage` is replaced by one that hands
the render stage chosen values, as the engine will once its labs have run.
"""
from __future__ import annotations

from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup

from conftest import post_text
from labnotes.citations import (Citation, changed_citations, check_cited_names, cite, cite_document,
                                find_citations, format_value, lab_names, parse_citation)
from labnotes.errors import BuildError
from labnotes.markdown import render_code_block, render_document
from labnotes.model import Document, FencedBlock, LabCounts, LabStage, LabValue

TRAIN = {
    "val_loss": 3.7512,
    "tokens": 20758,
    "history": [{"step": 30, "loss": 4.8123}, {"step": 60, "loss": 4.2}, {"step": 300, "loss": 3.2351}],
    "max |grad diff|": 7.15e-07,
    "tokenizer": "bpe-512",
    "converged": True,
    "samples": ["the model is", "the data"],
    "notes": None,
    "log": "line one\nline two",
}
TRAIN_LAB = "```lab\nlabcode.training:train_on_blog\nname: train\n```\n"


def lab_value(name="train", data=None, device="CPU", torch_version="2.13.0", ref="labcode.training:train_on_blog"):
    return LabValue(name, ref, TRAIN if data is None else data, device, torch_version,
                    Path("content/posts/train.md"), 12)


def doc(body: str, body_line: int = 5, source="content/posts/p.md", blocks=()) -> Document:
    return Document("post", Path(source), "T", "p", body, body_line, blocks=tuple(blocks))


def cited(body: str, values=None, **options) -> list[str]:
    """The text each citation of `body` shows, in order."""
    values = {"train": lab_value()} if values is None else values
    return [v.text for v in cite_document(doc(body), values, **options).values()]


def build_error(call) -> BuildError:
    with pytest.raises(BuildError) as caught:
        call()
    return caught.value


@pytest.fixture
def labs(monkeypatch):
    """Make the lab stage of every build hand over these values (and counts)."""
    import labnotes.pipeline

    def use(values=(), failed=0):
        stage = LabStage(render_code_block, counts=LabCounts(failed=failed), values={v.name: v for v in values})
        monkeypatch.setattr(labnotes.pipeline, "lab_stage", lambda content, config, options, warm_labs=None, protected=(), remember=None: stage)
    return use


# --- syntax ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source, name, keys, spec", [
    ("{{ train.val_loss:.2f }}", "train", ("val_loss",), ".2f"),
    ("{{train.tokens:,}}", "train", ("tokens",), ","),
    ("{{ train.history[-1].loss:.3f }}", "train", ("history", -1, "loss"), ".3f"),
    ('{{ train["max |grad diff|"]:.1e }}', "train", ("max |grad diff|",), ".1e"),
    ("{{ train['tokenizer'] }}", "train", ("tokenizer",), None),
    ("{{ train.history[0][\"step\"] }}", "train", ("history", 0, "step"), None),
    ("{{   train.tokens   :   ,.0f   }}", "train", ("tokens",), ",.0f"),
    ("{{ train.tokens :, }}", "train", ("tokens",), ","),
    ("{{ lr }}", "lr", (), None),
])
def test_citation_is_a_name_a_path_and_an_optional_format(source, name, keys, spec):
    citation = parse_citation(source, Path("p.md"), 3)
    assert (citation.name, citation.keys, citation.spec) == (name, keys, spec)


def test_citations_are_found_in_prose_with_their_lines():
    body = "Intro.\n\nLoss {{ train.val_loss:.2f }} after {{train.tokens:,}} tokens.\n\n- last: {{ train.history[-1].loss }}\n"
    found = find_citations(doc(body, body_line=5))
    assert [(c.expression, c.line) for c in found] == [
        ("train.val_loss", 7), ("train.tokens", 7), ("train.history[-1].loss", 9)]


def test_code_maths_and_lab_blocks_are_never_citations():
    body = "\n".join([
        "Cited {{ train.tokens }}.",
        "Spans: `{{ a.b }}`, ``{{ c.d }} with ` inside``, and maths $x^{{2}}$ or $$\\frac{{1}}{2}$$.",
        "",
        "```python",
        "print('{{ e.f }}')",
        "```",
        "",
        "````markdown",
        "```",
        "{{ g.h }}",
        "```",
        "````",
        "",
        "~~~",
        "{{ i.j }}",
        "~~~",
        "",
        "    {{ k.l }}  (indented code)",
        "",
        TRAIN_LAB.replace("name: train", "text: \"{{ m.n }}\""),
        "Last {{ train.val_loss }}.",
    ])
    assert [c.expression for c in find_citations(doc(body))] == ["train.tokens", "train.val_loss"]
    html = BeautifulSoup(render_document(doc(body), render_code_block, "/",
                                         lambda c: cite(c, {"train": lab_value()})).html, "html5lib")
    assert [s.get_text() for s in html.select(".lab-cite")] == ["20758", "3.751"]
    code = " ".join(c.get_text() for c in html.find_all("code"))
    for literal in ("{{ a.b }}", "{{ c.d }}", "{{ e.f }}", "{{ g.h }}", "{{ k.l }}", "{{ m.n }}"):
        assert literal in code
    assert [m["alttext"] for m in html.find_all("math")] == ["x^{{2}}", "\\frac{{1}}{2}"]


def test_indented_code_is_found_where_markdown2_finds_it():
    body = ("- item\n\n    continued {{ train.tokens }}\n\n        in the list {{ a.b }}\n\n"
            "Paragraph\n    lazy line {{ train.val_loss }}\n\n    code {{ c.d }}\n\n"
            "## Heading\n    code {{ e.f }}\n")
    assert [c.expression for c in find_citations(doc(body))] == ["train.tokens", "train.val_loss"]
    html = BeautifulSoup(render_document(doc(body), render_code_block, "/",
                                         lambda c: cite(c, {"train": lab_value()})).html, "html5lib")
    assert [s.get_text() for s in html.select(".lab-cite")] == ["20758", "3.751"]
    assert html.select_one("li .lab-cite").get_text() == "20758"
    assert [c.get_text().strip() for c in html.select("pre code")] == [
        "in the list {{ a.b }}", "code {{ c.d }}", "code {{ e.f }}"]


def test_escaped_braces_are_literal_braces_in_html_and_stay_escaped_in_the_mirror():
    rendered = render_document(doc("Jinja writes \\{{ page.title }} here."), render_code_block)
    html = BeautifulSoup(rendered.html, "html5lib")
    assert html.get_text().strip() == "Jinja writes {{ page.title }} here."
    assert html.select(".lab-cite") == []
    assert "\\{{ page.title }}" in rendered.markdown


@pytest.mark.parametrize("source, problem", [
    ("{{ train.}}", 'expected a key after "."'),
    ("{{ }}", "it is empty"),
    ("{{ 3x }}", "expected a lab name"),
    ("{{ train[abc] }}", "expected an index such as [0]"),
    ('{{ train["open] }}', "expected an index such as [0]"),
    ("{{ train.val_loss", "not closed with }}"),
    ("{{ train.val_loss: }}", 'nothing follows ":"'),
    ("{{ train.val loss }}", "unexpected 'loss'"),
])
def test_malformed_citation_is_an_error_with_file_and_line(source, problem):
    error = build_error(lambda: find_citations(doc(f"Intro.\n\nSee {source} here.\n", body_line=4)))
    assert (error.path, error.line) == (Path("content/posts/p.md"), 6)
    assert error.one_line().startswith("content/posts/p.md:6: error: cannot read citation")
    assert problem in error.message and "\\{{ for literal braces" in error.message


# --- resolving and formatting ------------------------------------------------------------------

def test_paths_walk_keys_indices_and_string_keys():
    assert cited("{{ train.history[-1].loss }} {{ train.history[0].step }} {{ train.history[-3].step }} "
                 '{{ train["max |grad diff|"] }} {{ train.samples[1] }}') == [
        "3.235", "30", "30", "7.15e-07", "the data"]


def test_a_name_alone_cites_the_whole_value():
    assert cited("{{ lr }}", {"lr": lab_value("lr", 0.0006)}) == ["0.0006"]


def test_default_format_ints_as_digits_floats_to_4_digits_bools_as_true_false_text_as_is():
    assert cited("{{ train.tokens }} {{ train.val_loss }} {{ train.converged }} {{ train.tokenizer }}") == [
        "20758", "3.751", "true", "bpe-512"]
    assert [format_value(v) for v in (0.000123456, 123456.0, 2.0, False, -3)] == [
        "0.0001235", "1.235e+05", "2", "false", "-3"]


def test_format_spec_is_python_format():
    assert cited("{{ train.val_loss:.2f }} {{ train.tokens:, }} {{ train.tokens:,.0f }} "
                 "{{ train.val_loss:.1% }} {{ train.tokenizer:.3 }} {{ train.converged:d }}") == [
        "3.75", "20,758", "20,758", "375.1%", "bpe", "1"]


def test_a_long_text_is_citable_when_its_format_shortens_it():
    long = {"train": lab_value(data={"text": "x" * 200})}
    assert cited("{{ train.text:.10 }}", long) == ["x" * 10]
    error = build_error(lambda: cited("{{ train.text }}", long))
    assert "text of 200 characters" in error.message and "at most 80 characters" in error.message


@pytest.mark.parametrize("source, words", [
    ("{{ train.val_los }}", ["has no key 'val_los'", "its keys: val_loss, tokens, history", "nearest: val_loss"]),
    ("{{ train.history[3].loss }}", ["train.history has no index [3]", "a list of 3 items", "[0] to [2], or [-3] to [-1]"]),
    ("{{ train.history[-4] }}", ["no index [-4]"]),
    ("{{ train.history.loss }}", ["train.history is a list of 3 items, not a dict", "[-1]"]),
    ("{{ train[0] }}", ["train is a dict, not a list", "val_loss, tokens"]),
    ("{{ train.val_loss.mean }}", ["train.val_loss is a float (3.7512), which has no keys"]),
    ("{{ train.history[-1].los }}", ["train.history[-1] has no key 'los'", "its keys: step, loss", "nearest: loss"]),
])
def test_unknown_key_or_index_names_what_is_there(source, words):
    error = build_error(lambda: cited(f"Intro.\n{source}"))
    assert (error.path, error.line) == (Path("content/posts/p.md"), 6)
    assert error.message.startswith(source + ": ")
    for word in words:
        assert word in error.message


@pytest.mark.parametrize("source, words", [
    ("{{ train.history }}", ["is a list of 3 items, not a number or short text", "{{ train.history[-1] }}"]),
    ("{{ train }}", ["is a dict (keys: val_loss", "{{ train.val_loss }}"]),
    ("{{ train.samples:.2f }}", ["is a list of 2 items"]),
    ("{{ train.notes }}", ["is null (None)"]),
    ("{{ train.log }}", ["on several lines"]),
])
def test_value_that_is_not_a_number_or_short_text_is_an_error(source, words):
    error = build_error(lambda: cited(source))
    for word in words:
        assert word in error.message


@pytest.mark.parametrize("source, words", [
    ("{{ train.val_loss:.2q }}", ["format spec '.2q' does not apply to a float (3.7512)", "Unknown format code 'q'"]),
    ("{{ train.val_loss:d }}", ["format spec 'd' does not apply to a float"]),
    ("{{ train.tokenizer:, }}", ["format spec ',' does not apply to text ('bpe-512')"]),
])
def test_bad_format_spec_is_an_error(source, words):
    error = build_error(lambda: cited(source))
    assert error.line == 5
    for word in words:
        assert word in error.message


def test_citing_a_lab_with_no_value_is_an_error_unless_labs_failed_and_the_build_goes_on():
    error = build_error(lambda: cited("{{ train.val_loss }}", {"other": lab_value("other")}))
    assert "lab train gave no value to cite (labs with a value: other)" in error.message
    assert cited("{{ train.val_loss }}", {}, failed_labs=True) == ["[lab train failed]"]


def test_changed_citations_lists_what_readers_would_see_change():
    docs = [doc("Loss {{ train.val_loss:.2f }}, {{ train.tokens }} tokens.\nSame: {{ train.history[0].step }}.")]
    before = {"train": lab_value()}
    after = {"train": lab_value(data={**TRAIN, "val_loss": 3.7536, "tokens": 21000})}
    changes = changed_citations(docs, before, after)
    assert [(c.expression, c.line, old.text, new.text) for c, old, new in changes] == [
        ("train.tokens", 5, "20758", "21000")]    # 3.7536 still reads 3.75
    on_gpu = {"train": lab_value(device="NVIDIA H100 80GB HBM3")}
    assert [c.expression for c, _, _ in changed_citations(docs, before, on_gpu)] == [
        "train.val_loss", "train.tokens", "train.history[0].step"]


# --- names, before any lab runs ------------------------------------------------------------------

def lab_block(path: str, line: int, name: str, ref="labcode.training:train_on_blog") -> FencedBlock:
    return FencedBlock("lab", Path(path), line, f"{ref}\nname: {name}")


def test_lab_names_come_from_the_blocks_of_the_whole_site():
    docs = [doc("x", blocks=[lab_block("content/posts/a.md", 9, "train")]),
            doc("y", source="content/pages/about.md", blocks=[lab_block("content/pages/about.md", 3, "bpe")])]
    assert {name: (call.path.name, call.line) for name, call in lab_names(docs).items()} == {
        "train": ("a.md", 9), "bpe": ("about.md", 3)}


def test_duplicate_lab_name_names_both_places():
    docs = [doc("x", blocks=[lab_block("content/posts/a.md", 9, "train")]),
            doc("y", blocks=[lab_block("content/posts/b.md", 30, "train", "labcode.labs.tokens:train_bpe_demo")])]
    error = build_error(lambda: lab_names(docs))
    assert error.one_line() == ("content/posts/b.md:30: error: lab name `train` is already used by the lab at "
                                "content/posts/a.md:9; names are unique in the site")


def test_two_blocks_showing_the_same_lab_may_share_its_name():
    docs = [doc("x", blocks=[lab_block("content/posts/a.md", 9, "train")]),
            doc("y", blocks=[lab_block("content/posts/b.md", 30, "train")])]
    assert lab_names(docs)["train"].path.name == "a.md"


def test_unknown_name_is_found_from_the_documents_alone_with_the_nearest_names():
    docs = [doc("Intro.\n\nLoss {{ trian.val_loss }}.", blocks=[lab_block("content/posts/p.md", 20, "train"),
                                                                lab_block("content/posts/p.md", 30, "bpe")])]
    error = build_error(lambda: check_cited_names(docs))
    assert error.one_line() == ("content/posts/p.md:7: error: {{ trian.val_loss }}: no lab of this site is "
                                "named trian; nearest: train")


def test_unknown_name_with_no_named_lab_says_how_to_name_one():
    error = build_error(lambda: check_cited_names([doc("{{ train.loss }}")]))
    assert "no lab block has a name; add `name: train` to the lab whose value this cites" in error.message


def test_unknown_name_fails_the_build_before_any_lab_runs(site, monkeypatch):
    import labnotes.pipeline

    def no_labs(*args):
        raise AssertionError("a lab ran")
    monkeypatch.setattr(labnotes.pipeline, "lab_stage", no_labs)
    monkeypatch.chdir(site.root)
    site.post("train.md", post_text(title="Train", body="Run:\n\n" + TRAIN_LAB))
    site.page("about.md", "---\ntitle: About\n---\nThe loss is {{ trian.val_loss:.2f }}.\n")
    error = build_error(site.build)
    assert error.one_line() == ("content/pages/about.md:4: error: {{ trian.val_loss:.2f }}: no lab of this "
                                "site is named trian; nearest: train")


def test_site_without_citations_parses_no_lab_block(site, labs, monkeypatch):
    import labnotes.labs.directive

    def no_parsing(block):
        raise AssertionError("parsed a lab block")
    monkeypatch.setattr(labnotes.labs.directive, "parse_block", no_parsing)
    labs()
    site.post("train.md", post_text(title="Train", body="Run:\n\n" + TRAIN_LAB))
    site.build()


# --- what readers see ---------------------------------------------------------------------

def citing_site(site, about="The validation loss ends at {{ train.val_loss:.2f }}.\n"):
    site.post("train.md", post_text(
        title="Training", date="2026-03-01", body=(
            "After {{ train.tokens:, }} tokens the loss is {{ train.history[-1].loss:.3f }}.\n\n"
            + TRAIN_LAB + "\nMore.\n")))
    site.post("other.md", post_text(title="Other", date="2026-03-02", body="Nothing cited here.\n"))
    site.page("about.md", f"---\ntitle: About\n---\n{about}")


def test_html_shows_each_value_in_a_lab_cite_span_titled_with_its_provenance(site, labs):
    labs([lab_value()])
    citing_site(site)
    site.build()
    spans = site.html("posts/train.html").select(".post-body span.lab-cite")
    assert [s.get_text() for s in spans] == ["20,758", "3.235"]
    assert {s["title"] for s in spans} == {"train: labcode.training:train_on_blog on CPU, torch 2.13.0"}
    about = site.html("about/index.html").select_one("span.lab-cite")
    assert about.get_text() == "3.75" and about["title"].startswith("train: labcode.training:train_on_blog")
    assert "{{" not in site.html("posts/train.html").select_one(".post-body p").get_text()


def test_cited_text_and_title_are_escaped(site, labs):
    labs([lab_value(data={"label": 'a <b> & "c"'}, device='GPU "<x>" & co')])
    site.page("about.md", "---\ntitle: About\n---\nLabel: {{ train.label }}.\n")
    site.post("train.md", post_text(body=TRAIN_LAB))
    site.build()
    span = site.html("about/index.html").select_one("span.lab-cite")
    assert span.get_text() == 'a <b> & "c"' and span.find("b") is None
    assert span["title"] == 'train: labcode.training:train_on_blog on GPU "<x>" & co, torch 2.13.0'


def test_feed_carries_the_span_in_content_and_plain_text_in_the_summary(site, labs):
    labs([lab_value()])
    citing_site(site)
    site.build()
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    entry = next(e for e in feed.entries if e.title == "Training")
    content = BeautifulSoup(entry.content[0].value, "html5lib")
    assert [s.get_text() for s in content.select("span.lab-cite")] == ["20,758", "3.235"]
    assert entry.summary.startswith("After 20,758 tokens the loss is 3.235.")


def test_mirror_and_llms_full_carry_plain_text(site, labs):
    labs([lab_value()])
    citing_site(site)
    site.build()
    mirror = (site.out / "posts/train.html.md").read_text(encoding="utf-8")
    assert "After 20,758 tokens the loss is 3.235." in mirror
    about = (site.out / "about/index.html.md").read_text(encoding="utf-8")
    assert "The validation loss ends at 3.75." in about
    full = (site.out / "llms-full.txt").read_text(encoding="utf-8")
    assert "After 20,758 tokens the loss is 3.235." in full and "ends at 3.75." in full
    for text in (mirror, about, full):
        assert "lab-cite" not in text and "{{ train" not in text


def test_value_in_a_link_url_is_plain_text(site, labs):
    labs([lab_value()])
    # (an external URL: the build checks that an internal one leads to a page of the site)
    site.post("train.md", post_text(body=TRAIN_LAB + "\nSee [step {{ train.history[-1].step }}]"
                                    "(https://runs.example.com/steps/{{ train.history[-1].step }}.html).\n"))
    site.build()
    link = site.html("posts/train.html").select_one(".post-body p a")
    assert link["href"] == "https://runs.example.com/steps/300.html"
    assert link.select_one("span.lab-cite").get_text() == "300"


def test_citation_of_a_failed_lab_shows_a_marker_and_the_build_goes_on(site, labs):
    labs([], failed=1)
    citing_site(site)
    report = site.build()
    assert report.labs.failed == 1
    assert site.html("about/index.html").select_one("span.lab-cite").get_text() == "[lab train failed]"


def test_bad_citation_fails_the_build_naming_file_and_line(site, labs, monkeypatch):
    labs([lab_value()])
    monkeypatch.chdir(site.root)
    citing_site(site, about="Intro.\n\nThe loss is {{ train.val_los:.2f }}.\n")
    error = build_error(site.build)
    assert error.one_line().startswith("content/pages/about.md:6: error: {{ train.val_los:.2f }}: train has "
                                       "no key 'val_los'")


def test_renderer_asks_cite_for_each_citation_and_the_mirror_escapes_markup_in_the_text():
    asked: list[Citation] = []

    def fake(citation):
        asked.append(citation)
        from labnotes.citations import CitedValue
        return CitedValue(f"<{citation.expression}>", "t")
    rendered = render_document(doc("A {{ x.a }} and {{ y[0]:.1f }}."), render_code_block, "/", fake)
    assert [c.expression for c in asked] == ["x.a", "y[0]"]
    assert "A \\<x.a\\> and \\<y\\[0\\]\\>." in rendered.markdown

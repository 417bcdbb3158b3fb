"""The copied-number lint: prose that repeats a lab's number instead of citing it is a warning."""
from __future__ import annotations

from pathlib import Path

import pytest

import build as cli
from conftest import post_text
from labnotes.copied_numbers import copied_number_warnings, find_copied_numbers
from labnotes.markdown import render_code_block
from labnotes.model import Document, LabCounts, LabStage, PublishedLab

TRAIN_OUTPUT = """\
corpus: 52,681 characters -> 20,758 training tokens with a 512-token BPE
model: 0.93M parameters, 4 layers, width 128, context 64
after 300 steps: train loss 3.23, val loss 3.75 (perplexity 42.5)
"""
TRAIN = PublishedLab("labcode.training:train_on_blog", "train", TRAIN_OUTPUT, "",
                     {"val_loss": 3.7512, "perplexity": 42.54, "tokens": 20758, "train_loss": 3.2291,
                      "history": [{"step": 30, "val_loss": 4.8123}, {"step": 300, "val_loss": 3.7512}]},
                     Path("content/posts/train.md"), 40)
UNTRAINED = PublishedLab("labcode.labs.gpt_model:untrained_loss_demo", None,
                         "loss of the untrained model: 10.863\nln(vocab_size) = ln(50257): 10.825\n",
                         "10.863371849060059", None, Path("content/posts/model.md"), 131)


def post(body: str, body_line: int = 5) -> Document:
    return Document("post", Path("content/posts/p.md"), "T", "p", body, body_line)


def found(body: str, labs=(TRAIN, UNTRAINED)) -> list[tuple[int, str, str]]:
    return [(f.line, f.number, f.citation) for f in find_copied_numbers([post(body)], list(labs))]


def test_copied_results_are_found_with_their_line_lab_and_the_citation_to_write():
    body = ("The first line reports 20,758 training tokens.\n\n"
            "It ends at val loss 3.75 (perplexity 42.5); the untrained model\n"
            "scores 10.863 against the predicted 10.825.\n")
    assert found(body) == [
        (5, "20,758", "{{ train.tokens:, }}"),
        (7, "3.75", "{{ train.val_loss:.2f }}"),
        (7, "42.5", "{{ train.perplexity:.1f }}"),
        (8, "10.863", "{{ NAME.<key> }}"),
        (8, "10.825", "{{ NAME.<key> }}"),
    ]


def test_warning_names_the_lab_and_how_to_cite_it():
    warnings = copied_number_warnings([post("Loss 3.75 and 10.863.")], [TRAIN, UNTRAINED])
    assert [w.one_line() for w in warnings] == [
        "content/posts/p.md:5: warning: 3.75 repeats a result of lab train (labcode.training:train_on_blog); "
        "cite it as {{ train.val_loss:.2f }}",
        "content/posts/p.md:5: warning: 10.863 repeats a result of lab labcode.labs.gpt_model:untrained_loss_demo "
        "(content/posts/model.md:131); give that lab a `name:` and cite it as {{ NAME.<key> }}",
    ]


def test_prose_that_rounds_a_lab_number_repeats_it():
    assert found("Train loss 3.229, about 0.93 million parameters.") == [
        (5, "3.229", "{{ train.train_loss:.3f }}"), (5, "0.93", "{{ train.<key> }}")]


def test_a_number_shown_only_in_printed_output_asks_for_a_key():
    assert found("It ran on 52,681 characters.") == [(5, "52,681", "{{ train.<key> }}")]


def test_a_list_item_is_cited_by_its_index_the_last_one_as_minus_one():
    assert found("At step 30 the loss was 4.812; it ends at 3.7512.") == [
        (5, "4.812", "{{ train.history[0].val_loss:.3f }}"), (5, "3.7512", "{{ train.val_loss:.4f }}")]


def test_percent_in_prose_repeats_a_fraction():
    lab = PublishedLab("labcode.x:y", "eval", "", "", {"accuracy": 0.8125}, Path("x.md"), 1)
    assert found("It gets 81.2% right.", [lab]) == [(5, "81.2%", "{{ eval.accuracy:.1% }}")]


def test_with_fewer_than_three_digits_only_an_equal_number_repeats():
    lab = PublishedLab("labcode.x:y", "w", "weights 0.2483 0.25 0.1", "", None, Path("x.md"), 1)
    assert found("Between 0.1 and 0.25 (not 0.24).", [lab]) == [(5, "0.1", "{{ w.<key> }}"), (5, "0.25", "{{ w.<key> }}")]


def test_names_dates_versions_settings_and_small_integers_are_not_results():
    lab = PublishedLab("labcode.x:y", "all", "2 124 50 2026 9 7 9 30 2 13 0 1.0 300 512 128 12 5 1 17 3 4", "",
                       None, Path("x.md"), 1)
    body = ("GPT-2 124M uses r50k_base; on 2026-09-07 at 09:30 with torch 2.13.0 in 2026, a 12-layer model "
            "with 4 heads, 1.0 clipping, 300 steps, a 512-token vocabulary of width 128, $5 a month,[^1] "
            "fp32 and H100.\n\n[^1]: Three 17-token windows.\n")
    assert found(body, [lab]) == []


def test_section_and_chapter_numbers_of_a_book_are_not_results():
    lab = PublishedLab("labcode.x:y", "all", "4.5 2.2 2.6 3.4 6.1 7.25 7.2", "", None, Path("x.md"), 1)
    body = ("This time I'm covering section 4.5, then sections 2.2 to 2.6, Section 3.4 and chapter 6.1; "
            "the loss was 7.25.\n\n## 7.2 Data I can make\n\nAnd 7.2 here is a result.\n")
    assert [number for _, number, _ in found(body, [lab])] == ["7.25", "7.2"]


def test_code_maths_citations_links_and_tags_are_not_prose():
    body = "\n".join([
        "`3.75` and ``20,758`` in spans, $3.75 + 42.5$ in maths, {{ train.val_loss:.2f }} cited,",
        "[the log](https://example.org/runs/3.75/20758.html) and <span title=\"42.5\">x</span> <!-- 3.75 -->",
        "",
        "```text",
        "val loss 3.75",
        "```",
        "",
        "~~~",
        "42.5",
        "~~~",
        "",
        "    tokens 20,758",
        "",
        "```lab",
        "labcode.training:train_on_blog",
        "steps: 3.75",
        "```",
        "",
        "$$",
        "\\mathrm{PPL} = 42.5",
        "$$",
        "",
        "[ref]: https://example.org/42.5",
    ])
    assert found(body) == []


def test_link_text_headings_tables_and_footnotes_are_prose():
    body = ("## Loss 3.75\n\n| run | tokens |\n|---|---|\n| tiny | 20,758 |\n\n"
            "See [the 42.5 run](https://example.org/x).[^1]\n\n[^1]: Perplexity 42.5 again.\n")
    assert [(line, number) for line, number, _ in found(body)] == [
        (5, "3.75"), (9, "20,758"), (11, "42.5"), (13, "42.5")]


def test_no_labs_no_findings():
    assert found("Loss 3.75.", []) == []


@pytest.fixture
def labs_publish(monkeypatch):
    import labnotes.pipeline

    def use(*published):
        stage = LabStage(render_code_block, counts=LabCounts(run=len(published)), published=published)
        monkeypatch.setattr(labnotes.pipeline, "lab_stage", lambda content, config, options, warm_labs=None, protected=(), remember=None: stage)
    return use


def test_build_reports_copied_numbers_as_warnings_and_still_succeeds(site, labs_publish, monkeypatch):
    labs_publish(TRAIN)
    monkeypatch.chdir(site.root)
    site.post("a.md", post_text(body="Intro.\n\nIt ends at 3.75."))
    report = site.build()
    assert [w.one_line() for w in report.warnings] == [
        "content/posts/a.md:8: warning: 3.75 repeats a result of lab train (labcode.training:train_on_blog); "
        "cite it as {{ train.val_loss:.2f }}"]
    assert (site.out / "posts/a.html").exists()


def test_build_py_prints_warnings_on_stderr_and_ends_stdout_with_the_summary(site, labs_publish, monkeypatch, capsys):
    labs_publish(TRAIN)
    monkeypatch.chdir(site.root)
    site.post("a.md", post_text(body="It ends at 3.75 after 20,758 tokens."))
    code = cli.main(["build", "--config", "site.toml", "--content", "content", "--out", "output"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.splitlines() == [
        "content/posts/a.md:6: warning: 3.75 repeats a result of lab train (labcode.training:train_on_blog); "
        "cite it as {{ train.val_loss:.2f }}",
        "content/posts/a.md:6: warning: 20,758 repeats a result of lab train (labcode.training:train_on_blog); "
        "cite it as {{ train.tokens:, }}"]
    assert out.strip().splitlines()[-1].startswith("built ")


def test_a_number_copied_from_another_cpus_run_is_found_within_the_labs_declared_precision():
    from dataclasses import replace

    from labnotes.labs.precision import parse_tolerance
    made_here = PublishedLab("labcode.heads:agree", "agree", "max |difference|: 3.5e-08\n", "",
                             {"forward_max": 3.5e-08, "steps": 250}, Path("content/posts/heads.md"), 9)
    typed = "The difference was 5.4e-07 on the machine I wrote this on."     # another CPU's value
    assert found(typed, [made_here]) == []                          # no precision declared: unrelated
    declared = replace(made_here, tolerance=parse_tolerance("1e-6"))
    assert found(typed, [declared]) == [(5, "5.4e-07", "{{ agree.forward_max }}")]
    assert found("It took 257 steps.", [declared]) == []           # integers: only equal ones repeat

"""How lab results read on the page and in the Markdown mirror (no torch needed)."""
from pathlib import Path

from bs4 import BeautifulSoup

from labnotes.labs.directive import LabCall
from labnotes.labs.render import LabRenderer, LabResult, fence, lab_markdown

REPO = Path(__file__).resolve().parents[2]
CALL = LabCall(ref="labcode.tokenizer:gpt2_bpe_demo", args=(("text", '"Lab notes"'),),
               show=("output", "value", "figures"), path=Path("content/posts/t.md"), line=9)
TABLE = {"kind": "table", "columns": ["id", "piece", "share"],
         "rows": [[17822, "Lab", 0.123456], [4710, " notes", None]]}


def result(**changes) -> LabResult:
    fields = dict(call=CALL, status="ran", output="2 tokens\n", value=TABLE,
                  figures=[{"file": "abc.svg", "alt": "Token <ids> & pieces"}], wall_s=0.25,
                  device_name="CPU", torch_version="2.13.0+cpu")
    fields.update(changes)
    return LabResult(**fields)


def test_table_value_keeps_ids_whole_rounds_floats_and_keeps_leading_spaces():
    html = LabRenderer(REPO / "templates").lab_html(result())
    page = BeautifulSoup(html, "html.parser")
    rows = [[td.get_text() for td in tr.select("td")] for tr in page.select("tbody tr")]
    assert rows == [["17822", "Lab", "0.1235"], ["4710", " notes", ""]]
    assert page.select_one(".lab img")["alt"] == "Token <ids> & pieces"
    assert "Ran on CPU with torch 2.13.0+cpu in 250 ms." in page.select_one(".lab-provenance").text


def test_markdown_mirror_has_output_table_figure_link_and_rerun_command():
    text = lab_markdown(result())
    assert "| 17822 | Lab | 0.1235 |" in text
    assert "![Token <ids> & pieces](/labs/abc.svg)" in text
    assert "`python build.py lab labcode.tokenizer:gpt2_bpe_demo --arg 'text=\"Lab notes\"'`" \
        in text


def test_failed_lab_renders_an_error_box_with_its_traceback():
    html = LabRenderer(REPO / "templates").lab_html(
        result(status="failed", error="ValueError: bad", traceback="Traceback ...", value=None))
    box = BeautifulSoup(html, "html.parser").select_one(".lab.lab-error")
    assert "This lab failed: ValueError: bad" in box.get_text()
    assert box.select_one(".lab-traceback").get_text() == "Traceback ..."


def test_fence_is_longer_than_any_backtick_run_in_the_output():
    assert fence("a ``` b", "text") == "````text\na ``` b\n````"


def test_a_site_overriding_only_lab_html_still_renders_sources(tmp_path):
    (tmp_path / "lab.html").write_text('<div class="lab my-lab">{{ lab.ref }}</div>')
    renderer = LabRenderer(tmp_path)
    assert 'class="lab my-lab"' in renderer.lab_html(result())
    assert "lab-source-only" in renderer.source_html("labcode.x:f", "def f(): pass", "x.py", 1)


def test_table_columns_read_consistently_counts_separated_ids_whole_floats_aligned():
    from labnotes.labs.render import format_rows
    columns = ["token_id", "count", "loss", "tiny"]
    rows = [[50256, 20758, 3.7512, 1e-7], [11, 5, 10.5, 2e-6]]
    assert format_rows(columns, rows) == [["50256", "20,758", "3.751", "1.000e-07"],
                                          ["11", "5", "10.500", "2.000e-06"]]
    assert format_rows(["name", "value"], [["tokens", 20758], ["loss", 3.75123]]) == \
        [["tokens", "20,758"], ["loss", "3.751"]]


PRINTED = """mean |gradient| of each layer's weights
layer   without shortcuts   with shortcuts
    0            2.02e-04         2.22e-01
    1            1.20e-04         2.07e-01
greedy:  The next token is a long sample of text that should wrap on a phone like prose does
         and its continuation, indented under the label
done: True
"""


def test_a_printed_table_is_its_own_band_and_the_rest_of_the_output_stays_text():
    from labnotes.labs.render import output_blocks
    blocks = output_blocks(PRINTED)
    assert [table for table, _ in blocks] == [False, True, False]
    assert blocks[1][1].splitlines() == PRINTED.splitlines()[1:4]   # header and rows, not the title
    assert "\n".join(text for _, text in blocks) == PRINTED         # nothing added, nothing lost


def test_label_aligned_lines_and_one_gap_lines_are_not_tables():
    from labnotes.labs.render import output_blocks
    text = "prompt:  The next token is\ngreedy:  The next token is here\n  first 57 steps: 2,052 vs 64\n"
    assert [table for table, _ in output_blocks(text)] == [False]


def test_lab_page_shows_a_printed_table_in_a_band_with_the_output_text_unchanged():
    html = LabRenderer(REPO / "templates").lab_html(result(output=PRINTED))
    output = BeautifulSoup(html, "html.parser").select_one("pre.lab-output")
    bands = output.select(".lab-output-table")
    assert len(bands) == 1 and bands[0].get_text().startswith("layer   without shortcuts")
    assert output.get_text() == PRINTED.rstrip("\n") or output.get_text() == PRINTED


def test_numeric_value_columns_are_marked_for_right_alignment_text_columns_are_not():
    html = LabRenderer(REPO / "templates").lab_html(result())   # id, piece, share (one empty cell)
    page = BeautifulSoup(html, "html.parser")
    assert [th.get("class") for th in page.select("thead th")] == [["num"], None, ["num"]]
    first_row = page.select("tbody tr")[0].select("td")
    assert [td.get("class") for td in first_row] == [["num"], None, ["num"]]


def test_a_figure_links_to_its_full_size_file_for_readers_on_small_screens():
    html = LabRenderer(REPO / "templates").lab_html(result())
    link = BeautifulSoup(html, "html.parser").select_one(".lab-figure a")
    assert link["href"] == "/labs/abc.svg" and link.img["src"] == "/labs/abc.svg"


def test_a_long_reference_breaks_at_its_dots_and_colon_not_inside_a_name():
    renderer = LabRenderer(REPO / "templates")
    page = BeautifulSoup(renderer.lab_html(result()), "html.parser")
    ref = page.select_one(".lab-ref code")
    assert ref.get_text() == "labcode.tokenizer:gpt2_bpe_demo"
    assert "labcode.<wbr/>tokenizer:<wbr/>gpt2_bpe_demo" in str(ref)
    assert "labcode.tokenizer:<wbr/>gpt2_bpe_demo" in str(page.select_one(".lab-provenance code"))
    source = BeautifulSoup(renderer.source_html("labcode.x:f", "def f(): pass", "x.py", 1), "html.parser")
    assert "labcode.<wbr/>x:<wbr/>f" in str(source.select_one(".lab-ref code"))

"""The reading layout, checked where a reader meets it: colour contrast of the stylesheets in
light and dark, and (where Chromium is installed) a built page measured in a real browser at
1280 and 390 px. bench/screenshots.py takes the pictures a person should look at."""
from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest

from conftest import post_text
from devtools_pipe import Browser, text_once_written
from labnotes.markdown import DARK_CODE_STYLE, LIGHT_CODE_STYLE, pygments_css

REPO = Path(__file__).resolve().parents[2]
STYLE = (REPO / "static/style.css").read_text(encoding="utf-8")
DARK = "@media (prefers-color-scheme: dark)"


def colours(scheme: str) -> dict[str, str]:
    """The custom properties of style.css's :root in `scheme` ("light" or "dark")."""
    def block_after(marker: str) -> str:
        start = STYLE.index("{", STYLE.index(marker)) + 1
        return STYLE[start:STYLE.index("}", start)]
    found = dict(re.findall(r"(--[\w-]+):\s*([^;]+);", block_after(":root")))
    if scheme == "dark":
        found.update(re.findall(r"(--[\w-]+):\s*([^;]+);", block_after(DARK)))
    return found


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rgb / #rrggbb colours."""
    def luminance(colour: str) -> float:
        hex_digits = colour.strip().lstrip("#")
        if len(hex_digits) == 3:
            hex_digits = "".join(c * 2 for c in hex_digits)
        channels = [int(hex_digits[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_links_and_labels_read_at_aa_contrast(scheme):
    c = colours(scheme)
    for text in ("--fg", "--muted", "--accent"):
        for background in ("--bg", "--panel", "--code-bg", "--lab-code-bg"):
            assert contrast(c[text], c[background]) >= 4.5, (scheme, text, background)
    assert contrast(c["--error-fg"], c["--error-bg"]) >= 4.5


@pytest.mark.parametrize("scheme, style", [("light", LIGHT_CODE_STYLE), ("dark", DARK_CODE_STYLE)])
def test_every_code_colour_reads_at_aa_contrast(scheme, style):
    from pygments.styles import get_style_by_name
    c = colours(scheme)
    for token, spec in get_style_by_name(style):
        if spec["color"] and "Whitespace" not in str(token) and "Error" not in str(token):
            for background in ("--code-bg", "--lab-code-bg"):
                assert contrast("#" + spec["color"], c[background]) >= 4.5, (scheme, token, spec["color"])


def test_dark_mode_redefines_every_colour():
    light, dark = colours("light"), colours("dark")
    for name in ("--bg", "--fg", "--muted", "--accent", "--rule", "--code-bg", "--panel", "--lab-code-bg"):
        assert dark[name] != light[name], name
    assert contrast(dark["--figure-bg"], "#000") > 12   # transparent plots keep a light backing


def test_pygments_css_is_current_and_colours_fenced_code_and_lab_source_in_both_schemes():
    css = (REPO / "static/pygments.css").read_text(encoding="utf-8")
    assert css == pygments_css()
    light, dark = css.split(DARK)
    for part in (light, dark):
        assert ".codehilite .k" in part and ".highlight .k" in part


# A lab as templates/lab.html lays it out (the lab engine fills it in): what it ran, its source,
# a long printed line, a figure with a transparent background, provenance.
LAB = """
<div class="lab" id="lab-7">
<p class="lab-ref">Lab <code>labcode.training:sample_from_checkpoint</code> <span class="lab-args">prompt="The model"</span></p>
<div class="lab-source"><div class="highlight"><pre><span></span>def sample(model, prompt: str, max_new_tokens: int = 60, temperature: float = 0.8, top_k: int = 20):  # 100 characters
    return generate(model, prompt)
</pre></div>
</div>
<pre class="lab-output"><code>[T=0.8, top_k=20] 'SAMPLE' 'SAMPLE'
</code></pre>
<p class="lab-figure"><img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='300' height='100'/%3E" alt="plot"></p>
<p class="lab-provenance">Ran on CPU with torch 2.13.0 in 369 ms. Rerun: <code>python build.py lab labcode.training:sample_from_checkpoint --arg 'prompt="The model"'</code></p>
</div>
""".replace("SAMPLE", "the model is the model " * 10)

# A lab as the renderer writes it: a printed table wider than a phone between lines of text,
# and a value table of numbers and text; then prose citing a value.
TABLE_OUTPUT = """gradient norms at each layer's input, 32 layers of width 32; a long line of text that wraps
layer  no shortcuts   shortcuts  branch/sqrt(L)   ratio, no shortcuts   ratio, shortcuts
    0      1.91e-17    6.89e+01        1.29e+00              1.00e+00           1.00e+00
   32      1.31e+00    1.31e+00        1.31e+00              6.86e+16           1.90e-02
done: every layer was measured, and the text after the table wraps again like prose does
"""


def _rendered_lab() -> str:
    from labnotes.labs.directive import LabCall
    from labnotes.labs.render import LabRenderer, LabResult
    call = LabCall(ref="labcode.labs.gpt_model:shortcut_demo", args=(), show=("output", "value"),
                   path=Path("content/posts/lab.md"), line=77)
    value = {"kind": "table", "columns": ["parameter", "shape", "numbers"],
             "rows": [["embed.tok_emb.weight", "256x64", 16384], ["final_norm.scale", "64", 64]]}
    result = LabResult(call=call, status="ran", output=TABLE_OUTPUT, value=value, wall_s=0.1,
                       device_name="CPU", torch_version="2.13.0+cpu")
    return LabRenderer(REPO / "templates").lab_html(result)


# A prose table a little wider than the text column on a phone, and a display formula.
PROSE_TABLE = """
| path | materialises the weights | can return the weights | where we use it |
|---|---|---|---|
| wrapper of heads | yes, once per head | yes | reading the idea off the code |
| explicit (batched heads) | yes | yes | heatmaps, teaching, tests |
| sdpa | not necessarily | no | training and generation |

$$ \\alpha_{ij} = \\frac{\\exp(x_i^\\top x_j)}{\\sum_k \\exp(x_i^\\top x_k)} $$
"""

CITE = ('<p>The gradient falls from <span class="lab-cite" title="demo">6.89e+01</span> to '
        '<span class="lab-cite" title="demo">-1.234e-04</span> across the stack.</p>')

MEASURE = """<!DOCTYPE html><html><body>
<iframe id="wide" src="posts/lab.html" style="width:1280px;height:1200px;border:0"></iframe>
<iframe id="narrow" src="posts/lab.html" style="width:390px;height:1200px;border:0"></iframe>
<iframe id="listing" src="index.html" style="width:390px;height:1200px;border:0"></iframe>
<pre id="out"></pre>
<script>
let current = null;
function measure(frame) {
  current = frame.id;
  const d = frame.contentDocument, w = d.defaultView;
  const box = s => { const r = d.querySelector(s).getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; };
  const css = (s, p) => w.getComputedStyle(d.querySelector(s))[p];
  const output = d.querySelector(".lab-output");
  return {viewport: d.documentElement.clientWidth, scrollWidth: d.documentElement.scrollWidth,
          text: box(".post-body > p"), frame: box(".site-header .wrap"), lab: box(".lab"),
          source: box(".lab .highlight pre"), sourceBorder: css(".lab .highlight pre", "borderTopWidth"),
          sourceScrolls: css(".lab .highlight pre", "overflowX"),
          outputFits: output.scrollWidth <= output.clientWidth,
          background: css("body", "backgroundColor"), colour: css("body", "color"),
          figureBackground: css(".lab img", "backgroundColor"),
          printed: printedTable(d, w), numberAlign: css("#lab-77 td.num", "textAlign"),
          textAlign: css("#lab-77 td:not(.num)", "textAlign"),
          cites: [...d.querySelectorAll(".lab-cite")].map(c => c.getClientRects().length),
          citeWrap: css(".lab-cite", "whiteSpace"),
          seriesShown: [...d.querySelectorAll(".series-parts li")].filter(li => li.getBoundingClientRect().height > 0)
                       .map(li => li.textContent.trim()),
          proseTable: scrolls(".post-body > table"), maths: scrolls(".post-body > math"),
          cellText: textLeft(".post-body > table td"), proseText: textLeft(".post-body > p"),
          valueTable: (() => { const band = d.querySelector("#lab-77 .lab-table");
                               return {band: band.clientWidth, table: band.querySelector("tr").getBoundingClientRect().width}; })(),
          gaps: gaps(d), mathNowrap: css(".math-nowrap", "whiteSpace"),
          seriesItems: [...d.querySelectorAll(".series-parts li")].map(li => w.getComputedStyle(li).display)};
}
function rules(d) {
  const nav = d.querySelector(".pagination"), w = d.defaultView;
  return [w.getComputedStyle(nav.previousElementSibling).borderBottomWidth, w.getComputedStyle(nav).borderTopWidth];
}
function gaps(d) {
  const top = e => e.getBoundingClientRect().top, bottom = e => e.getBoundingClientRect().bottom;
  const code = d.querySelector(".post-body > .codehilite"), pre = code.querySelector("pre");
  const heading = d.querySelector("#lab-77 + h2"), p = d.querySelector(".post-body > p + p");
  return {codeAbove: top(pre) - bottom(code.previousElementSibling), codeBelow: top(code.nextElementSibling) - bottom(pre),
          headingAfterLab: top(heading) - bottom(heading.previousElementSibling),
          paragraphs: top(p) - bottom(p.previousElementSibling)};
}
function scrolls(selector) {
  const e = document.getElementById(current).contentDocument.querySelector(selector);
  return {clientWidth: e.clientWidth, scrollWidth: e.scrollWidth};
}
function textLeft(selector) {
  const d = document.getElementById(current).contentDocument, range = d.createRange();
  range.selectNodeContents(d.querySelector(selector));
  return range.getBoundingClientRect().left;
}
function printedTable(d, w) {
  const band = d.querySelector("#lab-77 .lab-output-table"), pre = band.closest("pre");
  const lineHeight = parseFloat(w.getComputedStyle(band).lineHeight);
  const lines = band.textContent.replace(/\\n$/, "").split("\\n").length;
  const range = d.createRange(), first = d.createRange();
  range.selectNodeContents(band); first.selectNodeContents(pre.querySelector("code").firstChild);
  const edges = e => { const r = e.getBoundingClientRect(); return [r.left, r.right]; };
  return {band: edges(band), pre: edges(pre), bandText: range.getClientRects()[0].left,
          outputText: first.getBoundingClientRect().left,
          lines: lines, height: band.getBoundingClientRect().height, lineHeight: lineHeight,
          clientWidth: band.clientWidth, scrollWidth: band.scrollWidth,
          textFits: pre.scrollWidth <= pre.clientWidth,
          proseLines: Math.round(pre.getBoundingClientRect().height / lineHeight)};
}
// The window's load waits for every frame's (a listener on each frame could come too late),
// then their fonts, so nothing is measured in a fallback font. A failure is written out too:
// the test shows it instead of waiting for a measurement that will never come.
addEventListener("load", () => {
  const frames = [...document.querySelectorAll("iframe")];
  Promise.all(frames.map(f => f.contentDocument.fonts.ready))
    .then(() => JSON.stringify({wide: measure(document.getElementById("wide")),
                                narrow: measure(document.getElementById("narrow")),
                                listing: rules(document.getElementById("listing").contentDocument)}))
    .catch(e => JSON.stringify({error: String((e && e.stack) || e)}))
    .then(text => { document.getElementById("out").textContent = text; });
});
</script></body></html>
"""

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """{scheme: {"wide"|"narrow": measurements}} of a built post holding a lab."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    from conftest import TinySite
    site = TinySite(tmp_path_factory.mktemp("layout"))
    site.post("lab.md", post_text(title="A lab", body="A paragraph of prose.\n\nA second one, to measure the gap between paragraphs.\n\n" + LAB + "\nMore prose.\n\n"
                                  + _rendered_lab() + "\n\n## After the lab\n\n" + CITE + "\n" + PROSE_TABLE
                                  + "\nBefore the code, with $\\beta = 0$, a formula and its comma.\n\n```python\nx = 1\n```\n\nAfter the code.\n",
                                  series="Specimens"))
    for number, date in enumerate(("2026-01-05", "2026-01-20", "2026-02-03", "2026-04-01", "2026-04-20")):
        site.post(f"part{number}.md", post_text(title=f"Part {number}", date=date, series="Specimens"))
    site.build()
    (site.out / "measure.html").write_text(MEASURE, encoding="utf-8")
    handler = functools.partial(_Quiet, directory=str(site.out))
    results = {}
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/measure.html"
        try:
            for scheme in ("light", "dark"):
                command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"]
                if scheme == "dark":
                    command.append("--force-dark-mode")
                with Browser(command) as browser:
                    results[scheme] = json.loads(text_once_written(browser, url, "out", dark=scheme == "dark"))
                if "error" in results[scheme]:
                    pytest.fail(f"the measuring page failed in {scheme} mode: {results[scheme]['error']}")
        finally:
            server.shutdown()
    return results


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


# Stands in for Chromium on the other end of the DevTools pipe: answers on descriptor 4 what
# it reads on 3, with an event before each evaluation, and the page's text only on the third
# ask (the first fails as a navigation would make it, the second finds the element empty).
FAKE_BROWSER = r"""
import json, os, sys
commands, replies = os.fdopen(3, "rb", buffering=0), os.fdopen(4, "wb", buffering=0)
def reply(message):
    replies.write(json.dumps(message).encode() + b"\0")
buffer, asked, seen = b"", 0, []
while chunk := commands.read(65536):
    buffer += chunk
    while b"\0" in buffer:
        raw, buffer = buffer.split(b"\0", 1)
        message = json.loads(raw)
        seen.append([message["method"], message.get("sessionId")])
        result = {"Target.createTarget": {"targetId": "T1"}, "Target.attachToTarget": {"sessionId": "S1"}}.get(message["method"], {})
        if message["method"] == "Runtime.evaluate":
            asked += 1
            reply({"method": "Runtime.consoleAPICalled", "params": {}, "sessionId": "S1"})
            if asked == 1:
                reply({"id": message["id"], "error": {"code": -32000, "message": "Execution context was destroyed."}})
                continue
            value = "" if asked == 2 else json.dumps({"asked": asked, "flags": sys.argv[1:], "seen": seen})
            result = {"result": {"type": "string", "value": value}}
        reply({"id": message["id"], "result": result})
        if message["method"] == "Browser.close":
            sys.exit(0)
"""


def test_the_devtools_client_asks_the_page_over_descriptors_3_and_4_until_its_text_is_written(tmp_path):
    fake = tmp_path / "fake_browser.py"
    fake.write_text(FAKE_BROWSER, encoding="utf-8")
    with Browser([sys.executable, str(fake)], timeout=10) as browser:
        answer = json.loads(text_once_written(browser, "http://127.0.0.1:1/measure.html", "out", dark=True,
                                              every=0.01, timeout=10))
    assert answer["asked"] == 3 and "--remote-debugging-pipe" in answer["flags"]
    assert answer["seen"][:4] == [["Target.createTarget", None], ["Target.attachToTarget", None],
                                  ["Emulation.setEmulatedMedia", "S1"], ["Page.navigate", "S1"]]
    assert browser.process.returncode == 0          # closed when asked


def test_at_1280_a_lab_grows_past_the_text_column_within_the_page_frame(measured):
    wide = measured["light"]["wide"]
    text, lab, frame = wide["text"], wide["lab"], wide["frame"]
    assert 680 <= text["width"] <= 720                         # a ~700 px text column
    assert lab["width"] > text["width"] + 200                  # the lab takes the room its source needs
    assert frame["left"] + 19 <= lab["left"] and lab["right"] <= frame["right"] - 19   # inside the header's frame
    assert abs((lab["left"] + lab["right"]) / 2 - (text["left"] + text["right"]) / 2) < 1   # centred on the text
    assert wide["outputFits"] and wide["scrollWidth"] <= wide["viewport"]


def test_at_390_a_lab_is_one_box_edge_to_edge_and_nothing_scrolls_sideways(measured):
    narrow = measured["light"]["narrow"]
    lab, source = narrow["lab"], narrow["source"]
    assert narrow["scrollWidth"] <= narrow["viewport"]
    assert lab["left"] == 0 and lab["right"] == narrow["viewport"]
    assert narrow["sourceBorder"] == "0px"                       # no box inside the box
    assert source["left"] - lab["left"] <= 3 and lab["right"] - source["right"] <= 1
    assert narrow["sourceScrolls"] == "auto" and narrow["outputFits"]   # code scrolls in its band, output wraps


def _rgb(css_colour: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", css_colour)[:3])


def test_dark_mode_is_dark_with_light_text_and_figures_keep_a_light_backing(measured):
    light, dark = measured["light"]["wide"], measured["dark"]["wide"]
    assert sum(_rgb(dark["background"])) < 150 and sum(_rgb(dark["colour"])) > 600
    assert sum(_rgb(light["background"])) > 700 and sum(_rgb(light["colour"])) < 150
    assert sum(_rgb(dark["figureBackground"])) > 650


def test_a_printed_table_keeps_its_columns_and_scrolls_in_its_band_at_390(measured):
    for width in ("narrow", "wide"):
        printed = measured["light"][width]["printed"]
        assert printed["height"] <= printed["lines"] * printed["lineHeight"] + 1, width   # no row wraps
        assert printed["textFits"], width                     # the text around it still wraps
        assert abs(printed["bandText"] - printed["outputText"]) < 1, width   # lines up with the text
    narrow = measured["light"]["narrow"]
    assert narrow["printed"]["band"] == narrow["printed"]["pre"]   # runs to the box's edges and scrolls under them
    assert narrow["printed"]["scrollWidth"] > narrow["printed"]["clientWidth"]   # scrolls in its band
    assert narrow["scrollWidth"] <= narrow["viewport"]                           # not the page
    wide = measured["light"]["wide"]["printed"]
    assert wide["scrollWidth"] <= wide["clientWidth"]          # at 1280 the lab grows to show it all


def test_numbers_in_a_value_table_are_flush_right_and_text_flush_left(measured):
    wide = measured["light"]["wide"]["valueTable"]
    assert abs(wide["table"] - wide["band"]) < 1      # rows run the lab's width, no stub of stripes
    for width in ("narrow", "wide"):
        assert measured["light"][width]["numberAlign"] == "right"
        assert measured["light"][width]["textAlign"] in ("left", "start")


def test_a_cited_number_is_never_broken_across_lines_nor_a_formula_from_its_comma(measured):
    narrow = measured["light"]["narrow"]
    assert narrow["citeWrap"] == "nowrap" and narrow["cites"] == [1, 1]
    assert narrow["mathNowrap"] == "nowrap"


def test_on_a_phone_the_series_box_lists_only_the_parts_either_side_of_this_one(measured):
    narrow, wide = measured["light"]["narrow"], measured["light"]["wide"]
    assert narrow["seriesShown"] == ["Part 2", "A lab", "Part 3"]   # part 4 of 6 and its neighbours
    assert set(narrow["seriesItems"]) == {"list-item"}               # hidden ones still count
    assert len(wide["seriesShown"]) == 6                             # at 1280 every part is listed


def test_on_a_phone_a_prose_table_uses_the_margins_instead_of_scrolling_and_keeps_the_text_line(measured):
    narrow = measured["light"]["narrow"]
    table = narrow["proseTable"]
    assert table["scrollWidth"] <= table["clientWidth"]               # fits: no sideways scrolling
    assert abs(narrow["cellText"] - narrow["proseText"]) <= 1         # cells line up with the prose
    maths = narrow["maths"]
    assert maths["scrollWidth"] <= maths["clientWidth"]
    assert narrow["scrollWidth"] <= narrow["viewport"]


def test_a_code_block_is_set_off_a_little_more_than_a_paragraph_and_a_heading_after_a_lab_keeps_its_space(measured):
    for width in ("narrow", "wide"):
        gaps = measured["light"][width]["gaps"]
        assert gaps["paragraphs"] < gaps["codeAbove"] <= 1.5 * gaps["paragraphs"], (width, gaps)   # was 40 px
        assert abs(gaps["codeAbove"] - gaps["codeBelow"]) < 1, (width, gaps)
        assert gaps["headingAfterLab"] >= 38, (width, gaps)                                          # 2.4rem, was 1.8rem


def test_the_pagination_under_the_last_intro_has_one_rule_not_two(measured):
    assert measured["light"]["listing"] == ["1px", "0px"]

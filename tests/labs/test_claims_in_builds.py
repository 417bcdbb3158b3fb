"""`expect:` claims and `tolerance:` in real builds, `lab` and `check` runs, and the hardware
each result names. One cold build (one worker, one `import torch`) is copied for each test."""
import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from test_lab_builds import build as run
from test_lab_builds import copy_of, labs_line as last_line, new_project, write

SITE_TOML = """\
title = "Claims"
base_url = "https://example.org/"
timezone = "UTC"

[labs]
cache_dir = "labcache"
"""

# A lab whose numbers the tests control through a data file, as a CPU's rounding would move them.
NUMBERS = '''\
"""Numbers read from a file (a test module of this temporary project)."""
import json

from labcode.data import read_text


def numbers(path: str = "data/numbers.json"):
    values = json.loads(read_text(path))
    print(f"max |difference|: {values['forward_max']:.1e}")
    print(f"loss              {values['loss']:.4f}")
    return values
'''

VALUES = {"forward_max": 1.2e-07, "loss": 3.2512, "speedup": 5.6,
          "history": [{"step": 0, "val_loss": 4.1}, {"step": 100, "val_loss": 3.2}]}

POST = """\
---
title: "Claims"
date: 2026-10-01T10:00:00+00:00
categories: [Labs]
summary: "Claims about a result."
---
The two versions agree within float32 rounding, and the loss falls.

```lab
labcode.numbers:numbers
name: nums
show: output, value
tolerance: 1e-6, loss=0.1%
expect: forward_max < 1e-6
expect: history[-1].val_loss < history[0].val_loss
expect: speedup > 5
```

The loss is {{ nums.loss:.3f }}.
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    project = new_project(tmp_path_factory.mktemp("claims"), {
        "site.toml": SITE_TOML, "labcode/numbers.py": NUMBERS, "data/numbers.json": json.dumps(VALUES),
        "content/posts/claims.md": POST})
    result = run(project)
    assert result.returncode == 0, result.stderr
    assert last_line(result).endswith("labs: 1 run, 0 cached, 0 failed")
    return project


@pytest.fixture
def project(built, tmp_path) -> Path:
    return copy_of(built, tmp_path)


def edit_post(project: Path, old: str, new: str) -> None:
    post = project / "content" / "posts" / "claims.md"
    post.write_text(post.read_text().replace(old, new))


def published_entry(project: Path) -> Path:
    (entry,) = (project / "labcache").glob("numbers-numbers-*.json")
    return entry


def as_if_made_elsewhere(project: Path, **values) -> None:
    """Rewrite the published result as another CPU would have made it."""
    entry = published_entry(project)
    data = json.loads(entry.read_text())
    data["result"]["data"].update(values)
    lines = [f"max |difference|: {data['result']['data']['forward_max']:.1e}",
             f"loss              {data['result']['data']['loss']:.4f}"]
    data["result"]["output"] = "\n".join(lines) + "\n"
    data["device_name"] = "Intel Xeon Platinum 8375C (AVX2)"
    entry.write_text(json.dumps(data))


def test_true_claims_build_and_the_page_lists_them_as_checked(built):
    html = BeautifulSoup((built / "output" / "posts" / "claims.html").read_text(), "html.parser")
    claims = html.select(".lab .lab-claims li")
    assert [li.code.get_text() for li in claims] == [
        "forward_max < 1e-6", "history[-1].val_loss < history[0].val_loss", "speedup > 5"]
    assert all("claim-holds" in li["class"] for li in claims)
    assert "forward_max = 1.2e-07" in claims[0].get_text()


def test_the_mirror_lists_the_claims_under_the_labs_output(built):
    mirror = (built / "output" / "posts" / "claims.html.md").read_text()
    output_at = mirror.index("max |difference|")
    claims_at = mirror.index("Claims checked on every build:")
    assert output_at < claims_at
    assert "- `speedup > 5`: holds (speedup = 5.6)" in mirror


def test_the_notebook_asserts_each_claim_after_its_lab_cell(built):
    from labnotes.labs.session import Data

    notebook = json.loads((built / "output" / "posts" / "claims.ipynb").read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    at = next(i for i, source in enumerate(code) if "numbers(" in source)
    asserts = code[at + 1]
    assert asserts.count("assert ") == 3 and "assert r.forward_max < 1e-06" in asserts

    class Session:                       # what LabSession.data gives, without a kernel
        data = staticmethod(Data)
    exec(asserts, {"lab": Session, "nums": dict(VALUES)})          # the published result holds
    with pytest.raises(AssertionError, match="speedup > 5"):
        exec(asserts, {"lab": Session, "nums": {**VALUES, "speedup": 2.0}})


def test_provenance_names_the_cpu_and_the_vector_isa_torch_used(built):
    import torch
    isa = torch.backends.cpu.get_cpu_capability()
    html = (built / "output" / "posts" / "claims.html").read_text()
    provenance = BeautifulSoup(html, "html.parser").select_one(".lab-provenance").get_text()
    assert f"CPU ({isa})" in provenance
    labs_page = (built / "output" / "labs" / "index.html.md").read_text()
    assert f"({isa})" in labs_page
    notebook = (built / "output" / "posts" / "claims.ipynb").read_text()
    assert f"({isa})" in notebook


def test_another_cpus_kernels_are_named_in_a_fresh_result(project):
    result = run(project, "lab", "labcode.numbers:numbers", env={"ATEN_CPU_CAPABILITY": "default"})
    assert result.returncode == 0, result.stderr
    assert "(scalar kernels) with torch" in result.stdout


def test_a_false_claim_fails_the_build_naming_post_line_claim_and_values(project):
    before = (project / "output" / "posts" / "claims.html").read_bytes()
    edit_post(project, "expect: forward_max < 1e-6", "expect: forward_max == 0")
    result = run(project)
    assert result.returncode == 1
    (line,) = [l for l in result.stderr.splitlines() if "error:" in l]
    import torch
    assert line.startswith('content/posts/claims.md:14: error: claim "forward_max == 0" is false: '
                           "forward_max = 1.2e-07 (")
    assert line.endswith(f" CPU ({torch.backends.cpu.get_cpu_capability()}))")
    assert (project / "output" / "posts" / "claims.html").read_bytes() == before   # last good site


def test_keep_going_shows_a_false_claim_as_an_error_box_and_exits_1(project):
    edit_post(project, "expect: speedup > 5", "expect: speedup > 10")
    result = run(project, "build", "--keep-going")
    assert result.returncode == 1
    assert last_line(result).endswith("0 failed, 1 claims false")
    html = BeautifulSoup((project / "output" / "posts" / "claims.html").read_text(), "html.parser")
    lab = html.select_one(".lab")
    assert "lab-error" in lab["class"]
    assert "is false" in lab.select_one(".claim-false").get_text()


def test_editing_only_an_expect_or_tolerance_line_reruns_nothing(project):
    edit_post(project, "expect: speedup > 5", "expect: speedup > 4")
    edit_post(project, "tolerance: 1e-6, loss=0.1%", "tolerance: 1e-5, loss=1%")
    result = run(project)
    assert result.returncode == 0, result.stderr
    assert last_line(result).endswith("labs: 0 run, 1 cached, 0 failed")
    assert "speedup &gt; 4" in (project / "output" / "posts" / "claims.html").read_text()


@pytest.mark.parametrize("old, new, line, message", [
    ("expect: speedup > 5", "expect: __import__('os').getcwd() == 1", 16,
     "calling __import__('os').getcwd is not allowed in a claim"),
    ("expect: speedup > 5", "expect: speedup >", 16, "is not a Python expression"),
    ("tolerance: 1e-6, loss=0.1%", "tolerance: loss", 13, "a bound is a number"),
])
def test_a_claim_or_tolerance_that_cannot_be_read_fails_before_any_lab_runs(project, old, new, line,
                                                                             message):
    edit_post(project, old, new)
    (project / "data" / "numbers.json").write_text(json.dumps({**VALUES, "speedup": 7.0}))
    result = run(project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"content/posts/claims.md:{line}: error:")
    assert message in result.stderr
    assert "ran labcode.numbers" not in result.stderr


def test_check_reports_noise_within_tolerance_as_reproduced_and_exits_0(project):
    as_if_made_elsewhere(project, forward_max=3.5e-07, loss=3.2531)
    result = run(project, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 published outputs would change, 2 reproduced within tolerance" in result.stdout
    assert "3 of 3 claims hold" in result.stdout
    assert "(reproduced within tolerance; not a change)" in result.stdout


def test_check_reports_a_move_beyond_tolerance_as_a_change_and_exits_1(project):
    as_if_made_elsewhere(project, forward_max=3.5e-05, loss=3.2512)
    result = run(project, "check")
    assert result.returncode == 1
    assert "the rendered block would change (3.5e-05 -> 1.2e-07 (beyond 1e-06))" in result.stdout


def test_check_and_lab_evaluate_the_claims_on_the_fresh_result(project):
    (project / "data" / "numbers.json").write_text(json.dumps({**VALUES, "speedup": 4.0}))
    result = run(project, "check")
    assert result.returncode == 1
    assert 'content/posts/claims.md:16: labcode.numbers:numbers: claim "speedup > 5" is false: ' \
           "speedup = 4 (" in result.stdout
    assert "2 of 3 claims hold" in result.stdout
    hand = run(project, "lab", "labcode.numbers:numbers")
    assert hand.returncode == 1
    assert 'content/posts/claims.md:16: error: claim "speedup > 5" is false' in hand.stderr
    assert 'claim "forward_max < 1e-6" holds' in hand.stdout


def test_a_notebook_asserts_a_claim_over_another_lab_only_when_it_ran_that_lab(project):
    other = ("---\ntitle: Other\ndate: 2026-10-02T10:00:00+00:00\n---\nAnother post.\n\n"
             "```lab\nlabcode.numbers:numbers\nname: again\nshow: output\npath: \"data/numbers.json\"\n"
             "expect: speedup == nums.speedup\n```\n")
    write(project / "content" / "posts" / "other.md", other)
    result = run(project)
    assert result.returncode == 0, result.stderr
    notebook = json.loads((project / "output" / "posts" / "other.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert "# checked by the build, not here (it reads lab nums of another post): speedup == nums.speedup" in code
    assert "assert r.speedup == " not in code


def test_a_quick_build_does_not_hold_claims_about_full_results_against_its_few_steps(project):
    edit_post(project, "expect: speedup > 5", "expect: speedup > 10")
    result = run(project, "build", "--quick")
    assert result.returncode == 0, result.stderr
    assert "--quick: claims (expect:) are not checked" in result.stderr
    assert "lab-claims" not in (project / "output" / "posts" / "claims.html").read_text()

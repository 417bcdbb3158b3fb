"""Whole builds: the CLI, exit codes, atomic output, byte-identical rebuilds, SPEC 9 bad input."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import build as cli
from conftest import post_text

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(site, capsys, monkeypatch):
    """`build.py build` in this process (fast), from the site's folder like a user would."""
    monkeypatch.chdir(site.root)

    def run(*args):
        capsys.readouterr()
        code = cli.main(["build", *args, "--config", "site.toml", "--content", "content", "--out", "output"])
        out, err = capsys.readouterr()
        return Result(code, out, err)
    return run


def test_build_py_runs_as_a_script(site):
    site.post("a.md", post_text())
    result = subprocess.run([sys.executable, str(REPO / "build.py"), "--out", str(site.out)],
                            capture_output=True, text=True, cwd=site.root, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("built ")


def test_build_prints_the_closing_line_and_exits_0(site, run_cli):
    site.post("a.md", post_text())
    result = run_cli()
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("built ") and last.endswith("s; labs: 0 run, 0 cached, 0 failed")
    assert int(last.split()[1]) == len(list(site.out.rglob("*.html")))


def test_two_builds_are_byte_identical(site, tmp_path):
    site.post("a.md", post_text(body="Maths $x^2$ and a table\n\n| a |\n|---|\n| 1 |\n"))
    site.post("b.md", post_text(title="B", date="2026-04-01", categories="[X, Y]"))
    site.build()
    first = site.snapshot()
    site.out.rename(tmp_path / "first")
    site.build()
    assert site.snapshot() == first
    assert {"feed.xml", "llms.txt", "llms-full.txt", "sitemap.xml", "posts/a.html.md", "static/style.css"} <= set(first)


def test_unchanged_rebuild_rewrites_nothing(site):
    site.post("a.md", post_text())
    site.build()
    stamp = (site.out / "posts/a.html").stat().st_mtime_ns
    report = site.build()
    assert report.changed == 0 and (site.out / "posts/a.html").stat().st_mtime_ns == stamp


def test_removed_post_disappears_from_the_output(site):
    site.post("a.md", post_text())
    old = site.post("b.md", post_text(title="B"))
    site.build()
    old.unlink()
    site.build()
    assert not (site.out / "posts/b.html").exists() and (site.out / "posts/a.html").exists()


def test_a_post_saved_in_a_subfolder_is_published(site, run_cli):
    site.post("a.md", post_text())
    assert run_cli().returncode == 0
    nested = site.content / "posts" / "2026" / "2026-04-01-nested.md"
    nested.parent.mkdir()
    nested.write_text(post_text(title="Nested", date="2026-04-01"), encoding="utf-8")
    assert run_cli().returncode == 0
    assert site.html("posts/nested.html").find("h1").get_text() == "Nested"
    assert "/posts/nested.html" in {a["href"] for a in site.html("index.html").find_all("a", href=True)}


BAD_INPUT = {
    "malformed_front_matter": ("bad.md", "---\ntitle: T\ndate 2026-03-01\n---\nx", "bad.md:3: error: front matter"),
    "missing_title": ("bad.md", "---\ndate: 2026-03-01\n---\nx", "bad.md:1: error: front matter has no `title:`"),
    "missing_date": ("bad.md", "---\ntitle: T\n---\nx", "bad.md:1: error: front matter has no `date:`"),
    "unparsable_date": ("bad.md", "---\ntitle: T\ndate: yesterday\n---\nx", "bad.md:3: error: cannot read `date: yesterday`"),
    "unknown_category_format": ("bad.md", "---\ntitle: T\ndate: 2026-03-01\ncategories: a, b\n---\nx", "bad.md:4: error: `categories` must be a list"),
    "invalid_maths": ("bad.md", "---\ntitle: T\ndate: 2026-03-01\n---\nok\n\n$\\frac{a}{b$ bad", "bad.md:7: error: invalid maths"),
    "missing_image": ("bad.md", "---\ntitle: T\ndate: 2026-03-01\n---\n![x](/images/none.png)", "bad.md:5: error: image /images/none.png does not exist"),
    "non_utf8": ("bad.md", b"---\ntitle: T\ndate: 2026-03-01\n---\n\xff\n", "bad.md:5: error: not UTF-8"),
    "duplicate_slug": ("2026-02-01-good.md", post_text(title="Same slug"), "2026-02-01-good.md:1: error: two posts have the slug `good`"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_1_and_keeps_last_good_site(site, run_cli, case):
    site.post("2026-01-01-good.md", post_text())
    assert run_cli().returncode == 0
    before = site.snapshot()
    name, text, expected = BAD_INPUT[case]
    site.post(name, text)
    result = run_cli()
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr
    assert result.stderr.startswith("content/posts/")
    assert site.snapshot() == before
    assert not [p for p in site.root.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_failed_build_keeps_last_good_site(site):
    site.post("a.md", post_text(title="Good"))
    site.build()
    before = site.snapshot()
    site.post("b.md", post_text(title="Bad", date="not a date"))
    with pytest.raises(Exception):
        site.build()
    assert site.snapshot() == before


def test_bad_site_toml_exits_1(site, run_cli):
    site.config.write_text("posts_per_page = 'ten'\n")
    result = run_cli()
    assert result.returncode == 1 and "site.toml:1: error: posts_per_page must be an integer" in result.stderr


def test_usage_error_exits_2(site, capsys):
    assert cli.main(["build", "--no-such-flag"]) == 2
    assert cli.main(["build", "--device", "tpu"]) == 2
    assert cli.main(["build", "--jobs", "0"]) == 2


@pytest.fixture
def no_server(monkeypatch):
    """`serve` that fails the test instead of serving forever."""
    def refuse(*args, **kwargs):
        raise AssertionError("serve started")
    monkeypatch.setattr("labnotes.serve.serve", refuse)
    monkeypatch.setattr("labnotes.serve.make_server", refuse)


@pytest.mark.parametrize("command", ["build", "serve", "lab labcode.x:y", "check"])
def test_explicit_config_path_that_does_not_exist_is_an_error(site, capsys, monkeypatch, no_server, command):
    monkeypatch.chdir(site.root)
    site.post("a.md", post_text())
    code = cli.main([*command.split(), "--config", "no-such.toml", "--out", "output"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [err.strip()] and "no-such.toml" in err and "no such file" in err
    assert not site.out.exists()


def test_default_config_may_be_absent(site, run_cli):
    site.post("a.md", post_text())
    site.config.unlink()
    code = cli.main(["build", "--content", str(site.content), "--out", str(site.out)])
    assert code == 0 and (site.out / "index.html").exists()


@pytest.mark.parametrize("command", ["build", "serve", "lab labcode.x:y", "check"])
def test_content_folder_that_does_not_exist_is_an_error(site, capsys, monkeypatch, no_server, command):
    monkeypatch.chdir(site.root)
    code = cli.main([*command.split(), "--content", "nope", "--out", "output"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "--content nope: no such folder"
    assert not site.out.exists()


def test_existing_empty_content_folder_still_builds(site, run_cli):
    result = run_cli()
    assert result.returncode == 0, result.stderr
    assert (site.out / "index.html").exists()


def test_help_lists_every_command_without_torch():
    # labnotes.labs.cli must import without torch: `lab` and `check` are always there.
    code = "import sys; sys.modules['torch'] = None; import build; sys.exit(build.main(['--help']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    for command in cli.COMMANDS:
        assert command in result.stdout.split("{", 1)[1].split("}", 1)[0].split(",")


def test_a_lab_cli_that_fails_to_import_is_an_error_not_missing_commands(monkeypatch):
    monkeypatch.setitem(sys.modules, "labnotes.labs.cli", None)   # import raises ImportError
    with pytest.raises(ImportError):
        cli.main(["--help"])


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_reader_that_closes_stdout_early_ends_the_command_quietly(site, unbuffered):
    # Buffered, the closed pipe shows when stdout is flushed; unbuffered, at the first print.
    site.post("a.md", post_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    proc = subprocess.Popen([sys.executable, str(REPO / "build.py"), "build", "--out", str(site.out)],
                            cwd=site.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()     # like `| head -0`: nobody reads what the command prints
    try:
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert err == "" and code == 141
    assert (site.out / "index.html").exists()


def test_a_broken_pipe_that_is_not_stdout_is_not_hidden(site, run_cli, monkeypatch):
    def lab_worker_died(args):
        raise BrokenPipeError(32, "Broken pipe")
    import labnotes.cli
    monkeypatch.setattr(labnotes.cli, "_build", lab_worker_died)
    with pytest.raises(BrokenPipeError):
        run_cli()


def test_new_scaffolds_a_post_and_refuses_to_overwrite(site, capsys):
    assert cli.main(["new", 'Attention: "why" & how', "--content", str(site.content)]) == 0
    (path,) = (site.content / "posts").glob("*.md")
    assert path.name.endswith("-attention-why-how.md") and path.name[:4].isdigit()
    assert cli.main(["new", 'Attention: "why" & how', "--content", str(site.content)]) == 1
    assert "already exists" in capsys.readouterr().err
    from labnotes.config import load_config
    from labnotes.content import load_document
    from zoneinfo import ZoneInfo
    doc = load_document(path, "post", ZoneInfo("UTC"), {})
    assert doc.title == 'Attention: "why" & how' and doc.draft


def test_new_dates_the_post_by_the_sites_timezone_not_the_machines(site, tmp_path):
    """At any moment Kiritimati (UTC+14) and Pago Pago (UTC-11) are on different days: the
    post gets the day where the blog lives, so it is not held back as a future post."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        toml = tmp_path / f"{zone.split('/')[1]}.toml"
        toml.write_text(f'timezone = "{zone}"\n', encoding="utf-8")
        content = tmp_path / zone.split("/")[1]
        assert cli.main(["new", "Hello", "--content", str(content), "--config", str(toml)]) == 0
        (path,) = (content / "posts").glob("*.md")
        assert path.name == f"{datetime.now(ZoneInfo(zone)).date().isoformat()}-hello.md"


def test_clean_removes_the_output(site):
    site.post("a.md", post_text())
    site.build()
    assert cli.main(["clean", "--out", str(site.out)]) == 0
    assert not site.out.exists()


def test_built_feed_llms_txt_and_mirrors_escape_titles(site):
    import feedparser
    from llms_txt import parse_llms_file

    title = 'Less <than> & "quoted" 🚀'
    site.post("a.md", post_text(title='"Less <than> & \\"quoted\\" 🚀"', categories='["R&D <lab>"]',
                                body="Maths $x^2$.\n\n<!--more-->\n\nMore."))
    site.build()
    feed = feedparser.parse((site.out / "feed.xml").read_bytes())
    assert not feed.bozo and feed.entries[0].title == title
    assert feed.entries[0].link == "https://example.org/posts/a.html"
    assert [t.term for t in feed.entries[0].tags] == ["R&D <lab>"]
    category_feed = feedparser.parse((site.out / "category/r-d-lab/feed.xml").read_bytes())
    assert not category_feed.bozo and len(category_feed.entries) == 1
    parsed = parse_llms_file((site.out / "llms.txt").read_text())
    assert parsed.title == "Test Notes"
    mirror = (site.out / "posts/a.html.md").read_text()
    assert "Maths $x^2$.\n\nMore." in mirror and "more-->" not in mirror


@pytest.mark.parametrize("argv, words", [
    (["build", "--jobs", "abc"], "argument --jobs: must be a whole number, at least 1, not 'abc'"),
    (["build", "--jobs", "0"], "argument --jobs: must be at least 1"),
    (["serve", "--port", "http"], "argument --port: must be a port number"),
])
def test_a_bad_number_option_is_a_usage_error_in_words(site, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(site.root)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "_positive_int" not in err and "_port" not in err


def test_lab_arg_without_equals_is_a_usage_error_exit_2(site, capsys, monkeypatch):
    monkeypatch.chdir(site.root)
    site.post("a.md", post_text())
    assert cli.main(["lab", "labcode.labs.attention:causal_weights_demo", "--arg", "seq_len"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --arg 'seq_len': write --arg name=value, "
                                               "e.g. --arg seq_len=6")


def _build_process(site, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "build.py"), *args, "--out", str(site.out)], cwd=site.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_builds_at_once_take_turns_and_both_succeed(site, tmp_path):
    # Both builds remove the same ten pages from the site: unserialised, the second one to get
    # there found them gone (FileNotFoundError).
    for n in range(30):
        site.post(f"p{n}.md", post_text(title=f"Post {n}", date=f"2026-03-{n % 28 + 1:02d}", categories=f"[A, B{n % 3}]"))
    site.build()
    for n in range(10, 20):
        (site.content / "posts" / f"p{n}.md").unlink()
    builds = [_build_process(site, "--full") for _ in range(2)]
    results = [(build.wait(timeout=120), *build.communicate()) for build in builds]
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, err
        assert out.strip().splitlines()[-1].startswith("built ")
    built = site.snapshot()
    site.out.rename(tmp_path / "together")
    site.build()
    assert site.snapshot() == built


def test_a_build_waits_for_the_one_under_way_and_says_so(site):
    from labnotes.build_lock import one_build_at_a_time

    site.post("a.md", post_text())
    with one_build_at_a_time(site.config):
        waiting = _build_process(site)
        time.sleep(1.5)
        assert waiting.poll() is None          # still waiting: nothing written yet
        assert not site.out.exists()
    code, out, err = waiting.wait(timeout=60), *waiting.communicate()
    assert code == 0 and (site.out / "posts/a.html").is_file()
    assert err.splitlines()[0] == f"waiting for another build of this site (pid {os.getpid()}) to finish"


def test_clean_waits_for_a_build_under_way_instead_of_removing_what_it_writes(site):
    from labnotes.build_lock import one_build_at_a_time

    site.post("a.md", post_text())
    site.build()
    with one_build_at_a_time(site.config):
        cleaning = _build_process(site, "clean")
        time.sleep(1.5)
        assert cleaning.poll() is None and (site.out / "posts/a.html").is_file()
    code, out, err = cleaning.wait(timeout=60), *cleaning.communicate()
    assert code == 0 and not site.out.exists() and out.startswith("removed")
    assert err.splitlines()[0] == f"waiting for another build of this site (pid {os.getpid()}) to finish"


# A line put in as line 5 of the site's own copy of templates/base.html, and what the build says.
TEMPLATE_MISTAKES = {
    "syntax_error": ("{% if %}", "templates/base.html:5: error: Expected an expression"),
    "unclosed_block": ("{% if page_title %}", "templates/base.html:"),
    "undefined_variable": ("{{ site.titel }}", "templates/base.html:5: error: 'labnotes.model.SiteConfig object' "
                                               "has no attribute 'titel'; fix the template"),
    "unknown_filter": ("{{ site.title|bogus }}", "templates/base.html:5: error: No filter named 'bogus'"),
    "missing_include": ('{% include "nope.html" %}', "templates/base.html:5: error: no template named 'nope.html'"),
}


@pytest.mark.parametrize("case", sorted(TEMPLATE_MISTAKES))
def test_a_template_mistake_is_one_line_naming_the_template_and_line_and_keeps_the_last_good_site(site, run_cli, case):
    site.post("a.md", post_text())
    assert run_cli().returncode == 0
    before = site.snapshot()
    line, expected = TEMPLATE_MISTAKES[case]
    lines = (REPO / "templates/base.html").read_text(encoding="utf-8").split("\n")
    (site.root / "templates").mkdir()
    (site.root / "templates/base.html").write_text("\n".join(lines[:4] + [line] + lines[4:]), encoding="utf-8")
    result = run_cli()
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(expected) and result.stderr.rstrip().endswith("; fix the template"), result.stderr
    assert site.snapshot() == before


def test_a_mistake_in_the_lab_template_names_its_line(tmp_path):
    from labnotes.errors import BuildError
    from labnotes.labs.directive import LabCall
    from labnotes.labs.render import LabRenderer, LabResult

    (tmp_path / "lab.html").write_text('<div class="lab">\n{{ lab.wall_s / 0 }}\n</div>\n', encoding="utf-8")
    call = LabCall(ref="labcode.labs.demo:run", args=(), show=("output",), path=Path("content/posts/a.md"), line=7)
    with pytest.raises(BuildError) as raised:
        LabRenderer(tmp_path).lab_html(LabResult(call=call, status="ran", output="hi"))
    assert raised.value.path == tmp_path / "lab.html" and raised.value.line == 2
    assert raised.value.message == "ZeroDivisionError: float division by zero; fix the template"

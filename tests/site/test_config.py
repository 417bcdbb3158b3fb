"""site.toml: every error names the file and the line it is about."""
from __future__ import annotations

import pytest

import build as cli
from labnotes.config import load_config
from labnotes.errors import BuildError
from labnotes.tomllines import key_lines

GOOD = """\
# Lab Notes
title = "Notes"
base_url = "https://example.org/"

blogroll = [
    { name = "A", url = "https://a.example/" },
    { name = "B", url = "https://b.example/" },
]

[labs]
timeout = 60
"""

BAD = {
    "wrong_type": (GOOD.replace('title = "Notes"', "title = 3"), 2, "title must be a string"),
    "unknown_key": (GOOD.replace("base_url", "colour = 1\nbase_url"), 3, "unknown key 'colour'"),
    "bad_base_url": (GOOD.replace("https://example.org/", "example.org"), 3, "base_url must start with http://"),
    "unknown_timezone": ('title = "x"\n\ntimezone = "Mars/Olympus"\n', 3, "unknown timezone 'Mars/Olympus'"),
    "posts_per_page_zero": ("\n\n\n\nposts_per_page = 0\n", 5, "posts_per_page must be at least 1"),
    "bad_blogroll_entry": (GOOD.replace('{ name = "B", url = "https://b.example/" }', '{ name = "B" }'), 7,
                           "each blogroll entry must be"),
    "unknown_labs_key": (GOOD + "gpu = true\n", 12, "unknown key [labs] 'gpu'"),
    "labs_timeout": (GOOD.replace("timeout = 60", "timeout = -1"), 11, "[labs] timeout must be a positive number"),
    "labs_dotted_key": ('title = "x"\nlabs.timeout = "soon"\n', 2, "[labs] timeout must be an integer or a number"),
    "bad_repository": (GOOD.replace('title = "Notes"', 'title = "Notes"\nrepository = "github.com/me/notes"'), 3,
                       "repository must be an address `git clone` takes"),
    "labs_device": (GOOD.replace("timeout = 60", 'timeout = 60\ndevice = "tpu"'), 12,
                    '[labs] device must be "cpu", "cuda" or "mps"'),
    "not_toml": ('title = "x"\nauthor = \n', 2, "not valid TOML"),
    "not_utf8": (b'title = "x"\n\nauthor = "\xff"\n', 3, "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_site_toml_errors_name_their_line(tmp_path, case):
    text, line, message = BAD[case]
    path = tmp_path / "site.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    with pytest.raises(BuildError) as caught:
        load_config(path)
    assert (caught.value.line, caught.value.path) == (line, path)
    assert message in caught.value.message


def test_the_command_line_reports_site_toml_file_and_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "content").mkdir()
    (tmp_path / "site.toml").write_text(GOOD.replace("timeout = 60", "timeout = 0"), encoding="utf-8")
    assert cli.main(["build"]) == 1
    err = capsys.readouterr().err
    assert err == "site.toml:11: error: [labs] timeout must be a positive number of seconds\n"


def test_key_lines_find_keys_items_and_tables_in_every_toml_form():
    text = "\n".join([
        "a = 1 # comment with = and [",
        "\"quoted.key\" = 'x'",
        "b.c = [1,",
        "  [2,",
        "   3]]",
        's = """multi',
        'line \\""" = [ still text"""',
        "[t]",
        "inline = { k = \"v\", deep = { w = \'\'\'x",
        "y\'\'\' } }",
        "[[arr]]",
        "n = 1",
        "[[arr]]",
        "n = 2",
    ]) + "\n"
    import tomllib
    tomllib.loads(text)   # the scanner reads files tomllib accepted
    lines = key_lines(text)
    assert lines[("a",)] == 1 and lines[("quoted.key",)] == 2
    assert (lines[("b", "c")], lines[("b", "c", 1)], lines[("b", "c", 1, 1)]) == (3, 4, 5)
    assert lines[("t",)] == 8 and lines[("t", "inline", "deep", "w")] == 9
    assert (lines[("arr", 0, "n")], lines[("arr", 1)], lines[("arr", 1, "n")]) == (12, 13, 14)
    assert ("line",) not in lines and ("still",) not in lines


def test_a_good_file_loads(tmp_path):
    (tmp_path / "site.toml").write_text(GOOD, encoding="utf-8")
    config = load_config(tmp_path / "site.toml")
    assert [link.name for link in config.blogroll] == ["A", "B"] and config.labs.timeout == 60
    assert config.repository == ""


@pytest.mark.parametrize("url", ["https://git.example.org/notes.git", "git@git.example.org:me/notes.git",
                                 "ssh://git@git.example.org/me/notes.git", "file:///srv/git/notes"])
def test_repository_takes_what_git_clone_takes(tmp_path, url):
    (tmp_path / "site.toml").write_text(f'repository = "{url}"\n' + GOOD, encoding="utf-8")
    assert load_config(tmp_path / "site.toml").repository == url

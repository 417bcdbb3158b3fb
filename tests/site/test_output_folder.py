"""The build empties and refills its output folder, so it refuses one that holds anything else:
a mistyped `--out` must never cost an author their posts, their project or unrelated files."""
from __future__ import annotations

import pytest

import build as cli
from conftest import post_text


@pytest.fixture
def cli_in(site, capsys, monkeypatch):
    monkeypatch.chdir(site.root)
    site.post("a.md", post_text(title="A"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    return run


def tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(err: str, *words: str) -> None:
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize("out, words", [
    ("content", ("is the content folder", "--out")),
    (".", ("is the project", "--out")),
    ("..", ("would hold the project", "--out")),
    ("content/site", ("inside the content folder",)),
])
def test_an_output_folder_holding_or_inside_the_content_or_the_project_is_refused(site, cli_in, out, words):
    before = tree(site.root)
    code, _, err = cli_in("build", "--out", out)
    assert code == 1
    one_line_error(err, *words)
    assert tree(site.root) == before          # nothing written, nothing removed


def test_an_output_folder_of_other_files_is_refused_and_left_as_it_was(site, cli_in):
    other = site.root / "notes"
    (other / "drafts").mkdir(parents=True)
    (other / "todo.txt").write_text("keep me")
    (other / "drafts" / "x.md").write_text("and me")
    code, _, err = cli_in("build", "--out", "notes")
    assert code == 1
    one_line_error(err, "notes", "drafts, todo.txt", "did not write")
    assert tree(other) == {"todo.txt": b"keep me", "drafts/x.md": b"and me"}


def test_a_file_as_output_folder_is_refused(site, cli_in):
    (site.root / "site.html").write_text("mine")
    code, _, err = cli_in("build", "--out", "site.html")
    assert code == 1
    one_line_error(err, "is a file")
    assert (site.root / "site.html").read_text() == "mine"


def test_new_empty_and_own_output_folders_are_built_and_marked_as_a_site(site, cli_in):
    (site.root / "empty").mkdir()
    for out in ("fresh", "empty", "fresh"):
        assert cli_in("build", "--out", out)[0] == 0
        assert (site.root / out / ".labnotes-site").is_file() and (site.root / out / "posts" / "a.html").is_file()


def test_a_site_built_before_the_marker_existed_is_still_ours(site, cli_in):
    """Its manifest in .cache says this project wrote it; the next build adds the marker."""
    assert cli_in("build", "--out", "output")[0] == 0
    (site.out / ".labnotes-site").unlink()
    site.post("b.md", post_text(title="B", date="2026-03-02"))
    assert cli_in("build", "--out", "output")[0] == 0
    assert (site.out / ".labnotes-site").is_file() and (site.out / "posts" / "b.html").is_file()


def test_clean_removes_a_built_site_and_refuses_any_other_folder(site, cli_in):
    assert cli_in("build", "--out", "output")[0] == 0
    code, out, _ = cli_in("clean", "--out", "output")
    assert code == 0 and out == "removed output\n" and not site.out.exists()
    code, _, err = cli_in("clean", "--out", "content")
    assert code == 1
    one_line_error(err, "content", "not a site written by Lab Notes")
    assert (site.content / "posts" / "a.md").is_file()


@pytest.mark.parametrize("out, folder", [("static/site", "static/"), ("templates/out", "templates/"),
                                         ("labcode/site", "labcode/")])
def test_an_output_folder_inside_an_input_folder_is_refused_before_it_copies_itself(site, cli_in, out, folder):
    # static/ is copied into every site: --out static/site grew 41 -> 82 -> 123 pages.
    (site.root / folder).mkdir()
    (site.root / folder / "kept.txt").write_text("mine")
    code, _, err = cli_in("build", "--out", out)
    assert code == 1
    one_line_error(err, f"the output folder {out} is inside the input folder {folder}", "choose --out outside")
    assert tree(site.root / folder) == {"kept.txt": b"mine"}


@pytest.mark.parametrize("cache_dir", ["content", "content/labcache", "static/cache"])
def test_a_lab_cache_folder_inside_an_input_folder_is_refused_naming_its_line(site, cli_in, cache_dir):
    site.config.write_text(site.config.read_text() + f'\n[labs]\ncache_dir = "{cache_dir}"\n')
    line = site.config.read_text().splitlines().index(f'cache_dir = "{cache_dir}"') + 1
    code, _, err = cli_in("build")
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"site.toml:{line}: error: [labs] cache_dir ")
    assert f"is inside the input folder {cache_dir.split('/')[0]}/" in err
    assert not (site.root / "output").exists()

"""The lab cache decides staleness from what a lab really used (no torch needed)."""
import hashlib
from pathlib import Path

from labnotes.labs.cache import CacheEntry, LabCache, instance_id


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_project(tmp_path: Path) -> Path:
    (tmp_path / "labcode").mkdir()
    (tmp_path / "labcode" / "__init__.py").write_text("")
    (tmp_path / "labcode" / "gelu.py").write_text("def plot(): pass\n")
    (tmp_path / "data.txt").write_text("corpus")
    return tmp_path


def entry(root: Path, **changes) -> CacheEntry:
    fields = dict(ref="labcode.gelu:plot", args=[], quick=False, device="cpu", device_name="CPU",
                  torch_version="2.13.0+cpu",
                  modules={"labcode": sha(""), "labcode.gelu": sha("def plot(): pass\n")},
                  reads={"data.txt": sha("corpus")}, writes={}, after={},
                  result={"output": "hi\n", "figures": [], "wall_s": 0.1})
    fields.update(changes)
    return CacheEntry(**fields)


def test_unchanged_inputs_make_a_fresh_entry(tmp_path):
    root = make_project(tmp_path)
    cache = LabCache(root / "labcache", root)
    assert cache.stale_reasons(entry(root), "2.13.0+cu128", None) == []


def test_edited_module_data_file_or_torch_release_are_named(tmp_path):
    root = make_project(tmp_path)
    (root / "labcode" / "gelu.py").write_text("def plot(): return 1\n")
    (root / "data.txt").write_text("corpus, edited")
    reasons = LabCache(root / "labcache", root).stale_reasons(entry(root), "2.14.0", None)
    assert reasons == ["torch 2.13.0 -> 2.14.0", "labcode/gelu.py changed",
                       "data file data.txt changed"]


def test_file_made_by_upstream_lab_is_checked_against_the_upstream_record(tmp_path):
    root = make_project(tmp_path)
    upstream = entry(root, ref="labcode.gelu:train", reads={}, writes={"ckpt.pt": sha("w1")})
    downstream = entry(root, reads={"ckpt.pt": sha("w1")},
                       after={"ref": "labcode.gelu:train", "digest": upstream.digest()})
    cache = LabCache(root / "labcache", root)
    # the checkpoint is not on this disk (fresh clone): the upstream record vouches for it
    assert cache.stale_reasons(downstream, "2.13.0", upstream) == []
    changed = entry(root, ref="labcode.gelu:train", reads={}, writes={"ckpt.pt": sha("w2")})
    assert cache.stale_reasons(downstream, "2.13.0", changed) == [
        "ckpt.pt (made by labcode.gelu:train) changed", "upstream lab labcode.gelu:train changed"]


def test_saved_entry_loads_back_and_corrupt_entry_is_a_warning(tmp_path):
    root = make_project(tmp_path)
    cache = LabCache(root / "labcache", root)
    stem = instance_id("labcode.gelu:plot", [], False)
    cache.save(stem, entry(root))
    assert cache.load(stem, "cpu") == entry(root)
    text = cache.path(stem, "cpu").read_text()
    cache.path(stem, "cpu").write_text(text[: len(text) // 2])
    assert cache.load(stem, "cpu") is None
    assert "corrupt cache entry ignored" in cache.warnings[0]


def test_entry_files_hold_no_absolute_paths_or_clock_time(tmp_path):
    root = make_project(tmp_path)
    cache = LabCache(root / "labcache", root)
    cache.save("x", entry(root))
    text = cache.path("x", "cpu").read_text()
    assert str(tmp_path) not in text
    cache.save("x", entry(root))
    assert cache.path("x", "cpu").read_text() == text


def test_prune_keeps_shown_labs_and_their_figures_only(tmp_path):
    root = make_project(tmp_path)
    cache = LabCache(root / "labcache", root)
    cache.figures.mkdir(parents=True)
    (cache.figures / "kept.svg").write_text("<svg/>")
    (cache.figures / "orphan.svg").write_text("<svg/>")
    cache.save("shown", entry(root, result={"figures": [{"file": "kept.svg", "alt": ""}]}))
    cache.save("removed-from-posts", entry(root))
    cache.prune({"shown"})
    assert sorted(p.name for p in cache.folder.rglob("*") if p.is_file()) == \
        ["kept.svg", "shown.cpu.json"]

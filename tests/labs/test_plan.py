"""The planner decides from data alone what runs and why (no torch, no worker)."""
import hashlib
from pathlib import Path

import pytest

from labnotes.errors import BuildError
from labnotes.labs.cache import CacheEntry, LabCache, instance_id, module_digests
from labnotes.labs.plan import Facts, collect_labs, count, plan_labs
from labnotes.labs.resolve import LabcodeIndex
from labnotes.model import Document, FencedBlock

TRAIN = "def train(steps=3):\n    return steps\n"
SAMPLE = "def sample(n=1):\n    return n\n"
PLOT = "def plot():\n    return None\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    package = tmp_path / "labcode"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(TRAIN)
    (package / "sample.py").write_text(SAMPLE)
    (package / "plot.py").write_text(PLOT)
    return tmp_path


def post(*blocks: str, name: str = "a.md") -> Document:
    path = Path("content/posts") / name
    fenced = tuple(FencedBlock("lab", path, 10 * (i + 1), text) for i, text in enumerate(blocks))
    return Document("post", path, "A", name, "", 1, blocks=fenced)


def entry(root: Path, ref: str, **changes) -> CacheEntry:
    module = ref.split(":")[0]
    modules, definitions = module_digests(root, [module])
    fields = dict(ref=ref, args=[], quick=False, device="cpu", device_name="CPU",
                  torch_version="2.13.0+cpu", modules=modules, definitions=definitions,
                  reads={}, resources={}, writes={}, after={},
                  result={"output": f"{ref}\n", "figures": [], "wall_s": 0.1})
    fields.update(changes)
    return CacheEntry(**fields)


def facts(root: Path, entries: dict, files: dict | None = None, torch="2.13.0+cpu") -> Facts:
    names = sorted({m for e in entries.values() for m in e.modules})
    modules, definitions = module_digests(root, names)
    return Facts(entries=entries, modules=modules, definitions=definitions,
                 files=files or {}, torch_version=torch)


def stem(ref: str, *args) -> str:
    return instance_id(ref, list(args), False)


PIPELINE = (post("labcode.train:train", "labcode.sample:sample\nafter: labcode.train:train"),)


def published(root: Path) -> dict:
    """The pipeline's cache as a build left it: train wrote ckpt.pt, sample read it."""
    train = entry(root, "labcode.train:train", writes={"ckpt.pt": sha("w1")})
    sample = entry(root, "labcode.sample:sample",
                   after={"ref": "labcode.train:train", "digest": train.digest()})
    return {stem("labcode.train:train"): train, stem("labcode.sample:sample"): sample}


def plan_of(root, documents, known, files=None, **options):
    site = collect_labs(list(documents), LabcodeIndex(root))
    return plan_labs(site, facts(root, known, files), **options)


def runs(plan) -> dict[str, tuple]:
    return {s.instance.call.ref: s.reasons for s in plan.steps if s.run}


def test_fresh_site_runs_every_lab_because_nothing_is_cached(root):
    plan = plan_of(root, PIPELINE, {})
    assert runs(plan) == {"labcode.train:train": ("no cached result",),
                          "labcode.sample:sample": ("no cached result",
                                                    "upstream lab labcode.train:train reruns")}
    assert [s.instance.call.ref for s in plan.steps] == ["labcode.train:train",
                                                          "labcode.sample:sample"]


def test_nothing_changed_reuses_everything_even_without_the_checkpoint_on_disk(root):
    plan = plan_of(root, PIPELINE, published(root), files={"ckpt.pt": None})
    assert runs(plan) == {}


def test_prose_edit_changes_no_lab_input(root):
    edited = (post("labcode.train:train", "labcode.sample:sample\nafter: labcode.train:train"),)
    assert runs(plan_of(root, edited, published(root))) == {}


def test_module_edit_reruns_its_lab_and_the_labs_after_it_naming_the_function(root):
    known = published(root)
    (root / "labcode" / "train.py").write_text(TRAIN.replace("return steps", "return steps + 1"))
    plan = plan_of(root, PIPELINE, known, files={"ckpt.pt": sha("w1")})
    assert runs(plan) == {
        "labcode.train:train": ("labcode/train.py changed: train",),
        "labcode.sample:sample": ("upstream lab labcode.train:train reruns",)}


def test_docstring_and_comment_edits_rerun_nothing(root):
    known = published(root)
    (root / "labcode" / "train.py").write_text(
        '"""Training."""\n# a comment\n\ndef train(steps=3):\n    """Train."""\n'
        "    return steps  # the same code\n")
    assert runs(plan_of(root, PIPELINE, known)) == {}


def test_argument_change_is_a_new_lab_without_a_result(root):
    changed = (post("labcode.train:train\nsteps: 5",
                    "labcode.sample:sample\nafter: labcode.train:train"),)
    plan = plan_of(root, changed, published(root), files={"ckpt.pt": sha("w1")})
    assert runs(plan)["labcode.train:train"] == ("no cached result",)


def test_stale_downstream_reruns_an_upstream_whose_artefacts_are_missing(root):
    known = published(root)
    (root / "labcode" / "sample.py").write_text(SAMPLE.replace("return n", "return n * 2"))
    plan = plan_of(root, PIPELINE, known, files={"ckpt.pt": None})
    assert runs(plan) == {
        "labcode.train:train": ("its artefacts are not on this disk "
                                "(labcode.sample:sample needs them)",),
        "labcode.sample:sample": ("labcode/sample.py changed: sample",
                                  "upstream lab labcode.train:train reruns")}


def test_artefact_on_disk_with_the_recorded_bytes_is_used_as_it_is(root):
    known = published(root)
    (root / "labcode" / "sample.py").write_text(SAMPLE.replace("return n", "return n * 2"))
    plan = plan_of(root, PIPELINE, known, files={"ckpt.pt": sha("w1")})
    assert list(runs(plan)) == ["labcode.sample:sample"]


def test_data_file_edit_is_named(root):
    known = published(root)
    known[stem("labcode.train:train")].reads = {"data/corpus.txt": sha("old")}
    plan = plan_of(root, PIPELINE, known, files={"data/corpus.txt": sha("new"),
                                                 "ckpt.pt": sha("w1")})
    assert runs(plan)["labcode.train:train"] == ("data file data/corpus.txt changed",)


def test_torch_release_change_reruns_but_a_local_build_tag_does_not(root):
    site = collect_labs(list(PIPELINE), LabcodeIndex(root))
    same = plan_labs(site, facts(root, published(root), torch="2.13.0+cu128"))
    newer = plan_labs(site, facts(root, published(root), torch="2.14.0"))
    assert runs(same) == {}
    assert runs(newer)["labcode.train:train"] == ("torch 2.13.0 -> 2.14.0",)


def test_cycle_is_an_error_at_the_after_line(root):
    documents = [post("labcode.train:train\nafter: labcode.sample:sample",
                      "labcode.sample:sample\nafter: labcode.train:train")]
    with pytest.raises(BuildError) as error:
        collect_labs(documents, LabcodeIndex(root))
    assert "cycle" in error.value.message
    assert error.value.line in (12, 22)   # the after: line of one of the blocks


def test_two_labs_after_one_upstream_with_missing_artefacts_run_it_once_before_both(root):
    known = published(root)
    (root / "labcode" / "plot.py").write_text(PLOT + "\ndef other():\n    return 2\n")
    (root / "labcode" / "sample.py").write_text(SAMPLE.replace("return n", "return n * 2"))
    documents = [post("labcode.train:train",
                      "labcode.sample:sample\nafter: labcode.train:train",
                      "labcode.plot:plot\nafter: labcode.train:train")]
    train = known[stem("labcode.train:train")]
    known[stem("labcode.plot:plot")] = entry(root, "labcode.plot:plot", after={
        "ref": "labcode.train:train", "digest": train.digest()}, modules={"labcode.plot": "old"})
    plan = plan_of(root, documents, known, files={"ckpt.pt": None})
    waves = [[s.instance.call.ref for s in wave if s.run] for wave in plan.waves()]
    assert waves == [["labcode.train:train"], ["labcode.sample:sample", "labcode.plot:plot"]]
    assert len(plan.to_run) == 3


def test_duplicate_lab_name_is_an_error_naming_both_blocks(root):
    documents = [post("labcode.train:train\nname: t"), post("labcode.plot:plot\nname: t",
                                                            name="b.md")]
    with pytest.raises(BuildError) as error:
        collect_labs(documents, LabcodeIndex(root))
    assert error.value.path == Path("content/posts/b.md")
    assert "content/posts/a.md:10" in error.value.message


def test_only_plans_the_hand_run_lab_and_what_it_runs_after(root):
    documents = [post("labcode.train:train", "labcode.sample:sample\nafter: labcode.train:train",
                      "labcode.plot:plot")]
    plan = plan_of(root, documents, published(root), files={"ckpt.pt": sha("w1")},
                   only=stem("labcode.sample:sample"))
    assert [s.instance.call.ref for s in plan.steps] == ["labcode.train:train",
                                                          "labcode.sample:sample"]
    assert runs(plan) == {"labcode.sample:sample": ("run by hand",)}


def test_counts_come_from_final_statuses():
    counts = count(["ran", "cached", "cached", "failed"])
    assert (counts.run, counts.cached, counts.failed) == (1, 2, 1)


def test_saved_entry_loads_back_and_a_corrupt_one_is_a_warning(root):
    cache = LabCache(root / "labcache")
    made = entry(root, "labcode.plot:plot")
    cache.save("plot", made)
    assert cache.load("plot", "cpu") == made
    text = cache.path("plot", "cpu").read_text()
    assert str(root) not in text
    cache.path("plot", "cpu").write_text(text[: len(text) // 2])
    assert cache.load("plot", "cpu") is None
    assert "corrupt cache entry ignored" in cache.warnings[0]


def test_orphans_are_entries_no_lab_uses_and_figures_no_entry_names(root):
    cache = LabCache(root / "labcache")
    cache.figures.mkdir(parents=True)
    (cache.figures / "kept.svg").write_text("<svg/>")
    (cache.figures / "orphan.svg").write_text("<svg/>")
    cache.save("shown", entry(root, "labcode.plot:plot",
                              result={"figures": [{"file": "kept.svg", "alt": ""}]}))
    cache.save("gone", entry(root, "labcode.plot:plot"))
    assert sorted(p.name for p in cache.orphans({"shown"})) == ["gone.cpu.json", "orphan.svg"]


def test_code_digest_memo_keeps_one_version_per_module_however_often_it_is_edited(root):
    """The memo of module digests follows the code: every edit gives the new digest, and the
    file does not grow with the history of edits."""
    import json

    memo = root / ".cache" / "code-digests.json"
    seen = set()
    for steps in range(20):
        (root / "labcode" / "train.py").write_text(TRAIN.replace("steps=3", f"steps={steps}"))
        modules, _ = module_digests(root, ["labcode.train", "labcode.sample"])
        seen.add(modules["labcode.train"])
    assert len(seen) == 20
    assert sorted(json.loads(memo.read_text())["modules"]) == ["labcode.sample", "labcode.train"]
    (root / "labcode" / "sample.py").unlink()
    assert module_digests(root, ["labcode.sample"])[0] == {"labcode.sample": None}
    assert sorted(json.loads(memo.read_text())["modules"]) == ["labcode.train"]

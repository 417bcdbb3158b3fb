"""Declared precision (`tolerance:`) and checked claims (`expect:`), as pure functions."""
import pytest

from labnotes.labs.claims import ClaimSyntaxError, evaluate, notebook_assert, parse_claim
from labnotes.labs.precision import (Tolerance, ToleranceError, compare_data, compare_svg,
                                     compare_table, compare_text, parse_tolerance)

RESULT = {"forward_max": 1.2e-07, "speedup": 5.6, "ok": True,
          "history": [{"step": 0, "val_loss": 4.1}, {"step": 100, "val_loss": 3.2}],
          "max |grad|": 0.5}


def claim(text: str, data=RESULT, labs=None):
    return evaluate(parse_claim(text, 41), data, labs or {})


# ---- claims -----------------------------------------------------------------------------------

def test_a_claim_over_paths_written_as_citations_write_them_holds():
    assert claim("history[-1].val_loss < history[0].val_loss").holds
    assert claim("speedup > 5 and ok").holds
    assert claim('result["max |grad|"] < 1').holds      # a key that is not a plain word
    assert claim("abs(forward_max) < 1e-6").holds
    assert claim("len(history) == 2 and max(h.val_loss for h in history) < 5").holds
    assert claim("all(h.val_loss < 5 for h in history) and not any(h.step > 100 for h in history)").holds


def test_a_false_claim_says_which_values_it_read():
    verdict = claim("forward_max == 0")
    assert not verdict.holds
    assert verdict.values_text == "forward_max = 1.2e-07"


def test_a_claim_may_read_another_labs_result_by_its_name():
    assert claim("speedup > other.speedup", labs={"other": {"speedup": 2.0}}).holds
    assert claim("train < 4", labs={"train": 3.5}).holds


def test_a_missing_key_is_reported_with_the_nearest_names():
    verdict = claim("speedp > 5")
    assert not verdict.holds and "speedp is not a key" in verdict.error and "speedup" in verdict.error
    verdict = claim("history[5].val_loss < 1")
    assert "no index [5]" in verdict.error


def test_a_claim_that_is_not_a_comparison_is_not_true():
    verdict = claim("speedup")
    assert not verdict.holds and "not true or false" in verdict.error


@pytest.mark.parametrize("text, refused", [
    ("__import__('os').system('ls') == 0", "calling __import__"),
    ("speedup.real > 1", None),                 # an attribute is a key: a missing one at run time
    ("(lambda: 1)() == 1", "calling"),
    ("speedup if ok else 0", "conditional expression"),
    ("[h for h in history] == []", "comprehension outside"),
    ("f'{speedup}' == '5'", "f-string"),
    ("history[0:1] == []", "slice"),
    ("sorted(history) == history", "calling sorted"),
    ("speedup is None", "comparison Is"),
])
def test_only_a_small_safe_part_of_python_is_allowed(text, refused):
    if refused is None:
        assert not claim(text).holds
        return
    with pytest.raises(ClaimSyntaxError, match=refused):
        parse_claim(text)


def test_a_claim_becomes_a_notebook_assert_over_the_result():
    keys = set(RESULT)
    assert notebook_assert(parse_claim("history[-1].val_loss < history[0].val_loss"), keys) == \
        "assert r.history[-1].val_loss < r.history[0].val_loss, 'history[-1].val_loss < history[0].val_loss'"
    assert notebook_assert(parse_claim("all(h.step >= 0 for h in history)"), keys).startswith(
        "assert all((h.step >= 0 for h in r.history))")
    assert notebook_assert(parse_claim("speedup > other.speedup"), keys, {"other": "lab.data(other)"}) \
        .startswith("assert r.speedup > lab.data(other).speedup")


# ---- precision ------------------------------------------------------------------------------

def test_tolerance_reads_absolute_relative_and_per_key_bounds():
    tolerance = parse_tolerance('1e-6, loss=1%, "max |grad|"=1e-3 + 0.5%, figures=2px')
    assert tolerance.bound_for(("forward_max",)).absolute == 1e-6
    assert tolerance.bound_for(("history", 3, "loss")).relative == pytest.approx(0.01)
    bound = tolerance.bound_for(("max |grad|",))
    assert (bound.absolute, bound.relative) == (1e-3, pytest.approx(0.005))
    assert tolerance.figure_bound_px == 2


@pytest.mark.parametrize("text", ["", "loss=", "fast", "1e-6, 1e-5", "figures=2", "-1"])
def test_a_tolerance_that_cannot_be_read_is_an_error(text):
    with pytest.raises(ToleranceError):
        parse_tolerance(text)


def test_printed_noise_within_the_declared_bound_is_reproduced_not_changed():
    old = "max |difference|:   0.0e+00\nratio  6,980\n"
    new = "max |difference|:   1.2e-07\nratio  6,980\n"
    assert not compare_text(old, new, Tolerance().output_bound()).reproduced   # default: relative
    within = compare_text(old, new, parse_tolerance("1e-6").output_bound())
    assert within.reproduced and not within.same and "0.0e+00 -> 1.2e-07" in within.detail
    beyond = compare_text(old, "max |difference|:   3.4e-05\nratio  6,980\n",
                          parse_tolerance("1e-6").output_bound())
    assert not beyond.reproduced and "beyond 1e-06" in beyond.detail


def test_printed_numbers_compare_by_value_allowing_for_their_rounding():
    bound = Tolerance().output_bound()              # relative 1e-5 by default
    assert compare_text("loss 3.751", "loss 3.752", bound).reproduced   # 3.7515 either side
    assert not compare_text("loss 3.751", "loss 3.760", bound).reproduced
    assert not compare_text("token 1234", "token 1235", bound).reproduced   # integers exact
    assert compare_text("post-norm  51.813  87", "post-norm  51.814  87", bound).reproduced


def test_other_text_must_be_equal_though_column_padding_may_move():
    bound = parse_tolerance("1%").output_bound()
    assert compare_text("a   -0.50  b", "a    0.50  b", bound).reproduced is False
    assert compare_text("x  0.5000  y", "x 0.5001   y", bound).reproduced
    assert not compare_text("loss 1.0 falling", "loss 1.0 rising", bound).reproduced


def test_returned_values_and_tables_compare_per_key_and_per_column():
    tolerance = parse_tolerance("loss=1%")
    assert compare_data({"loss": 3.0, "steps": 10}, {"loss": 3.02, "steps": 10}, tolerance).within
    assert not compare_data({"loss": 3.0, "steps": 10}, {"loss": 3.0, "steps": 11}, tolerance).reproduced
    assert not compare_data({"diff": 0.0}, {"diff": 1e-7}, tolerance).reproduced
    table = {"kind": "table", "columns": ["run", "loss"], "rows": [["a", 3.0], ["b", 2.0]]}
    moved = {"kind": "table", "columns": ["run", "loss"], "rows": [["a", 3.01], ["b", 2.0]]}
    assert compare_table(table, moved, tolerance).within
    assert not compare_table(table, moved, parse_tolerance("0.1%")).reproduced


def test_svg_marks_within_the_pixel_bound_are_reproduced():
    old = '<path d="M 10.00 20.00 L 30.00 40.00"/><!-- 3.5 -->'
    nudge = '<path d="M 10.05 20.00 L 30.00 40.00"/><!-- 3.5 -->'
    moved = '<path d="M 10.80 20.00 L 30.00 40.00"/><!-- 3.5 -->'
    assert compare_svg(old, nudge, 0.1).same                       # sub-pixel: no reader sees it
    assert not compare_svg(old, moved, 0.1).reproduced
    assert compare_svg(old, moved, 1.0).within
    assert not compare_svg(old, moved.replace('<path', '<circle'), 1.0).reproduced


# ---- hardware provenance ----------------------------------------------------------------------

def test_a_gpu_result_names_the_card_its_cuda_version_and_compute_capability(monkeypatch):
    import torch

    from labnotes.labs.worker import device_name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert device_name("cuda") == "NVIDIA H100 80GB HBM3 (CUDA 12.8, sm_90)"


def test_a_cpu_result_names_the_model_and_the_vector_isa_torch_used():
    import torch

    from labnotes.labs.worker import cpu_model, device_name
    name = device_name("cpu")
    assert name.startswith(cpu_model()) and name.endswith(f"CPU ({torch.backends.cpu.get_cpu_capability()})") \
        or name.endswith("CPU (scalar kernels)")
    assert "(R)" not in name and "@" not in name


def test_the_values_a_claim_read_are_named_as_the_claim_writes_them():
    assert claim('result["max |grad|"] < 1').values_text == 'result["max |grad|"] = 0.5'

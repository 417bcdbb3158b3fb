"""Parsing ```lab / ```labsource blocks and resolving their references (no torch needed)."""
from pathlib import Path

import pytest

from labnotes.errors import BuildError
from labnotes.labs.directive import LabCall, SourceCall, parse_block, rerun_command
from labnotes.labs.resolve import LabcodeIndex
from labnotes.model import FencedBlock

POST = Path("content/posts/attention.md")
ROOT = Path(__file__).resolve().parents[2]


def block(text: str, kind: str = "lab", line: int = 10) -> FencedBlock:
    return FencedBlock(kind, POST, line, text)


def test_lab_block_reads_reference_show_timeout_after_and_literal_arguments():
    call = parse_block(block(
        "labcode.labs.attention:causal_weights_demo\n"
        "show: source, output, figures\n"
        "timeout: 30\n"
        "after: labcode.training:train_on_blog\n"
        "seq_len: 6\n"
        'text: "Your journey starts with one step"\n'))
    assert isinstance(call, LabCall)
    assert call.ref == "labcode.labs.attention:causal_weights_demo"
    assert call.show == ("source", "output", "figures")
    assert call.timeout == 30
    assert call.after == "labcode.training:train_on_blog"
    assert call.kwargs() == {"seq_len": 6, "text": "Your journey starts with one step"}
    assert call.ref_line == 11


def test_default_show_is_output_and_figures():
    assert parse_block(block("labcode.labs.gpt_model:gelu_vs_relu_plot")).show == ("output", "figures")


@pytest.mark.parametrize("text, line, words", [
    ("labcode.labs.attention:causal_weights_demo\nseq_len: six", 12, "not a Python literal"),
    ("labcode.labs.attention:causal_weights_demo\nshow: output, pictures", 12, "choose from"),
    ("labcode.labs.attention:causal_weights_demo\ntimeout: -1", 12, "positive number"),
    ("labcode.labs.attention:causal_weights_demo\ndevice: \"cuda\"", 12, "set by the build"),
    ("labcode.labs.attention:causal_weights_demo\nseq_len: 1\nseq_len: 2", 13, "given twice"),
    ("labcode.labs.attention:causal_weights_demo\njust words", 12, "key: value"),
    ("attention.causal_weights_demo", 11, "not a lab reference"),
    ("", 10, "empty"),
])
def test_bad_lab_block_names_file_and_line(text, line, words):
    with pytest.raises(BuildError) as caught:
        parse_block(block(text))
    assert caught.value.line == line
    assert words in caught.value.message
    assert caught.value.one_line().startswith(f"{POST}:{line}: error:")


def test_labsource_holds_exactly_one_reference():
    assert isinstance(parse_block(block("labcode.layernorm:LayerNorm", "labsource")), SourceCall)
    with pytest.raises(BuildError, match="one reference"):
        parse_block(block("labcode.layernorm:LayerNorm\nshow: output", "labsource"))


def test_rerun_command_quotes_arguments_for_the_shell():
    call = parse_block(block('labcode.labs.attention:causal_weights_demo\nseq_len: 6\ntext: "one step"'))
    assert rerun_command(call) == ("python build.py lab labcode.labs.attention:causal_weights_demo "
                                   "--arg seq_len=6 --arg 'text=\"one step\"'")


@pytest.fixture(scope="module")
def index():
    return LabcodeIndex(ROOT)


def test_unresolvable_reference_names_post_line_and_nearest_names(index):
    call = parse_block(block("labcode.labs.attention:causal_weight_demo"))
    with pytest.raises(BuildError) as caught:
        index.resolve(call)
    message = caught.value.one_line()
    assert message.startswith(f"{POST}:11: error:")
    assert "labcode.labs.attention:causal_weights_demo" in message.split("nearest:")[1]


def test_nearest_names_leave_out_private_helpers(index):
    near = index.nearest("labcode.labs.attention:toy_embeddings")
    assert near and not any("_toy_embeddings" in name or ":_" in name for name in near)
    assert index.nearest("labcode.labs.attention:_toy_embedding")[0] == "labcode.labs.attention:_toy_embeddings"


def test_only_labcode_callables_can_be_referenced(index):
    with pytest.raises(BuildError, match="only callables inside the labcode package"):
        index.resolve(parse_block(block("os:system")))


def test_unknown_keyword_argument_is_reported_with_its_line(index):
    call = parse_block(block("labcode.labs.attention:causal_weights_demo\nseq_lenn: 4"))
    with pytest.raises(BuildError) as caught:
        index.resolve(call)
    assert caught.value.line == 12
    assert "did you mean seq_len?" in caught.value.message


def test_source_of_a_class_is_its_whole_definition(index):
    source, file, line = index.source_of("labcode.layernorm:LayerNorm")
    assert source.startswith("class LayerNorm")
    assert "def forward" in source
    assert file.name == "layernorm.py"
    assert file.read_text().splitlines()[line - 1].startswith("class LayerNorm")

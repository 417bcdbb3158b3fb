"""Fine-tuning chapters: the classification head and its frozen layers, instruction batches whose
-100 targets never count, and LoRA whose merged form computes the same logits."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labcode.classifier import (
    ClassificationDataset,
    add_classification_head,
    class_logits,
    classification_loss,
    freeze_all_but_last,
    majority_accuracy,
    scrambled_or_not,
    sentences,
    split_examples,
)
from labcode.instructions import (
    IGNORE_INDEX,
    InstructionDataset,
    collate,
    format_prompt,
    instruction_loss,
)
from labcode.lora import (
    LoRALinear,
    apply_lora,
    lora_parameter_count,
    merge_lora,
    trainable_parameters,
)
from labcode.model import GPTConfig, GPTModel


def tiny_cfg(vocab_size=64):
    return GPTConfig(vocab_size=vocab_size, context_length=16, emb_dim=32, n_heads=4,
                     n_layers=3, drop_rate=0.0, qkv_bias=False)


class CharTokenizer:
    """Bytes as ids, 255 as end-of-text: enough for the datasets, no tiktoken needed."""

    eot_token = 255

    def encode(self, text):
        return list(text.encode("utf-8"))


# -- classifier ---------------------------------------------------------------------------------

def test_classification_head_replaces_the_output_layer_and_only_the_end_trains():
    torch.manual_seed(0)
    model = add_classification_head(GPTModel(tiny_cfg()), num_classes=3)
    trainable = freeze_all_but_last(model, last_blocks=1)
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 3)
    assert {name.split(".")[0] for name in trainable} == {"trf_blocks", "final_norm", "out_head"}
    assert all(name.startswith("trf_blocks.2.") for name in trainable if "trf_blocks" in name)
    assert not model.embed.tok_emb.weight.requires_grad
    model.zero_grad()
    classification_loss(model, torch.randint(0, 64, (2, 5)), torch.tensor([0, 2]),
                        torch.tensor([5, 3])).backward()
    assert model.trf_blocks[0].att.W_query.weight.grad is None
    assert model.trf_blocks[2].att.W_query.weight.grad is not None


def test_class_logits_reads_the_last_real_token_the_mean_or_the_padded_end():
    logits = torch.arange(2 * 4 * 2, dtype=torch.float).view(2, 4, 2)  # (B, T, C)
    lengths = torch.tensor([2, 4])
    assert class_logits(logits, lengths, "last").tolist() == [logits[0, 1].tolist(),
                                                              logits[1, 3].tolist()]
    assert torch.allclose(class_logits(logits, lengths, "mean")[0], logits[0, :2].mean(0))
    assert class_logits(logits, lengths, "end").tolist() == logits[:, -1].tolist()
    with pytest.raises(ValueError):
        class_logits(logits, lengths, "first")


def test_padding_does_not_change_the_last_real_tokens_scores():
    """Right padding comes after the real tokens, and a causal model never looks ahead."""
    torch.manual_seed(0)
    model = add_classification_head(GPTModel(tiny_cfg()), 2).eval()
    ids = torch.randint(0, 63, (1, 6))
    padded = torch.cat([ids, torch.full((1, 4), 63)], dim=1)
    a = class_logits(model(ids), torch.tensor([6]))
    b = class_logits(model(padded), torch.tensor([6]))
    assert torch.allclose(a, b, atol=1e-6)


def test_classification_data_is_made_split_padded_and_cut():
    text = "One two three four five six seven eight nine.\n\nShort one.\n\n" \
           "Alpha beta gamma delta epsilon zeta eta theta iota kappa."
    found = sentences(text)
    assert found == ["One two three four five six seven eight nine.",
                     "Alpha beta gamma delta epsilon zeta eta theta iota kappa."]
    examples = scrambled_or_not(found * 20, seed=1)
    assert {label for _, label in examples} == {"prose", "scrambled"}
    for (text, label), original in zip(examples, found * 20):
        assert sorted(text.split()) == sorted(original.split())
    train, val, test = split_examples(examples)
    assert len(train) + len(val) + len(test) == len(examples)
    data = ClassificationDataset([("ab", "x"), ("abcdef", "y")], CharTokenizer(), 4, ["x", "y"], 0)
    assert data[0][0].tolist() == [97, 98, 0, 0] and data[0][1:] == (0, 2)
    assert data[1][0].tolist() == [97, 98, 99, 100] and data[1][1:] == (1, 4)
    assert majority_accuracy(["a", "a", "b"], ["a", "b", "b", "b"]) == 0.25


# -- instructions -------------------------------------------------------------------------------

def test_alpaca_prompt_with_and_without_input_and_preamble():
    entry = {"instruction": "Name the year.", "input": "2026-12-06"}
    assert format_prompt(entry, preamble=False) == \
        "### Instruction:\nName the year.\n\n### Input:\n2026-12-06\n\n### Response:\n"
    assert format_prompt({"instruction": "Say hi."}).startswith("Below is an instruction")
    assert "### Input" not in format_prompt({"instruction": "Say hi.", "input": ""})


def test_collate_pads_shifts_and_masks_padding_and_optionally_the_prompt():
    batch = [([1, 2, 3, 9], 2), ([4, 5, 9], 1)]  # (ids ending in end-of-text 9, prompt length)
    x, y = collate(batch, pad_id=9)
    assert x.tolist() == [[1, 2, 3, 9], [4, 5, 9, 9]]
    assert y.tolist() == [[2, 3, 9, -100], [5, 9, -100, -100]]  # first end-of-text stays
    x, y = collate(batch, pad_id=9, mask_prompt=True)
    assert y.tolist() == [[-100, 3, 9, -100], [5, 9, -100, -100]]
    x, y = collate(batch, pad_id=9, max_length=2)
    assert x.shape == y.shape == (2, 2)


def test_targets_of_minus_100_do_not_count_in_the_loss():
    """Fails if the loss counts -100 targets: padding a row, or masking its prompt, must give
    exactly the loss of the targets that are left, whatever the logits there say."""
    torch.manual_seed(0)
    model = GPTModel(tiny_cfg()).eval()
    eot = 63
    data = InstructionDataset([{"instruction": "a", "output": "bc"}], CharTokenizer(), False)
    data.items = [([5, 6, 7, 8, 9, eot], 3)]
    short = [([1, 2, eot], 1)]
    alone_x, alone_y = collate(data.items, pad_id=eot)
    with torch.no_grad():
        alone = instruction_loss(model, alone_x, alone_y)
        x, y = collate(short + data.items, pad_id=eot)       # row 0 padded with 3 ignored targets
        both = instruction_loss(model, x, y)
        logits = model(x)
        by_hand = torch.cat([F.cross_entropy(logits[i], y[i], reduction="none")[y[i] != -100]
                             for i in range(2)]).mean()
        assert torch.allclose(both, by_hand)
        # counting the ignored targets (say as end-of-text) gives another loss
        counted = F.cross_entropy(logits.flatten(0, 1), torch.where(y == -100, eot, y).flatten())
        assert not torch.allclose(both, counted)
        # the loss of the padded row alone equals the loss of that row unpadded
        x1, y1 = collate(short, pad_id=eot)
        padded_x = torch.cat([x[:1]], 0)
        assert torch.allclose(instruction_loss(model, padded_x, y[:1]),
                              instruction_loss(model, x1, y1))
        # masking the prompt: the loss is the mean over response targets only
        mx, my = collate(data.items, pad_id=eot, mask_prompt=True)
        response = F.cross_entropy(model(mx)[0], my[0], reduction="none")[my[0] != IGNORE_INDEX]
        assert torch.allclose(instruction_loss(model, mx, my), response.mean())
        assert not torch.allclose(instruction_loss(model, mx, my), alone)
        assert (my[0] != IGNORE_INDEX).sum() == 6 - 3


# -- LoRA ---------------------------------------------------------------------------------------

def test_lora_linear_starts_as_its_linear_and_counts_rank_times_in_plus_out():
    torch.manual_seed(0)
    linear = nn.Linear(20, 12)
    lora = LoRALinear(linear, rank=4, alpha=8)
    x = torch.randn(3, 20)
    assert torch.equal(lora(x), linear(x))  # B starts at zero
    assert trainable_parameters(lora) == lora_parameter_count(20, 12, 4) == 4 * (20 + 12)


def test_merged_and_unmerged_lora_give_the_same_logits():
    torch.manual_seed(0)
    model = add_classification_head(GPTModel(tiny_cfg()), 3)
    replaced = apply_lora(model, rank=4, alpha=8, skip=("out_head",))
    assert len(replaced) == 3 * 6  # q, k, v, out_proj and two feed-forward layers per block
    for module in model.modules():
        if isinstance(module, LoRALinear):
            nn.init.normal_(module.lora.B, std=0.5)  # as if trained: a real change
    model.eval()
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        before = model(ids)
        plain = GPTModel(tiny_cfg())  # the unadapted weights give other logits
        merged = merge_lora(model)
        after = merged(ids)
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert torch.allclose(before, after, atol=1e-5)
    assert (before - after).abs().max() < 1e-5 < (before[..., :1] - plain(ids)[..., :1]).abs().max()


def test_apply_lora_trains_only_the_adapters_and_the_skipped_head():
    model = add_classification_head(GPTModel(tiny_cfg()), 3)
    total = sum(p.numel() for p in model.parameters())
    apply_lora(model, rank=2, alpha=4, skip=("out_head",))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(".lora." in n or n.startswith("out_head") for n in names)
    per_block = 4 * lora_parameter_count(32, 32, 2) + 2 * lora_parameter_count(32, 128, 2)
    assert trainable_parameters(model) == 3 * per_block + 32 * 3 + 3
    assert sum(p.numel() for p in merge_lora(model).parameters()) == total

"""labcode: the GPT-2 stack in PyTorch, written to be read.

Chapters hold the ideas, one module per idea, readable top to bottom, in the book's order
(`CHAPTERS`): each imports only earlier chapters, at the top of the file. The experiments
the blog's posts run (lab entry points and their helpers) live in `labcode.labs`, one module
per post; they import chapters, and no chapter imports them.

`import labcode` is cheap: the public names below load their module (and torch)
the first time they are used, so `labcode.GPTModel` works without importing
every module by hand.
"""
from importlib import import_module

# The chapters in the order a reader meets them; a chapter may import only those before it.
# `distributed` comes before `training`, whose loop runs data-parallel under torchrun; `fast`
# holds faster twins of the explicit layers, for training and generation at speed.
# Fine-tuning follows: classification (the book's chapter 6), instructions (chapter 7), LoRA
# (appendix E).
CHAPTERS = (
    "tokenizer", "bpe", "data", "embeddings", "attention", "layernorm", "gelu", "feedforward",
    "block", "model", "generation", "device", "checkpoint", "distributed", "training",
    "tiny_gpt", "gpt2_weights", "fast", "classifier", "instructions", "lora",
)

# public name -> module that defines it
_EXPORTS = {
    "SimpleTokenizer": "labcode.tokenizer",
    "gpt2_tokenizer": "labcode.tokenizer",
    "train_bpe": "labcode.bpe",
    "GPTDataset": "labcode.data",
    "create_dataloader": "labcode.data",
    "best_device": "labcode.device",
    "read_text": "labcode.data",
    "autocast": "labcode.device",
    "device_name": "labcode.device",
    "GPTConfig": "labcode.model",
    "GPTModel": "labcode.model",
    "generate": "labcode.generation",
    "load_gpt2": "labcode.gpt2_weights",
    "fast_gpt": "labcode.fast",
    "make_fast": "labcode.fast",
    "train": "labcode.training",
    "TrainProgress": "labcode.training",
    "TrainHistory": "labcode.training",
    "calc_loss_batch": "labcode.training",
    "calc_loss_loader": "labcode.training",
    "perplexity": "labcode.training",
    "lr_at": "labcode.training",
    "LoRALinear": "labcode.lora",
    "apply_lora": "labcode.lora",
    "format_prompt": "labcode.instructions",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labcode' has no attribute {name!r}")

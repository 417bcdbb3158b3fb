"""LoRA: fine-tune a low-rank change to each weight matrix instead of the matrix itself.

A linear layer computes y = x W^T + b with W of shape (out, in). LoRA keeps W frozen and learns
a change of rank r, delta W = (alpha / r) * (A B)^T with A (in, r) and B (r, out): for r much
smaller than in and out that is r * (in + out) numbers instead of in * out. B starts at zero,
so the adapted model starts as exactly the model it adapts.

Read top to bottom:

1. `LoRALayer`, the low-rank change on its own, and `LoRALinear`, a frozen `nn.Linear` plus one;
2. `apply_lora`: every `nn.Linear` of a model swapped for a `LoRALinear`, everything else frozen;
3. merging: W + delta W folded into a plain `nn.Linear` again, the same function with no extra
   matrix multiply at inference;
4. counting trainable parameters.
"""
from __future__ import annotations

import math

import torch
from torch import nn


# -- 1. the low-rank change, and a linear layer that carries one ----------------------------

class LoRALayer(nn.Module):
    """x (..., in) -> (alpha / rank) * x A B (..., out): a change of rank at most `rank`."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float):
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_features, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.B = nn.Parameter(torch.zeros(rank, out_features))  # zero: no change at the start
        self.scale = alpha / rank

    def forward(self, x):  # x: (..., in)
        return self.scale * (x @ self.A @ self.B)  # (..., rank) -> (..., out)

    def delta_weight(self) -> torch.Tensor:
        """The change as a matrix in nn.Linear's layout, (out, in)."""
        return self.scale * (self.A @ self.B).T


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable `LoRALayer`: y = x W^T + b + (alpha / r) x A B."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.linear = linear
        self.linear.requires_grad_(False)
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):  # x: (..., in) -> (..., out)
        return self.linear(x) + self.lora(x)

    def merged(self) -> nn.Linear:
        """One `nn.Linear` holding W + delta W (and b): the same function, one matmul."""
        out = nn.Linear(self.linear.in_features, self.linear.out_features,
                        bias=self.linear.bias is not None)
        with torch.no_grad():
            out.weight.copy_(self.linear.weight + self.lora.delta_weight())
            if self.linear.bias is not None:
                out.bias.copy_(self.linear.bias)
        return out.to(self.linear.weight.device)


# -- 2. putting LoRA into a model ----------------------------------------------------------------

def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0,
               skip: tuple[str, ...] = ()) -> list[str]:
    """Freeze `model` and replace each `nn.Linear` (except those whose name is in `skip`) by a
    `LoRALinear` around it; only the LoRA matrices (and modules named in `skip`) train.

    Returns the names of the layers replaced. A head that is new (a classification head) has
    nothing to keep: name it in `skip` to train it whole.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    replaced = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if full in skip:
                child.requires_grad_(True)
            elif isinstance(child, nn.Linear):
                setattr(module, child_name, LoRALinear(child, rank, alpha))
                replaced.append(full)
    return replaced


# -- 3. merging -----------------------------------------------------------------------------------

def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every `LoRALinear` of `model` by its merged `nn.Linear`, in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, child_name, child.merged())
    return model


# -- 4. counting ------------------------------------------------------------------------------------

def trainable_parameters(model: nn.Module) -> int:
    """How many numbers the optimizer updates."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_parameter_count(in_features: int, out_features: int, rank: int) -> int:
    """A and B of one layer: rank * (in + out), against in * out for the full matrix."""
    return rank * (in_features + out_features)

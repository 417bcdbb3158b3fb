"""Token and position embeddings: how ids become vectors the model can work with.

A token embedding is a lookup table with one learnt row per vocabulary entry.
Attention itself ignores order, so GPT-2 adds a second table with one learnt row
per position (absolute position embeddings); the sum is the input of the first block.
"""
import torch
from torch import nn


class TokenPositionEmbedding(nn.Module):
    """token embedding + absolute position embedding: ids (B, T) -> vectors (B, T, emb_dim)."""

    def __init__(self, vocab_size: int, context_length: int, emb_dim: int):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, emb_dim)
        self.pos_emb = nn.Embedding(context_length, emb_dim)

    def forward(self, idx, start_pos: int = 0):  # idx: (B, T)
        T = idx.shape[1]
        positions = torch.arange(start_pos, start_pos + T, device=idx.device)  # (T,)
        # (B, T, d) + (T, d): the same position vectors are added to every row of the batch
        return self.tok_emb(idx) + self.pos_emb(positions)

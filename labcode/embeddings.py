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


def embedding_demo(vocab_size: int = 6, emb_dim: int = 3):
    """Embed a small batch of ids; returns the (B, T, emb_dim) input embeddings."""
    torch.manual_seed(123)
    emb = TokenPositionEmbedding(vocab_size, context_length=4, emb_dim=emb_dim)
    ids = torch.tensor([[2, 3, 5, 1], [2, 2, 2, 2]]) % vocab_size  # (B=2, T=4)
    print("token embedding table:", tuple(emb.tok_emb.weight.shape))
    print("position embedding table:", tuple(emb.pos_emb.weight.shape))
    with torch.no_grad():
        out = emb(ids)
    print("ids", tuple(ids.shape), "-> embeddings", tuple(out.shape))
    print("the same token at different positions gets different vectors:",
          not torch.allclose(out[1, 0], out[1, 1]))
    return out

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


# === Lab entry points: the functions the posts run ==================================

def embedding_demo(vocab_size: int = 6, emb_dim: int = 3) -> dict:
    """Embed a small batch of ids and print the vectors: one id, a new vector at each position."""
    torch.manual_seed(123)
    emb = TokenPositionEmbedding(vocab_size, context_length=4, emb_dim=emb_dim)
    ids = torch.tensor([[2, 3, 5, 1], [2, 2, 2, 2]]) % vocab_size  # (B=2, T=4)
    with torch.no_grad():
        out = emb(ids)  # (B, T, emb_dim)
    print(f"token table {tuple(emb.tok_emb.weight.shape)}, position table "
          f"{tuple(emb.pos_emb.weight.shape)}: "
          f"ids {tuple(ids.shape)} -> vectors {tuple(out.shape)}")
    for b in range(ids.shape[0]):
        print(f"sequence {b}")
        for t in range(ids.shape[1]):
            vector = " ".join(f"{v:7.4f}" for v in out[b, t].tolist())
            print(f"  position {t}  id {ids[b, t].item()}  [{vector}]")
    # positions where the second sequence's vector equals the first's (same id, same position)
    same = [t for t in range(ids.shape[1]) if torch.equal(out[0, t], out[1, t])]
    return {"ids": ids.tolist(), "token_table": list(emb.tok_emb.weight.shape),
            "position_table": list(emb.pos_emb.weight.shape), "shape": list(out.shape),
            "embeddings": [[[round(v, 4) for v in vec] for vec in seq] for seq in out.tolist()],
            "positions_equal_across_sequences": same}

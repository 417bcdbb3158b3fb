"""Labs of the four posts that build attention up in the book's order (sections 3.3 to 3.6):
embeddings and attention without weights, queries, keys and values, the causal mask with
dropout, and every multi-head variant computing the same thing.
"""
import matplotlib.pyplot as plt
import torch

from labcode.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention,
    copy_heads_into_fused,
    simple_attention,
)
from labcode.embeddings import TokenPositionEmbedding
from labcode.labs.figures import WIDTH, house_style


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


def _toy_embeddings(text: str, dim: int = 3):
    """One small random vector per word of `text`, seeded by the caller."""
    words = text.split()
    return words, torch.rand(len(words), dim)


def simple_attention_demo(text: str = "Your journey starts with one step") -> dict:
    """Print attention weights between the words of `text`; return them with a summary."""
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    context, weights = simple_attention(inputs)
    print("attention weights (row: the query word; column: the word it attends to)")
    print(" " * 9 + "".join(f"{w:>9}" for w in words))
    for word, row in zip(words, weights.tolist()):
        print(f"{word:>9}" + "".join(f"{w:9.2f}" for w in row))
    sums = weights.sum(dim=-1)
    print("every row sums to 1:", torch.allclose(sums, torch.ones(len(words))))
    return {"words": words, "weights": weights.tolist(), "context": context.tolist(),
            "min_weight": weights.min().item(), "max_weight": weights.max().item(),
            "uniform_weight": 1 / len(words),
            "most_attended": [words[i] for i in weights.argmax(dim=-1).tolist()],
            "rows_sum_to_one": torch.allclose(sums, torch.ones(len(words)))}


def trainable_attention_demo(text: str = "Your journey starts with one step", d_out: int = 2,
                             query: int = 1) -> dict:
    """Self-attention with learnt projections, worked by hand for one query word, then as a class.

    The same toy word vectors as `simple_attention_demo` go through `SelfAttention`'s three
    (untrained) projections. For the word at index `query` the lab computes its query, every
    key and value, the scaled scores, the weights and the context vector one step at a time,
    and then compares them with what the module computes for all words at once. Last, it
    measures how far each score matrix is from symmetric: without projections the score of
    word i for word j is the score of j for i; with them it need not be.
    """
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)                    # (T, d_in)
    att = SelfAttention(d_in=inputs.shape[-1], d_out=d_out)
    # nn.Linear stores its matrix as (d_out, d_in) and computes x @ weight.T
    W_q, W_k, W_v = (layer.weight.detach().T for layer in (att.W_query, att.W_key, att.W_value))
    with torch.no_grad():
        q = inputs[query] @ W_q                                # (d_out,)
        keys, values = inputs @ W_k, inputs @ W_v              # (T, d_out) each
        scores = keys @ q                                      # (T,): q . k_j for every j
        weights = torch.softmax(scores / d_out ** 0.5, dim=-1)
        context = weights @ values                             # (d_out,)
        module_context = att(inputs.unsqueeze(0))[0]           # (T, d_out): every word at once
        plain_scores = inputs @ inputs.T
        trained_scores = (inputs @ W_q) @ (inputs @ W_k).T

    def vec(t):
        return "[" + ", ".join(f"{v:.4f}" for v in t.tolist()) + "]"

    print(f"W_query.weight {tuple(att.W_query.weight.shape)}, so W_q = weight.T "
          f"{tuple(W_q.shape)}")
    print(f"query word {words[query]!r}: q = {vec(q)}")
    print(f"{'key word':>9}{'score':>9}{'/sqrt(dk)':>11}{'weight':>9}")
    for word, s, w in zip(words, scores.tolist(), weights.tolist()):
        print(f"{word:>9}{s:>9.4f}{s / d_out ** 0.5:>11.4f}{w:>9.4f}")
    print(f"context vector by hand:  {vec(context)}")
    print(f"SelfAttention's row {query}:  {vec(module_context[query])}")
    by_hand_diff = (module_context[query] - context).abs().max().item()
    plain_asym = (plain_scores - plain_scores.T).abs().max().item()
    trained_asym = (trained_scores - trained_scores.T).abs().max().item()
    print(f"max |score(i, j) - score(j, i)|: without projections {plain_asym:.1e}, "
          f"with them {trained_asym:.2f}")
    return {"words": words, "query_word": words[query], "d_out": d_out,
            "weight_shape": list(att.W_query.weight.shape), "query": q.tolist(),
            "scores": scores.tolist(), "weights": weights.tolist(), "context": context.tolist(),
            "weights_sum": weights.sum().item(), "by_hand_diff": by_hand_diff,
            "min_weight": weights.min().item(), "max_weight": weights.max().item(),
            "uniform_weight": 1 / len(words), "top_word": words[weights.argmax().item()],
            "own_weight": weights[query].item(),
            "plain_asymmetry": plain_asym, "trained_asymmetry": trained_asym}


def causal_weights_demo(seq_len: int = 6, text: str = "Your journey starts with one step",
                        device: str = "cpu"):
    """Draw the causal attention weights of the first `seq_len` words as a heatmap."""
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    words, inputs = words[:seq_len], inputs[:seq_len].to(device)
    att = CausalAttention(d_in=inputs.shape[-1], d_out=2, context_length=len(words),
                          dropout=0.0).to(device)
    with torch.no_grad():
        weights = att.attention_weights(inputs.unsqueeze(0))[0].cpu()  # (T, T)

    fig, ax = plt.subplots(figsize=(WIDTH, 4.4))
    image = ax.imshow(weights.numpy(), cmap="viridis")
    ax.set_xticks(range(len(words)), words, rotation=45, ha="right")
    ax.set_yticks(range(len(words)), words)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query")
    fig.colorbar(image, ax=ax)
    ax.set_title("Causal attention weights: no word attends to a later one")
    house_style(fig)
    print("upper triangle is zero: no word attends to a later word")
    return weights


def causal_dropout_demo(p: float = 0.5, text: str = "Your journey starts with one step") -> dict:
    """Causal weights with dropout, in eval and in training mode: training rescales the survivors.

    nn.Dropout zeroes each weight with probability p and multiplies the rest by 1/(1-p), so
    the expected row sum stays 1 but any single row's sum does not.
    """
    torch.manual_seed(123)
    words, inputs = _toy_embeddings(text)
    att = CausalAttention(d_in=inputs.shape[-1], d_out=2, context_length=len(words), dropout=p)
    with torch.no_grad():
        weights = att.attention_weights(inputs.unsqueeze(0))[0]  # (T, T)
        att.train()
        dropped = att.dropout(weights)  # what forward() uses while training
    print(f"dropout p = {p}: survivors are multiplied by 1/(1-p) = {1 / (1 - p):g}")
    for mode, w in (("eval mode (dropout off)", weights), ("training mode (dropout on)", dropped)):
        print(f"\n{mode:<{9 + 7 * len(words)}}  row sum")
        for t, word in enumerate(words):
            cells = "".join(f"{v:7.2f}" for v in w[t, :t + 1].tolist())
            print(f"{word:>9}{cells:<{7 * len(words)}}  {w[t].sum().item():7.2f}")
    eval_sums, train_sums = weights.sum(dim=-1).tolist(), dropped.sum(dim=-1).tolist()
    visible = torch.ones_like(weights, dtype=torch.bool).tril()
    return {"p": p, "scale": 1 / (1 - p), "eval_row_sums": eval_sums,
            "train_row_sums": train_sums, "min_train_row_sum": min(train_sums),
            "max_train_row_sum": max(train_sums),
            "dropped_fraction": (dropped[visible] == 0).float().mean().item()}


def attention_variants_agree(device: str = "cpu") -> dict:
    """Run every multi-head variant on the same weights; report max differences to the wrapper.

    For each variant: the largest absolute difference of its output and of the input's
    gradient from the explicit reference (the wrapper of single heads).
    """
    torch.manual_seed(123)
    d, T, heads = 32, 16, 4
    x = torch.randn(2, T, d, device=device)
    reference = MultiHeadAttentionWrapper(d, d, T, dropout=0.0, num_heads=heads).to(device)
    variants = {"wrapper": reference}
    for attention in ("explicit", "sdpa"):
        fused = MultiHeadAttention(d, d, T, 0.0, heads, attention=attention).to(device)
        copy_heads_into_fused(reference, fused)
        variants[attention] = fused

    def run(module):
        inp = x.clone().requires_grad_(True)
        out = module(inp)
        out.square().sum().backward()
        return out.detach(), inp.grad

    ref_out, ref_grad = run(reference)
    result = {}
    for name, module in variants.items():
        out, grad = run(module)
        result[name] = {"output_diff": (out - ref_out).abs().max().item(),
                        "grad_diff": (grad - ref_grad).abs().max().item()}
    labels = {"wrapper": "wrapper of heads (reference)", "explicit": "batched, explicit softmax",
              "sdpa": "batched, sdpa"}
    print(f"{'path':<30}{'max |Δ output|':>16}{'max |Δ grad|':>14}")
    for name, diffs in result.items():
        print(f"{labels[name]:<30}{diffs['output_diff']:>16.1e}{diffs['grad_diff']:>14.1e}")
    result["largest"] = max(v for diffs in result.values() for v in diffs.values())
    return result

"""The reshapes of multi-head attention, one step at a time.

`labcode.attention.MultiHeadAttention` projects once to d_out and splits the result into heads with
`view` and `transpose`: (B, T, d_out) -> (B, T, h, hs) -> (B, h, T, hs). After attention it
merges them back with `transpose`, `contiguous` and `view`. `multihead_shapes_demo` walks one
batch through those lines, printing every shape and comparing each step with separate heads;
`view_reshape_demo` shows what `view`, `reshape` and `contiguous` do to the memory underneath,
and what goes wrong without the transpose.
"""
import textwrap

import matplotlib.pyplot as plt
import torch

from labcode.attention import MultiHeadAttention, MultiHeadAttentionWrapper, copy_heads_into_fused
from labcode.labs.figures import WIDTH, house_style


def multihead_shapes_demo(batch: int = 2, seq_len: int = 5, d_in: int = 8, d_out: int = 12,
                          num_heads: int = 3, device: str = "cpu") -> dict:
    """Walk one batch through MultiHeadAttention's forward, printing every shape.

    The layer's weights are copied from a wrapper of separate heads (with an identity
    output projection), so each step can be compared with what the separate heads compute.
    Draws each head's attention weights for the first sequence of the batch.
    """
    torch.manual_seed(123)
    wrapper = MultiHeadAttentionWrapper(d_in, d_out, seq_len, 0.0, num_heads).to(device)
    fused = MultiHeadAttention(d_in, d_out, seq_len, 0.0, num_heads).to(device)
    copy_heads_into_fused(wrapper, fused)
    x = torch.randn(batch, seq_len, d_in, device=device)
    B, T, _ = x.shape
    h, hs = num_heads, d_out // num_heads
    shapes = {}

    def show(label, tensor):  # the shape first, so a narrow screen shows it
        shapes[label] = list(tensor.shape)
        contiguous = "yes" if tensor.is_contiguous() else "no"
        print(f"{str(tuple(tensor.shape)):<13}{contiguous:<8}{' '.join(label.split())}")

    print(f"{'shape':<13}{'contig.':<8}step")

    with torch.no_grad():
        show("x", x)
        q_flat = fused.W_query(x)
        show("W_query(x)", q_flat)
        q_split = q_flat.view(B, T, h, hs)
        show(".view(B, T, h, hs)", q_split)
        queries = q_split.transpose(1, 2)
        show(".transpose(1, 2)  -> queries", queries)
        keys = fused.W_key(x).view(B, T, h, hs).transpose(1, 2)
        values = fused.W_value(x).view(B, T, h, hs).transpose(1, 2)
        scores = queries @ keys.transpose(2, 3)
        show("queries @ keys.transpose(2, 3)  -> scores", scores)
        scores = scores.masked_fill(fused.mask[:T, :T], float("-inf"))
        weights = torch.softmax(scores / hs ** 0.5, dim=-1)
        context = weights @ values
        show("weights @ values  -> context", context)
        swapped = context.transpose(1, 2)
        show("context.transpose(1, 2)", swapped)
        merged = swapped.contiguous().view(B, T, d_out)
        show(".contiguous().view(B, T, d_out)", merged)
        out = fused.out_proj(merged)
        show("out_proj(...)", out)

        by_hand = (out - fused(x)).abs().max().item()
        per_head = []
        for i, head in enumerate(wrapper.heads):
            cols = slice(i * hs, (i + 1) * hs)  # head i owns these columns of d_out
            per_head.append({
                "head": i,
                "query_diff": (queries[:, i] - head.W_query(x)).abs().max().item(),
                "weights_diff": (weights[:, i] - head.attention_weights(x)).abs().max().item(),
                "output_diff": (merged[..., cols] - head(x)).abs().max().item()})
        wrapper_diff = (out - wrapper(x)).abs().max().item()
        query_is_slice = torch.equal(queries[:, 1], q_flat[..., hs:2 * hs])

    grads = []
    for module in (fused, wrapper):  # backward: the same loss through both layers
        inp = x.clone().requires_grad_(True)
        module(inp).square().sum().backward()
        grads.append(inp.grad)
    grad_diff = (grads[0] - grads[1]).abs().max().item()

    print(f"\nstep by step vs fused(x), max |diff|: {by_hand:.1e}")
    print(f"queries[:, 1] is W_query(x)[..., {hs}:{2 * hs}]: {query_is_slice}")
    print("max |fused - separate head|, per head:")
    print(f"{'head':>4}{'queries':>12}{'weights':>12}{'output':>12}")
    for row in per_head:
        print(f"{row['head']:>4}{row['query_diff']:>12.1e}{row['weights_diff']:>12.1e}"
              f"{row['output_diff']:>12.1e}")
    print("whole layer vs the wrapper, max |difference|:")
    print(f"  output {wrapper_diff:.1e}, d loss / d x {grad_diff:.1e}")

    # one row of small heatmaps on one colour scale, and the bar that reads it
    fig, axes = plt.subplots(1, h, figsize=(WIDTH, 2.9), squeeze=False)
    for i, ax in enumerate(axes.flat):
        image = ax.imshow(weights[0, i].cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {i}")
        ax.set_xticks(range(T))
        ax.set_yticks(range(T) if i == 0 else [])
        ax.set_xlabel("key")
    axes[0, 0].set_ylabel("query position")
    fig.suptitle(f"Attention weights of each of the {h} heads")
    house_style(fig)
    fig.subplots_adjust(right=0.86)  # room for the colour bar, after the layout is tightened
    bar = fig.colorbar(image, cax=fig.add_axes([0.89, 0.22, 0.025, 0.56]))
    bar.set_label("weight", fontsize=11)
    bar.ax.tick_params(labelsize=11)
    return {"batch": B, "seq_len": T, "heads": h, "head_dim": hs, "d_out": d_out,
            "shapes": shapes, "step_by_step_diff": by_hand, "query_is_slice": query_is_slice,
            "per_head": per_head, "wrapper_diff": wrapper_diff, "grad_diff": grad_diff,
            "largest_head_diff": max(v for row in per_head for k, v in row.items() if k != "head")}


def view_reshape_demo(heads: int = 2, seq_len: int = 3, head_dim: int = 2) -> dict:
    """Merge heads back with and without the transpose; what view, reshape and contiguous do.

    The context tensor holds 0, 1, 2, ... so each number says where it sits in memory:
    head 0's vectors first, then head 1's.
    """
    h, T, hs = heads, seq_len, head_dim
    context = torch.arange(h * T * hs, dtype=torch.float32).view(1, h, T, hs)  # (B, h, T, hs)
    swapped = context.transpose(1, 2)  # (B, T, h, hs): same memory, strides swapped
    print(f"context (B, h, T, hs) = {tuple(context.shape)}, strides {context.stride()}")
    print(context[0])
    print(f"\n.transpose(1, 2) -> {tuple(swapped.shape)}, strides {swapped.stride()}, "
          f"contiguous: {swapped.is_contiguous()}")
    print(f"shares context's memory: {swapped.data_ptr() == context.data_ptr()}")
    try:
        swapped.view(1, T, h * hs)
        view_error = ""
    except RuntimeError as error:
        view_error = str(error).split(".")[0]
    print("\n.view(B, T, h*hs) -> RuntimeError:")
    print(textwrap.fill(view_error + ".", width=72, initial_indent="  ", subsequent_indent="  "))
    reshaped = swapped.reshape(1, T, h * hs)
    fixed = swapped.contiguous().view(1, T, h * hs)
    print(f".reshape(B, T, h*hs) copied the data: {reshaped.data_ptr() != context.data_ptr()}")
    print(f".contiguous().view(...) equals .reshape(...): {torch.equal(fixed, reshaped)}")
    print(fixed[0])
    wrong = context.reshape(1, T, h * hs)  # no transpose: runs, but mixes positions
    print("\nwithout the transpose, .reshape(B, T, h*hs) runs and is wrong:")
    print(wrong[0])
    print(f"a view of the contiguous context (no copy): "
          f"{context.view(1, T, h * hs).data_ptr() == context.data_ptr()}")
    return {"context_strides": list(context.stride()), "swapped_strides": list(swapped.stride()),
            "swapped_contiguous": swapped.is_contiguous(),
            "swapped_shares_memory": swapped.data_ptr() == context.data_ptr(),
            "view_error": view_error,
            "reshape_copied": reshaped.data_ptr() != context.data_ptr(),
            "reshape_equals_contiguous_view": torch.equal(fixed, reshaped),
            "merged_first_token": fixed[0, 0].tolist(), "wrong_first_token": wrong[0, 0].tolist(),
            "wrong_max_diff": (wrong - fixed).abs().max().item()}

"""Labs of the post "Shortcut connections and their gradients": gradient norms through a
deep Linear+GELU stack, without shortcuts, with them, and with scaled branches.
"""
import matplotlib.pyplot as plt
import torch
from torch import nn

from labcode.gelu import GELU
from labcode.labs.figures import WIDTH, house_style


def _stack_gradients(layers: nn.ModuleList, x, readout, branch_scale: float | None) -> dict:
    """Backpropagate through `layers` as a plain stack (branch_scale None) or with shortcuts.

    With shortcuts each layer computes h + branch_scale * layer(h). The loss is a fixed
    random readout of the output, so every variant starts backpropagation from the same
    gradient. Returns the gradient norm at each layer's input (the stream) and of its weights.
    """
    layers.zero_grad()
    h = x.clone().requires_grad_()
    streams = []  # the input of each layer, then the output of the stack
    for layer in layers:
        h.retain_grad()
        streams.append(h)
        out = layer(h)  # (B, width)
        h = out if branch_scale is None else h + branch_scale * out
    h.retain_grad()
    streams.append(h)
    (h @ readout).mean().backward()
    bottom, top = streams[0].grad.flatten(), streams[-1].grad.flatten()
    return {"stream": [s.grad.norm().item() for s in streams],
            "weights": [layer[0].weight.grad.norm().item() for layer in layers],
            # how much of the gradient at the bottom is the top's gradient, passed along as is
            "cosine_bottom_top": nn.functional.cosine_similarity(bottom, top, dim=0).item(),
            "output_std": h.std().item()}


def gradient_flow_demo(n_layers: int = 32, width: int = 32) -> dict:
    """Gradient norms through a deep Linear+GELU stack: no shortcuts, shortcuts, scaled branches.

    The same weights (PyTorch's default initialisation) serve all three variants; the third
    adds each layer's output scaled by 1/sqrt(n_layers), in the spirit of GPT-2's smaller
    initialisation of the layers that write into the residual stream.
    """
    layers = nn.ModuleList([nn.Sequential(nn.Linear(width, width), GELU())
                            for _ in range(n_layers)])
    x = torch.randn(16, width)  # (B, width)
    readout = torch.randn(width)
    variants = {"no shortcuts": None, "shortcuts": 1.0,
                "shortcuts, branch / sqrt(L)": n_layers ** -0.5}
    runs = {name: _stack_gradients(layers, x, readout, scale) for name, scale in variants.items()}

    fig, (ax_s, ax_w) = plt.subplots(2, 1, figsize=(WIDTH, 6.4), sharex=True)
    for (name, run), style in zip(runs.items(), ("-", "--", ":")):
        ax_s.semilogy(range(n_layers + 1), run["stream"], style, label=name)
        ax_w.semilogy(range(n_layers), run["weights"], style, label=name)
    ax_s.set_title("gradient at each layer's input")
    ax_w.set_title("gradient of each layer's weights")
    ax_w.set_xlabel("layer (0 = first)")
    for ax in (ax_s, ax_w):
        ax.grid(True, which="major")
    ax_s.legend()
    fig.suptitle("Gradient norms through a deep stack,\nwith and without shortcuts")
    house_style(fig)

    print(f"norm of the gradient at each layer's input, {n_layers} layers of width {width}")
    print(f"{'layer':>5}{'no shortcuts':>14}{'shortcuts':>12}{'branch/sqrt(L)':>16}")
    for i in range(0, n_layers + 1, 4):
        print(f"{i:>5}" + "".join(f"{runs[name]['stream'][i]:>{w}.2e}"
                                  for name, w in zip(variants, (14, 12, 16))))
    plain, full, scaled = (runs[name] for name in variants)
    return {
        "top": plain["stream"][-1],  # the same for all three: the readout's gradient
        "plain_bottom": plain["stream"][0], "full_bottom": full["stream"][0],
        "scaled_bottom": scaled["stream"][0],
        # the average factor by which one layer of the plain stack shrinks the gradient
        "plain_factor": (plain["stream"][0] / plain["stream"][-1]) ** (1 / n_layers),
        "plain_factor_predicted": 0.5 / 3 ** 0.5,  # GELU'(0) * sqrt(1/3): see the post
        "plain_weights_first": plain["weights"][0], "plain_weights_last": plain["weights"][-1],
        "full_weights_min": min(full["weights"]), "full_weights_max": max(full["weights"]),
        "scaled_weights_min": min(scaled["weights"]), "scaled_weights_max": max(scaled["weights"]),
        "full_growth": full["stream"][0] / full["stream"][-1],
        "scaled_growth": scaled["stream"][0] / scaled["stream"][-1],
        "plain_cosine": plain["cosine_bottom_top"], "full_cosine": full["cosine_bottom_top"],
        "scaled_cosine": scaled["cosine_bottom_top"],
        "plain_output_std": plain["output_std"], "full_output_std": full["output_std"],
        "scaled_output_std": scaled["output_std"], "n_layers": n_layers}

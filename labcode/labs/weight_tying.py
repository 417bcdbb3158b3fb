"""Labs of the post "From context vectors to logits, and weight tying": a GPT whose output
head is its token embedding.
"""
import torch

from labcode.model import GPTConfig, GPTModel, count_parameters


def _next_is_input(cfg: GPTConfig, tie: bool, device: str) -> float:
    """How often an untrained GPT's most likely next token is the token it just read."""
    torch.manual_seed(123)
    model = GPTModel(cfg).to(device).eval()
    if tie:
        model.out_head.weight = model.embed.tok_emb.weight
    seqs = torch.randint(0, cfg.vocab_size, (8, cfg.context_length), device=device)
    with torch.no_grad():
        return (model(seqs).argmax(dim=-1) == seqs).float().mean().item()


def tied_head_demo(vocab_size: int = 2000, emb_dim: int = 128, n_tokens: int = 256,
                   wide: tuple = (768, 12, 12), device: str = "cpu") -> dict:
    """Tie a small GPT's output head to its token embedding, and see what tying does at init.

    Two models from the same seed: one keeps its own head, one points the head at the token
    table. For `n_tokens` tokens, the head is applied to the final norm of the token's own
    embedding: under tying, the token's logit for itself is a squared norm, not a random number.
    `wide` (width, heads, layers) is GPT-2 small's shape, where the copying test is run again.
    """
    cfg = GPTConfig(vocab_size=vocab_size, context_length=64, emb_dim=emb_dim, n_heads=4,
                    n_layers=2, drop_rate=0.0)
    torch.manual_seed(123)
    untied = GPTModel(cfg).to(device).eval()
    torch.manual_seed(123)
    tied = GPTModel(cfg).to(device).eval()
    tied.out_head.weight = tied.embed.tok_emb.weight  # one Parameter, used twice

    same_tensor = tied.out_head.weight is tied.embed.tok_emb.weight
    same_memory = tied.out_head.weight.data_ptr() == tied.embed.tok_emb.weight.data_ptr()
    n_untied, n_tied = count_parameters(untied), count_parameters(tied)
    print(f"tied: out_head.weight is tok_emb.weight: {same_tensor}")
    print(f"  same data_ptr: {same_memory}")
    print(f"parameters: untied {n_untied:,}, tied {n_tied:,},")
    print(f"  saved {n_untied - n_tied:,} = {vocab_size} x {emb_dim}")
    print(f"state_dict keys still name both: "
          f"{'out_head.weight' in tied.state_dict() and 'embed.tok_emb.weight' in tied.state_dict()}")

    ids = torch.arange(n_tokens, device=device)  # the first n_tokens of the vocabulary
    result = {"same_tensor": same_tensor, "same_data_ptr": same_memory,
              "params_untied": n_untied, "params_tied": n_tied,
              "params_saved": n_untied - n_tied, "vocab_size": vocab_size, "width": emb_dim,
              "n_tokens": n_tokens}
    print(f"\n{'':<8}{'own':>11}{'other':>12}{'own is':>8}{'next =':>8}")
    print(f"{'model':<8}{'logit':>11}{'logits':>12}{'top-1':>8}{'input':>8}")
    with torch.no_grad():
        for name, model in (("untied", untied), ("tied", tied)):
            # 1. the head applied straight to a token's own (normalised) embedding
            logits = model.out_head(model.final_norm(model.embed.tok_emb(ids)))  # (n, V)
            own = logits[ids, ids]  # (n,): token i's logit for token i
            others = logits.clone()
            others[ids, ids] = float("nan")
            top1 = (logits.argmax(dim=-1) == ids).float().mean().item()
            # 2. the whole untrained model: how often is the predicted next token the input?
            seqs = torch.randint(0, vocab_size, (8, cfg.context_length), device=device)
            full = model(seqs)  # (8, T, V)
            repeat = (full.argmax(dim=-1) == seqs).float().mean().item()
            result[name] = {"own_logit_mean": own.mean().item(),
                            "own_logit_std": own.std().item(),
                            "other_logit_mean": others.nanmean().item(),
                            "other_logit_std": (others[~others.isnan()]).std().item(),
                            "own_is_top1": top1, "next_is_input": repeat}
            r = result[name]
            print(f"{name:<8}{r['own_logit_mean']:>5.2f} ±{r['own_logit_std']:.2f}"
                  f"{r['other_logit_mean']:>6.2f} ±{r['other_logit_std']:.2f}"
                  f"{top1:>8.1%}{repeat:>8.1%}")
    width, heads, layers = wide
    wide_cfg = GPTConfig(vocab_size=vocab_size, context_length=64, emb_dim=width, n_heads=heads,
                         n_layers=layers, drop_rate=0.0)
    result["wide"] = {"width": width, "n_layers": layers,
                      "tied_next_is_input": _next_is_input(wide_cfg, True, device),
                      "untied_next_is_input": _next_is_input(wide_cfg, False, device)}
    print(f"at width {width} with {layers} layers, next = input: "
          f"untied {result['wide']['untied_next_is_input']:.1%}, "
          f"tied {result['wide']['tied_next_is_input']:.1%}")
    emb_std = tied.embed.tok_emb.weight.std().item()
    result["emb_std"] = emb_std
    result["predicted_own_logit"] = emb_dim * emb_std  # |e|^2 / std(e) = d * std(e)
    result["predicted_other_std"] = emb_dim ** 0.5 * emb_std
    result["chance_top1"] = 1 / vocab_size
    result["own_in_other_stds"] = ((result["tied"]["own_logit_mean"]
                                    - result["tied"]["other_logit_mean"])
                                   / result["tied"]["other_logit_std"])
    return result

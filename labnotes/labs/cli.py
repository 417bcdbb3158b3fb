"""The `lab` and `check` commands of build.py (argument parsing only)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(commands, add_site_options) -> None:
    """Add `lab REF [--arg k=v ...]`, `check` and `prune` to build.py's subcommands."""
    lab = commands.add_parser("lab", help="run one lab, print its output, save its figures")
    lab.add_argument("ref", help="a labcode callable, e.g. labcode.labs.attention:causal_weights_demo")
    lab.add_argument("--arg", action="append", default=[], metavar="K=V",
                     help="keyword argument as a Python literal (repeatable)")
    lab.add_argument("--figures", type=Path, default=Path("lab-figures"), metavar="DIR",
                     help="where figures are saved (default lab-figures/)")
    lab.add_argument("--device", choices=("cpu", "cuda", "mps"))
    lab.add_argument("--timeout", type=float, metavar="SECONDS")
    add_site_options(lab)
    lab.set_defaults(run=_lab)

    check = commands.add_parser("check", help="rerun labs and list posts whose output would "
                                "change; find broken internal links and anchors")
    check.add_argument("--device", choices=("cpu", "cuda", "mps"))
    add_site_options(check)
    check.set_defaults(run=_check)

    prune = commands.add_parser("prune", help="remove lab cache entries and figures that no "
                                "lab of the site uses (lists them)")
    prune.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    add_site_options(prune)
    prune.set_defaults(run=_prune)


def _site(args, drafts: bool = False):
    from labnotes.config import load_config
    from labnotes.content import load_content

    config = load_config(args.config)
    return config, list(load_content(Path(args.content), config, drafts=drafts).documents)


def _lab(args: argparse.Namespace) -> int:
    from labnotes.labs.commands import run_one_lab

    config, documents = _site(args)
    return run_one_lab(args.ref, args.arg, config, documents, device=args.device,
                       figures_dir=args.figures, timeout=args.timeout)


def _prune(args: argparse.Namespace) -> int:
    from labnotes.build_lock import one_build_at_a_time, say_waiting
    from labnotes.labs.commands import prune_cache

    config, documents = _site(args, drafts=True)  # a draft's results are kept for its day
    # not while a build reads or writes the cache
    with one_build_at_a_time(args.config or "site.toml", say_waiting):
        prune_cache(config, documents, dry_run=args.dry_run)
    return 0


def _check(args: argparse.Namespace) -> int:
    from labnotes.labs.commands import check_labs
    from labnotes.links import broken_links

    config, documents = _site(args)
    report = check_labs(config, documents, device=args.device)
    if not args.out.is_dir():
        print(f"check: no built site at {args.out}: run `python build.py` to check its links")
        return 0 if report.clean else 1
    problems = broken_links(args.out, config.base_url)
    for problem in problems:
        print(problem)
    print(f"check: {len(problems)} broken internal links or anchors in {args.out}")
    return 0 if report.clean and not problems else 1

#!/usr/bin/env python3
"""Lab Notes command line: parse arguments, call the pipeline, report. Nothing else."""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from labnotes.errors import BuildError

COMMANDS = ("build", "new", "clean", "serve", "lab", "check")


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 bad input or failed lab, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "build")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return args.run(args)
    except BuildError as error:
        print(error.one_line(), file=sys.stderr)
        details = getattr(error, "details", "")
        if details:
            print(details.rstrip(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build.py", description="Build the Lab Notes site (the default command).")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build the site into the output folder")
    _add_site_options(build)
    build.add_argument("--device", choices=("cpu", "cuda", "mps"), help="where labs run (default: CUDA, then MPS, then CPU)")
    build.add_argument("--keep-going", action="store_true", help="render a failed lab as an error box and go on (still exits 1)")
    build.add_argument("--why", action="store_true", help="say which input made each lab rerun")
    build.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="labs to run at once")
    build.add_argument("--future", action="store_true", help="also publish posts dated in the future")
    build.set_defaults(run=_build)

    new = commands.add_parser("new", help="scaffold a post in content/posts/ dated today")
    new.add_argument("title")
    new.add_argument("--content", type=Path, default=Path("content"), metavar="DIR")
    new.set_defaults(run=_new)

    clean = commands.add_parser("clean", help="remove the output folder")
    clean.add_argument("--out", type=Path, default=Path("output"), metavar="DIR")
    clean.set_defaults(run=_clean)

    serve = commands.add_parser("serve", help="build, serve on 127.0.0.1 and rebuild on change")
    _add_site_options(serve)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--drafts", action="store_true", help="preview drafts too")
    serve.add_argument("--future", action="store_true", help="preview posts dated in the future too")
    serve.set_defaults(run=_serve)

    _add_lab_commands(commands)
    return parser


def _add_site_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("site.toml"), metavar="FILE")
    parser.add_argument("--content", type=Path, default=Path("content"), metavar="DIR")
    parser.add_argument("--out", type=Path, default=Path("output"), metavar="DIR")


def _add_lab_commands(commands) -> None:
    """`lab` and `check` come from the lab engine when it provides them."""
    try:
        from labnotes.labs.cli import add_commands
    except ImportError:
        return
    add_commands(commands, _add_site_options)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _build(args) -> int:
    from labnotes.model import BuildOptions
    from labnotes.pipeline import build

    options = BuildOptions(device=args.device, keep_going=args.keep_going, why=args.why, jobs=args.jobs,
                           future=args.future)
    report = build(args.config, args.content, args.out, options)
    if report.held_back:
        print(report.held_back_note(), file=sys.stderr)
    print(report.summary())
    return 1 if report.labs.failed else 0


def _new(args) -> int:
    from labnotes.scaffold import new_post

    path = new_post(args.content, args.title, date.today())
    print(f"created {path}")
    return 0


def _clean(args) -> int:
    from labnotes.output import remove_site

    print(f"removed {args.out}" if remove_site(args.out) else f"nothing to remove at {args.out}")
    return 0


def _serve(args) -> int:
    from labnotes.model import BuildOptions
    from labnotes.pipeline import build
    from labnotes.serve import serve

    def rebuild() -> None:
        try:
            report = build(args.config, args.content, args.out, BuildOptions(drafts=args.drafts, future=args.future))
            if report.held_back:
                print(report.held_back_note(), file=sys.stderr, flush=True)
            print(report.summary(), flush=True)
        except BuildError as error:
            print(error.one_line(), file=sys.stderr, flush=True)

    rebuild()
    watch = [args.content, args.config, Path("templates"), Path("static"), Path("labcode")]
    serve(args.out, rebuild, [p for p in watch if p.exists()], host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())

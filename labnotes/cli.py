"""The Lab Notes command line (`labnotes`, and `python build.py` in this repository): parse
arguments, call the pipeline, report. Nothing else."""
from __future__ import annotations

import argparse
import gc
import os
import select
import signal
import sys
from pathlib import Path

from .errors import BuildError

COMMANDS = ("build", "new", "clean", "serve", "lab", "check", "prune", "corpus", "init")
DEFAULT_CONFIG = Path("site.toml")   # may be absent: the defaults then


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 bad input or failed lab, 2 usage,
    141 when whoever reads stdout stopped early, as `build.py lab REF | head -3` does)."""
    try:
        status = _run(argv)
        sys.stdout.flush()      # a reader that left shows up here, not as noise at exit
        return status
    except BrokenPipeError:
        if not _stdout_is_closed():
            raise
        # Whatever is still buffered goes nowhere, so exiting does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _run(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "build")
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    problem = _resolve_site_paths(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except BuildError as error:
        print(error.one_line(), file=sys.stderr)
        details = getattr(error, "details", "")
        if details:
            print(details.rstrip(), file=sys.stderr)
        return getattr(error, "exit_status", 1)
    except KeyboardInterrupt:
        return 130


def _stdout_is_closed() -> bool:
    """Whether the reader of stdout is gone (and not some other pipe of ours)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
    except (AttributeError, OSError, ValueError):   # no real file behind stdout
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_program_name(), description="Build the Lab Notes site (the default command).")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="build the site into the output folder")
    _add_site_options(build)
    build.add_argument("--device", choices=("cpu", "cuda", "mps"), help="where labs run (default: CUDA, then MPS, then CPU)")
    build.add_argument("--keep-going", action="store_true", help="render a failed lab as an error box and go on (still exits 1)")
    build.add_argument("--why", action="store_true", help="say which input made each lab rerun")
    build.add_argument("--jobs", type=_positive_int, default=1, metavar="N", help="labs to run at once")
    build.add_argument("--future", action="store_true", help="also publish posts dated in the future")
    build.add_argument("--timings", action="store_true", help="say how long each stage of the build took")
    build.add_argument("--quick", action="store_true", help="run labs in their quick mode (small and fast, for tests)")
    build.add_argument("--full", action="store_true",
                       help="build in full even when the input manifest says nothing changed, or only the prose of a few "
                            "posts did (render caches still apply)")
    build.set_defaults(run=_build)

    new = commands.add_parser("new", help="scaffold a post in content/posts/ dated today")
    new.add_argument("title")
    new.add_argument("--content", type=Path, default=Path("content"), metavar="DIR")
    new.add_argument("--config", type=Path, default=DEFAULT_CONFIG, dest="site_toml", metavar="FILE",
                     help="site.toml whose timezone says what day it is (default: site.toml)")
    new.set_defaults(run=_new)

    clean = commands.add_parser("clean", help="remove the output folder")
    clean.add_argument("--out", type=Path, default=Path("output"), metavar="DIR")
    clean.set_defaults(run=_clean)

    serve = commands.add_parser("serve", help="build, serve on 127.0.0.1 and rebuild on change")
    _add_site_options(serve)
    serve.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535 (0: any free one)")
    serve.add_argument("--drafts", action="store_true", help="preview drafts too")
    serve.add_argument("--future", action="store_true", help="preview posts dated in the future too")
    serve.set_defaults(run=_serve)

    corpus = commands.add_parser("corpus", help="regenerate content/data/corpus.txt, the training text, "
                                 "from the posts' prose (a deliberate act: the next build retrains)")
    corpus.add_argument("--config", type=Path, metavar="FILE", help=f"site settings (default {DEFAULT_CONFIG})")
    corpus.add_argument("--content", type=Path, default=Path("content"), metavar="DIR")
    corpus.add_argument("--yes", action="store_true", help="write it (without: only say what would change)")
    corpus.set_defaults(run=_corpus)

    init = commands.add_parser("init", help="start a new blog in DIR (a new or empty folder)")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.set_defaults(run=_init)

    _add_lab_commands(commands)
    return parser


def _program_name() -> str:
    """`labnotes` when run as the installed command, else `build.py`."""
    return "labnotes" if Path(sys.argv[0]).name == "labnotes" else "build.py"


def _add_site_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"site settings (default {DEFAULT_CONFIG}; the defaults when there is none)")
    parser.add_argument("--content", type=Path, default=Path("content"), metavar="DIR")
    parser.add_argument("--out", type=Path, default=Path("output"), metavar="DIR")


def _resolve_site_paths(args) -> str | None:
    """Fill in the default config; a one-line usage error when --config or --content is not there."""
    if not hasattr(args, "config"):
        return None
    if args.config is None:
        args.config = DEFAULT_CONFIG
    elif not args.config.is_file():
        what = "a folder, not a file" if args.config.is_dir() else "no such file"
        return (f"--config {args.config}: {what}; give an existing TOML file, "
                f"or leave out --config to use {DEFAULT_CONFIG} or the defaults")
    if not args.content.is_dir():
        return f"--content {args.content}: {'not a folder' if args.content.exists() else 'no such folder'}"
    return None


def _add_lab_commands(commands) -> None:
    """`lab` and `check` come from the lab engine (whose CLI module imports without torch)."""
    from labnotes.labs.cli import add_commands

    add_commands(commands, _add_site_options)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, at least 1, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _site_path(config_path: Path) -> str:
    """Where `serve` puts the site: base_url's path ("/blog/"), so the pages' links work; "/"
    while site.toml cannot be read (the first build then says why)."""
    from labnotes.config import load_config
    from labnotes.pages import base_path

    try:
        return base_path(load_config(config_path))
    except BuildError:
        return "/"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, 1-65535 (0: any free port), not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 1-65535 (0: any free port)")
    return value


def _build(args) -> int:
    from labnotes.build_lock import one_build_at_a_time, say_waiting
    from labnotes.input_manifest import Look, unchanged_build
    from labnotes.model import BuildOptions

    options = BuildOptions(device=args.device, keep_going=args.keep_going, why=args.why, jobs=args.jobs,
                           quick=args.quick, future=args.future)
    if _AS_PROGRAM:
        # One build and the process ends: the cyclic collector would only walk the build's
        # hundreds of thousands of objects (`build` holds it off while it runs) to free memory
        # the process gives back as it exits.
        gc.disable()
    with one_build_at_a_time(args.config, say_waiting):
        # Nothing changed since the last build: done before the renderers are even imported.
        look = Look()
        report = None if args.full else unchanged_build(args.config, args.content, args.out, options, look)
        if report is None:
            from labnotes.pipeline import build
            report = build(args.config, args.content, args.out, options, look=look, patch=not args.full)
        elif args.why:
            print("why: nothing changed since the last build, so nothing is built and no lab reruns",
                  file=sys.stderr, flush=True)
    if args.why and report.patched:
        print(f"why: only the prose of {report.documents_rendered} document{'s' if report.documents_rendered != 1 else ''} "
              "changed, so the files showing it were patched into the last site and no lab reruns",
              file=sys.stderr, flush=True)
    _print_warnings(report)
    for stage, seconds in report.stages if args.timings else ():
        print(f"{seconds:8.3f} s  {stage}", file=sys.stderr)
    print(report.summary())
    global _NOTHING_TO_TIDY
    _NOTHING_TO_TIDY = not (report.labs.run or report.labs.failed)
    return 1 if report.labs.failed or report.labs.false_claims else 0


def _print_warnings(report) -> None:
    for warning in report.warnings:
        print(warning.one_line(), file=sys.stderr, flush=True)
    if report.held_back:
        print(report.held_back_note(), file=sys.stderr, flush=True)


def _new(args) -> int:
    from labnotes.scaffold import new_post

    from datetime import datetime
    from zoneinfo import ZoneInfo

    from labnotes.config import load_config

    # "Today" where the blog lives: a post dated by the machine's clock in another zone could
    # be a day ahead there, and be held back as a future post once it is no longer a draft.
    today = datetime.now(ZoneInfo(load_config(args.site_toml).timezone)).date()
    path = new_post(args.content, args.title, today)
    print(f"created {path}")
    return 0


def _init(args) -> int:
    from datetime import datetime, timezone

    from labnotes.new_blog import create_blog

    for note in create_blog(args.dir, datetime.now(timezone.utc).date()):
        print(note, file=sys.stderr)
    print(f"created a blog in {args.dir}: one post with a lab, its labcode/ and a workflow that "
          f"publishes to GitHub Pages")
    print(f"next: cd {args.dir} && labnotes serve    (labnotes build writes the site to output/)")
    return 0


def _clean(args) -> int:
    from labnotes.build_lock import one_build_at_a_time, say_waiting
    from labnotes.output import remove_site

    with one_build_at_a_time(DEFAULT_CONFIG, say_waiting):   # not under a build that is writing it
        removed = remove_site(args.out)
    print(f"removed {args.out}" if removed else f"nothing to remove at {args.out}")
    return 0


def _corpus(args) -> int:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from labnotes.config import load_config
    from labnotes.content import load_content
    from labnotes.corpus import compare_with_disk, make_corpus, write_corpus
    from labnotes.post_references import resolve_references

    config = load_config(args.config)
    now = datetime.now(timezone.utc)
    content = load_content(args.content, config, until=now)
    snapshot = make_corpus(content.posts, resolve_references(content))
    first, last = (snapshot.posts[0][0], snapshot.posts[-1][0]) if snapshot.posts else ("-", "-")
    print(f"corpus: the prose of {len(snapshot.posts)} posts ({first} to {last}), "
          f"{snapshot.size:,} bytes, {snapshot.digest}")
    up_to_date, lines = compare_with_disk(args.content, snapshot)
    for line in lines:
        print(f"  {line}")
    if up_to_date:
        return 0
    if not args.yes:
        print("nothing written: a new corpus changes the training data, so the training lab and the "
              "labs after it retrain on the next build; run `build.py corpus --yes` to write it")
        return 1
    written = write_corpus(args.content, snapshot, now.astimezone(ZoneInfo(config.timezone)).date())
    print(f"wrote {' and '.join(map(str, written))}")
    print("the next build retrains: every lab that reads the corpus (the training lab and the labs "
          "after it) reruns")
    return 0


def _serve(args) -> int:
    from labnotes.build_lock import one_build_at_a_time, say_waiting
    from labnotes.input_manifest import unchanged_build
    from labnotes.labs.executor import WarmPools
    from labnotes.model import BuildOptions
    from labnotes.pipeline import build
    from labnotes.serve import error_text, make_server, serve

    options = BuildOptions(drafts=args.drafts, future=args.future)
    warm = WarmPools()   # a lab an edit reruns finds its worker, torch imported, from the last rebuild

    def rebuild(first: bool = False) -> None:    # a BuildError tells the server the rebuild failed
        # The first build is skipped, as `build` skips it, when nothing changed since the last
        # one with these options; the watcher's rebuilds follow a change.
        with one_build_at_a_time(args.config, say_waiting):
            report = unchanged_build(args.config, args.content, args.out, options) if first else None
            if report is None:
                report = build(args.config, args.content, args.out, options, warm_labs=warm)
        _print_warnings(report)
        print(report.summary(), flush=True)

    server = make_server(args.out, "127.0.0.1", args.port, verbose=True,   # a busy port fails before building
                         base_path=_site_path(args.config))
    try:
        rebuild(first=True)
    except BuildError as error:   # serve the last good site, if any, under the error, until it is fixed
        print(error_text(error), file=sys.stderr, flush=True)
        server.counter.fail(error_text(error))
        if not Path(args.out).is_dir():
            print("serve: no site to show until a build succeeds (the browser shows the error); fix it "
                  "and save, and the page reloads", file=sys.stderr, flush=True)
    watch = [args.content, args.config, Path("templates"), Path("static"), Path("labcode")]
    try:
        serve(server, rebuild, [p for p in watch if p.exists()])
    finally:
        warm.stop()
    return 0


# Whether the command line runs as a program (`main_exit`), not called by other code.
_AS_PROGRAM = False
# Set by a command after which the process has nothing left to tidy (a build that ran no lab:
# no worker process, no temporary folder): `main_exit` then leaves without the interpreter's
# teardown, which would spend a tenth of a second freeing the objects of a 10,000-post build.
_NOTHING_TO_TIDY = False


def main_exit() -> None:
    """Run the command line as a program (the `labnotes` console script, `python build.py`)."""
    global _AS_PROGRAM
    _AS_PROGRAM = True
    status = main()
    if _NOTHING_TO_TIDY:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            status = 128 + signal.SIGPIPE
        os._exit(status)
    sys.exit(status)

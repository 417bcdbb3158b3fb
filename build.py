#!/usr/bin/env python3
"""`python build.py ...`: the Lab Notes command line (labnotes/cli.py, installed as `labnotes`),
run with the project's Python."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REQUIRED = ("jinja2", "markdown2", "torch")


def _use_project_python(argv: list[str]) -> None:
    """`python build.py ...` with a Python that lacks the project's packages (the system one,
    as a learner pastes a lab's rerun command): rerun under the project's .venv."""
    if all(importlib.util.find_spec(name) for name in REQUIRED):
        return
    venv = Path(__file__).resolve().parent / ".venv"
    python = venv / "bin" / "python"
    if python.is_file() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])
    missing = [name for name in REQUIRED if not importlib.util.find_spec(name)]
    print(f"error: this Python ({sys.executable}) lacks {', '.join(missing)}: run `make setup` "
          "in the project folder (it creates .venv), then run the command again", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":      # before anything of ours is imported
    _use_project_python(sys.argv[1:])

from labnotes.cli import COMMANDS, main, main_exit  # noqa: E402,F401  (the same CLI as `labnotes`)

if __name__ == "__main__":
    main_exit()

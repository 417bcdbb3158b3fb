#!/usr/bin/env python3
"""`python build.py ...` = `labnotes ...`: the rerun command under every lab names this file."""
import sys

try:
    from labnotes.cli import main_exit
except ImportError:
    sys.exit("error: Lab Notes is not installed in this Python: see README.md, Set up")

if __name__ == "__main__":
    main_exit()

"""The lab engine: ```lab blocks in posts run labcode at build time.

directive.py parses the blocks, resolve.py checks every reference against the
labcode sources (without importing them), runner.py drives one warm worker
process per device (worker.py), cache.py decides which labs are stale, and
render.py turns results into HTML and Markdown.
"""

"""The lab engine: ```lab blocks in posts run labcode at build time.

    directive.py  parse the blocks           resolve.py  check references against the sources
    plan.py       decide what runs and why (pure: data in, steps out)
    stage.py      gather the facts, carry the plan out, record entries (the edges)
    executor.py   run independent requests on N warm workers (runner.py drives one)
    worker.py     the worker process; capture.py records what a lab leaves behind
    cache.py      entries on disk            runtime.py  device, seed, worker environment
    render.py     results as HTML and Markdown; commands.py and cli.py: lab, check, prune
"""

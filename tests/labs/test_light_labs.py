"""Labs that need no torch start no torch: which labs are light, and what a light lab gets."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from labnotes.labs.imports import ImportReader
from labnotes.labs.runtime import lab_seed

from test_lab_builds import build, labs_line, new_project, write

SITE_TOML = 'title = "Light"\nbase_url = "https://example.org/"\n'


def reader_of(tmp_path: Path, files: dict[str, str]) -> ImportReader:
    for relative, text in files.items():
        write(tmp_path / relative, text)
    return ImportReader(tmp_path)


def test_a_lab_importing_only_the_standard_library_and_light_labcode_is_light(tmp_path):
    reader = reader_of(tmp_path, {
        "labcode/__init__.py": "from importlib import import_module\n",
        "labcode/text.py": "import re\nfrom pathlib import Path\n",
        "labcode/labs/__init__.py": "",
        "labcode/labs/count.py": "from labcode.text import re\nfrom . import helper\n\ndef n():\n    import json\n",
        "labcode/labs/helper.py": "import collections\n",
    })
    assert reader.is_light("labcode.labs.count:n")


def test_torch_anywhere_in_what_a_lab_reaches_makes_it_heavy(tmp_path):
    reader = reader_of(tmp_path, {
        "labcode/__init__.py": "",
        "labcode/model.py": "import torch\n",
        "labcode/data.py": "from labcode import model\n",          # a module, reached through its package
        "labcode/labs/__init__.py": "",
        "labcode/labs/direct.py": "import math\nfrom labcode.data import x\n",
        "labcode/labs/relative.py": "from ..model import y\n",
        "labcode/labs/inside.py": "def f():\n    import numpy\n",   # an import inside a function counts
        "labcode/labs/plain.py": "import math\n",
    })
    assert not reader.is_light("labcode.labs.direct:f")
    assert not reader.is_light("labcode.labs.relative:f")
    assert not reader.is_light("labcode.labs.inside:f")
    assert reader.is_light("labcode.labs.plain:f")
    # the package a lab sits in is imported first: torch there makes every lab in it heavy
    write(tmp_path / "labcode" / "labs" / "__init__.py", "import torch\n")
    assert not reader.is_light("labcode.labs.plain:f")


def test_an_edited_module_is_read_again(tmp_path):
    reader = reader_of(tmp_path, {"labcode/__init__.py": "", "labcode/a.py": "import math\n"})
    assert reader.is_light("labcode.a:f")
    path = tmp_path / "labcode" / "a.py"
    path.write_text("import math\nimport torch\n")
    import os
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    assert not reader.is_light("labcode.a:f")


LABS = '''\
"""Labs that report whether torch was imported when they ran."""
import importlib
import sys


def light():
    return {"torch_loaded": "torch" in sys.modules, "draw": __import__("random").random()}


def sneaky():
    torch = importlib.import_module("torch")   # not visible to a reading of the source
    return {"draw": torch.rand(1).item()}
'''
HEAVY = '''\
import torch


def heavy():
    return {"torch_loaded": "torch" in __import__("sys").modules, "draw": torch.rand(1).item()}
'''
POST = """---
title: Light
date: 2026-10-08
---

```lab
labcode.probe:light
name: light
```

```lab
labcode.probe:sneaky
name: sneaky
```

```lab
labcode.heavy:heavy
name: heavy
```

Light {{ light.torch_loaded }}, {{ light.draw:.6f }}; sneaky {{ sneaky.draw:.6f }}; heavy {{ heavy.torch_loaded }}.
"""


def test_light_labs_run_without_torch_and_a_sneaky_import_still_gets_its_seed(tmp_path):
    project = new_project(tmp_path, {"site.toml": SITE_TOML, "labcode/probe.py": LABS,
                                     "labcode/heavy.py": HEAVY, "content/posts/light.md": POST})
    result = build(project)
    assert result.returncode == 0, result.stderr
    assert labs_line(result).endswith("labs: 3 run, 0 cached, 0 failed")
    text = (project / "output" / "posts" / "light.html").read_text()
    shown = re.sub(r"<[^>]+>", "", text)
    import random

    import torch
    random.seed(lab_seed("labcode.probe:light"))
    torch.manual_seed(lab_seed("labcode.probe:sneaky"))
    # the light lab ran first, before any torch lab: torch was not imported for it
    assert f"Light false, {random.random():.6f}" in shown
    # the lab that imported torch behind the reader's back was run again with torch seeded
    assert f"sneaky {torch.rand(1).item():.6f}" in shown
    assert "heavy true" in shown
    # a lab that ran no torch kernel names its CPU without torch's kernel set
    ran_on = re.findall(r"Ran on ([^<]*?) with torch", text)
    assert ran_on[0].endswith(" CPU")                        # the light lab, first on the page
    assert any(shown.endswith(")") for shown in ran_on)      # the torch labs: "CPU (AVX2)"


def test_worker_answers_ready_without_importing_torch():
    repo = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "labnotes.labs.worker",
                               "--root", str(repo)], cwd=repo, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = worker.stdout.readline()
    worker.stdin.close()
    imported = worker.stderr.read()
    worker.wait(timeout=60)
    assert '"type": "ready"' in ready and '"torch": "' in ready
    assert "| labnotes.labs.capture" in imported
    assert not re.search(r"\| +torch$", imported, re.M)

"""The documented examples run as written: the README's "From Python" block and the torch
example of python/README.md, so the docs cannot drift from the API."""

import re

from support import REPO


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_the_readmes_torch_example_runs(capsys):
    block = python_blocks(REPO / "README.md")[0]
    exec(compile(block, "README.md", "exec"), {})
    assert "active per step 3 of 4" in capsys.readouterr().out


def test_the_package_readmes_torch_example_runs():
    block = python_blocks(REPO / "python" / "README.md")[0]
    scope = {}
    exec(compile(block, "python/README.md", "exec"), scope)
    assert scope["masks"].shape == (20, 8, 6)
    assert all(p.grad is not None for p in scope["model"].rims.parameters())

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


def test_the_readmes_rl_example_runs_with_fewer_frames(monkeypatch, tmp_path, capsys):
    import rims

    block = python_blocks(REPO / "README.md")[1]
    assert "rims.rl_train" in block
    train, evaluate = rims.rl_train, rims.rl_evaluate
    small = dict(envs=4, steps=32, batch=64, recurrence=16)

    def few_frames(out, **kw):  # the example's calls, run for 256 frames, then 512
        kw["frames"] = 512 if kw.get("resume") else 256
        return train(out, **kw, **({} if kw.get("resume") else small))

    monkeypatch.setattr(rims, "rl_train", few_frames)
    monkeypatch.setattr(rims, "rl_evaluate", lambda *a, **kw: evaluate(*a, **dict(kw, episodes=8)))
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert [r["update"] for r in scope["records"]] == [1, 2] and [r["update"] for r in scope["more"]] == [3, 4]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("128 ") and "'env': 'doorkey-8x8', 'episodes': 8" in printed[-1]

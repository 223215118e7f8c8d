"""Reinforcement learning from Python: rims.rl_train writes the run `rims rl train` writes and
returns its update records, resumes it, stops cleanly when the progress callback raises;
rims.rl_evaluate plays the checkpoint; bad settings are RimsErrors naming what is wrong."""

import json
import shutil

import numpy as np
import pytest

import rims

TINY = dict(env="empty-5x5", frames=256, envs=4, steps=32, batch=64, recurrence=16, device="cpu")
KEYS = {
    "update", "frames", "fps", "collect_seconds", "update_seconds", "episodes", "mean_return", "success_rate",
    "mean_length", "policy_loss", "value_loss", "entropy", "approx_kl", "clipped", "grad_norm",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "empty"
    seen = []
    records = rims.rl_train(out, progress=seen.append, **TINY)
    return out, records, seen


def run_config(out):
    name = (out / "latest").read_text().strip()
    return json.loads((out / name / "rl.json").read_text())


def test_a_tiny_run_returns_its_update_records(run):
    out, records, seen = run
    assert [r["update"] for r in records] == [1, 2]
    assert [r["frames"] for r in records] == [128, 256]  # 4 envs x 32 steps per update
    for r in records:
        assert set(r) == KEYS
        assert all(np.isfinite(v) for v in r.values())
        assert 0 <= r["success_rate"] <= 1 and r["entropy"] > 0
    assert seen == records  # the callback got each record as a dict
    on_disk = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert on_disk == records
    cfg = run_config(out)["config"]
    assert (cfg["env"], cfg["model"], cfg["seed"], cfg["envs"], cfg["hidden"]) == ("empty-5x5", "rims", 1, 4, 16)


def test_resume_raises_the_frames(run, tmp_path):
    src, _, _ = run
    out = tmp_path / "copy"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns(".rims.lock"))  # the module's run stays as it was
    more = rims.rl_train(out, resume=True, frames=512, device="cpu")
    assert [r["update"] for r in more] == [3, 4]  # the records this call made
    assert [r["frames"] for r in more] == [384, 512]
    assert run_config(out)["config"]["frames"] == 512
    # The run's own settings; repeating them is fine, changing one is not.
    assert rims.rl_train(out, resume=True, env="empty-5x5", envs=4, device="cpu") == []
    with pytest.raises(rims.RimsError, match="its envs is 4, not 8"):
        rims.rl_train(out, resume=True, envs=8, frames=1024)
    with pytest.raises(rims.RimsError, match="already holds a checkpoint"):
        rims.rl_train(out, **TINY)


def test_evaluate_plays_the_checkpoint(run):
    out, _, _ = run
    r = rims.rl_evaluate(out, episodes=16, device="cpu")
    assert set(r) == {"env", "episodes", "mean_return", "success_rate", "mean_length"}
    assert r["env"] == "empty-5x5" and r["episodes"] == 16
    assert 0 <= r["success_rate"] <= 1 and 0 <= r["mean_return"] <= 1
    assert 1 <= r["mean_length"] <= 100  # empty-5x5 ends by 4 * 25 steps
    assert rims.rl_evaluate(out, episodes=16) == r  # the evaluation layouts and sampling are fixed
    greedy = rims.rl_evaluate(out, env="empty-6x6", episodes=8, greedy=True)
    assert greedy["env"] == "empty-6x6" and greedy["episodes"] == 8


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(batchsize=64), "unknown RL setting 'batchsize'"),
        (dict(batch=48), "batch"),  # 128 frames per update are not whole minibatches of 48
        (dict(env="maze-5x5"), "maze-5x5"),
        (dict(envs="four"), "RL setting 'envs'.*invalid type"),
        (dict(lr=-1.0), "lr"),
        (dict(model="transformer"), "transformer"),
    ],
)
def test_bad_settings_are_refused(tmp_path, bad, match):
    with pytest.raises(rims.RimsError, match=match):
        rims.rl_train(tmp_path / "bad", **dict(TINY, **bad))
    assert not (tmp_path / "bad" / "latest").exists()


def test_bad_evaluations_are_refused(run, tmp_path):
    out, _, _ = run
    for episodes in (0, -3, 70000):
        with pytest.raises(rims.RimsError, match="episodes"):
            rims.rl_evaluate(out, episodes=episodes)
    with pytest.raises(rims.RimsError, match="maze"):
        rims.rl_evaluate(out, env="maze-5x5", episodes=4)
    with pytest.raises(rims.RimsError, match="no checkpoint"):
        rims.rl_evaluate(tmp_path / "nothing", episodes=4)


def test_a_raising_callback_stops_the_run_with_its_checkpoint_kept(tmp_path):
    out = tmp_path / "stopped"
    seen = []

    def stop_after_one(record):
        seen.append(record)
        raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        rims.rl_train(out, progress=stop_after_one, checkpoint_every=1, **dict(TINY, frames=512))
    assert [r["update"] for r in seen] == [1]  # stopped after the first update
    state = run_config(out)
    assert state["progress"]["update"] == 1
    assert rims.rl_evaluate(out, episodes=4)["episodes"] == 4  # the checkpoint loads
    rest = rims.rl_train(out, resume=True)  # and the run goes on to its 512 frames
    assert [r["update"] for r in rest] == [2, 3, 4]

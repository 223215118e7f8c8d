"""The bouncing-balls task from Python: rims.train and rims.evaluate report the rollouts on
every evaluation set, and rims.Trainer steps a frame model on frames you make."""

import numpy as np
import pytest

import rims

TINY = dict(frame_size=8, frame_channels=[2, 2, 2], frame_dense=4, mechanisms=3, active=2, hidden=4,
            embed=4, batch=2, epochs=1, iterations=2, train_len=3, test_len=5, seed=2)


def test_train_and_evaluate_report_every_rollout_set(tmp_path):
    records = rims.train(tmp_path / "balls", "balls", **TINY)
    sets = {e["split"] for e in records[-1]["eval"]}
    assert sets == {"val", "test-4", "test-6-8", "test-curtain"}
    # A 5-frame rollout reports its frames 1 and 5: BCE summed over 64 pixels, positive.
    assert {e["size"] for e in records[-1]["eval"]} == {1, 5}
    assert all(e["loss"] > 0 and 0 <= e["accuracy"] <= 1 for e in records[-1]["eval"])
    longer = rims.evaluate(tmp_path / "balls", lengths=[15])
    assert {e["size"] for e in longer} == {1, 5, 10, 15}
    with pytest.raises(rims.RimsError, match="one rollout horizon"):
        rims.evaluate(tmp_path / "balls", lengths=[5, 15])
    with pytest.raises(rims.RimsError, match="resolutions are for smnist"):
        rims.evaluate(tmp_path / "balls", resolutions=[8])


def test_trainer_steps_a_frame_model_on_frames_you_make():
    settings = {k: v for k, v in TINY.items() if k not in ("epochs", "iterations", "test_len")}
    trainer = rims.Trainer("balls", lr=1e-2, **settings)
    rng = np.random.default_rng(0)
    frames = (rng.random((4, 2, 8, 8)) > 0.8).astype(np.float32)
    losses = [trainer.step(frames[:-1], frames[1:]) for _ in range(30)]
    # BCE over 64 pixels per frame starts near 64·ln 2 and falls on a fixed batch.
    assert 20 < losses[0] < 80, losses[0]
    assert losses[-1] < 0.8 * losses[0], losses
    with pytest.raises(rims.RimsError):
        trainer.step(frames[:-1], frames[1:, :, :4])

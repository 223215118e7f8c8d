"""Training from Python into a run directory, evaluating it, and stepping it with rims.Runner:
the steps equal the whole-sequence forward of the same weights through rims.torch.RIMs."""

import json

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs
from support import read_safetensors

SMALL = dict(mechanisms=3, active=2, hidden=4, embed=5, batch=4, epochs=2, iterations=3, eval_every=1,
             symbols=3, train_len=4, test_len=6, seed=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "copy"
    events = []
    records = rims.train(out, "copying", progress=events.append, **SMALL)
    return out, records, events


def checkpoint_weights(out):
    name = (out / "latest").read_text().strip()
    tensors, _ = read_safetensors(out / name / "model.safetensors")
    return tensors


def test_train_returns_the_runs_records_and_reports_progress(run):
    out, records, events = run
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["step"] == 6
    on_disk = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in on_disk] == [3, 6]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds.count("step") == 6 and kinds.count("evaluated") == 2
    assert all(np.isfinite(e["loss"]) for e in events if e["event"] == "step")
    sizes = {(e["split"], e["size"]) for e in records[-1]["eval"]}
    assert sizes == {("copy", 4), ("copy", 6)}


def test_evaluate_at_other_lengths(run):
    out, records, _ = run
    own = rims.evaluate(out)
    assert own == records[-1]["eval"]
    other = rims.evaluate(out, lengths=[5, 9])
    assert [e["size"] for e in other] == [5, 9]
    with pytest.raises(rims.RimsError, match="resolutions"):
        rims.evaluate(out, resolutions=[16])


def test_resume_grows_the_run(tmp_path):
    out = tmp_path / "r"
    rims.train(out, "copying", progress=False, **dict(SMALL, epochs=1))
    more = rims.train(out, resume=True, epochs=2, progress=False)
    assert [r["epoch"] for r in more] == [2]  # the records this call made
    with pytest.raises(rims.RimsError, match="only epochs"):
        rims.train(out, resume=True, lr=0.1, progress=False)


def test_runner_steps_equal_the_whole_sequence_forward(run):
    out, _, _ = run
    w = checkpoint_weights(out)
    runner = rims.Runner(out, batch=2)
    assert runner.batch == 2 and runner.device == "cpu"
    tokens = np.array([[1, 4], [2, 9], [3, 3], [0, 7], [5, 1]], dtype=np.int64)  # [T, B]
    steps = [runner.step(tok) for tok in tokens]
    assert runner.steps == len(tokens)

    layer = RIMs(5, 4, 3, 2, num_input_heads=1, input_key_size=16, input_value_size=16,
                 num_comm_heads=2, comm_key_size=8, comm_value_size=8, input_dropout=0.0, comm_dropout=0.0)
    with torch.no_grad():
        for name, p in list(layer.named_parameters()) + list(layer.named_buffers()):
            p.copy_(torch.from_numpy(w[name]))
        x = torch.from_numpy(w["embed"])[torch.from_numpy(tokens)]
        h, (_, c_last), masks = layer(x)
    logits = h.numpy() @ w["dec_w"] + w["dec_b"]
    for t, s in enumerate(steps):
        np.testing.assert_allclose(s["h"], h[t].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s["logits"], logits[t], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(s["masks"], masks[t].numpy())
    np.testing.assert_allclose(runner.state[1], c_last.numpy(), rtol=1e-5, atol=1e-6)


def test_runner_state_and_reset(run):
    out, _, _ = run
    runner = rims.Runner(out, batch=3)
    first = runner.step([1, 2, 3])
    h, c = runner.state
    np.testing.assert_array_equal(h, first["h"])
    second = runner.step(np.array([4, 5, 6]))
    runner.state = (h, c)  # back to after the first step
    again = runner.step([4, 5, 6])
    np.testing.assert_allclose(again["h"], second["h"], rtol=0, atol=0)
    runner.reset(rows=[1])
    h2, c2 = runner.state
    assert not h2[1].any() and not c2[1].any() and h2[0].any() and h2[2].any()
    runner.reset()
    assert not runner.state[0].any()
    fresh = rims.Runner(out, batch=3).step([1, 2, 3])
    np.testing.assert_array_equal(runner.step([1, 2, 3])["h"], fresh["h"])


def test_trainer_steps_lower_the_loss():
    trainer = rims.Trainer("copying", mechanisms=3, active=2, hidden=8, embed=8, batch=8, seed=1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 9, size=(6, 8))
    losses = [trainer.step(tokens, tokens.reshape(-1)) for _ in range(25)]
    assert trainer.steps == 25
    assert losses[-1] < 0.8 * losses[0], losses

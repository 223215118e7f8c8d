"""Bad input is a Python exception naming what is wrong, never a crash: tensors on another
device, wrong dtypes and shapes, non-finite values, impossible configs, missing files."""

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs


@pytest.fixture
def layer():
    return RIMs(4, 3, 3, 2, input_key_size=4, input_value_size=5, comm_key_size=3)


def test_tensors_not_on_the_cpu_name_the_argument(layer):
    x = torch.zeros(2, 1, 4, device="meta")  # stands in for a CUDA tensor on a machine without one
    with pytest.raises(rims.RimsError, match=r"x is on meta.*x\.cpu\(\)"):
        layer(x)


def test_wrong_dtype_shape_and_values_name_the_argument(layer):
    with pytest.raises(TypeError, match="x must be float32, got torch.float64"):
        layer(torch.zeros(2, 1, 4, dtype=torch.float64))
    with pytest.raises(rims.RimsError, match=r"x must be \[T, B, input_size=4\]"):
        layer(torch.zeros(2, 1, 5))
    with pytest.raises(rims.RimsError, match=r"x must be \[T, B, input_size=4\]"):
        layer(torch.zeros(2, 4))
    bad = torch.zeros(2, 1, 4)
    bad[1, 0, 2] = float("nan")
    with pytest.raises(rims.RimsError, match="x holds a value that is not finite"):
        layer(bad)
    with pytest.raises(rims.RimsError, match=r"h0 must have shape \[1, 9\]"):
        layer(torch.zeros(2, 1, 4), (torch.zeros(1, 8), torch.zeros(1, 9)))
    with pytest.raises(rims.RimsError, match="state must be a tuple"):
        layer(torch.zeros(2, 1, 4), torch.zeros(1, 9))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        layer(np.zeros((2, 1, 4), dtype=np.float32))
    with pytest.raises(rims.RimsError, match="T, B > 0"):
        layer(torch.zeros(0, 1, 4))


def test_a_parameter_made_non_finite_is_named(layer):
    with torch.no_grad():
        layer.rnn_wh[0, 0, 0] = float("inf")
    with pytest.raises(rims.RimsError, match="rnn_wh holds a value that is not finite"):
        layer(torch.zeros(2, 1, 4))


def test_a_gru_layer_refuses_a_cell_state():
    gru = RIMs(4, 3, 3, 2, rnn_cell="GRU", input_key_size=4, input_value_size=5, comm_key_size=3)
    with pytest.raises(rims.RimsError, match="c0 must be None"):
        gru(torch.zeros(2, 1, 4), (torch.zeros(1, 9), torch.zeros(1, 9)))
    h, (h_last, c_last), _ = gru(torch.zeros(2, 1, 4), (torch.zeros(1, 9), None))
    assert c_last is None and h_last.shape == (1, 9)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=4), "active"),
        (dict(k=0), "active"),
        (dict(rnn_cell="RNN"), "rnn_cell"),
        (dict(variant="mine"), "variant"),
        (dict(input_dropout=0.1, comm_dropout=0.2), "one dropout"),
        (dict(device="cuda"), "cpu' or 'gpu'"),
        (dict(device="tpu"), "device must be"),
        (dict(input_dropout=1.5, comm_dropout=1.5), "dropout"),
        (dict(num_units=100), "mechanisms|N"),
    ],
)
def test_impossible_configs_are_refused(kwargs, match):
    args = dict(input_size=4, hidden_size=3, num_units=3, k=2, input_key_size=4, input_value_size=5, comm_key_size=3)
    args.update(kwargs)
    with pytest.raises(rims.RimsError, match=match):
        RIMs(**args)


def test_backward_after_an_in_place_update_is_refused(layer):
    h, _, _ = layer(torch.zeros(2, 1, 4))
    with torch.no_grad():
        layer.rnn_wx.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        h.sum().backward()


def test_missing_and_bad_run_directories(tmp_path):
    with pytest.raises((FileNotFoundError, rims.RimsError)):
        rims.Runner(tmp_path / "nothing")
    with pytest.raises((FileNotFoundError, rims.RimsError)):
        rims.evaluate(tmp_path / "nothing")
    with pytest.raises(rims.RimsError, match="not a setting"):
        rims.train(tmp_path / "r", "copying", progress=False, epocs=3)
    with pytest.raises(rims.RimsError, match="task"):
        rims.train(tmp_path / "r", "chess", progress=False)
    with pytest.raises(rims.RimsError, match="active|mechanisms"):
        rims.Trainer("copying", mechanisms=2, active=3)
    with pytest.raises(rims.RimsError, match="preset"):
        rims.Trainer("copying", preset="huge")


def test_runner_inputs_are_checked(tmp_path):
    out = tmp_path / "run"
    rims.train(out, "copying", progress=False, mechanisms=2, active=1, hidden=3, embed=4, batch=2,
               epochs=1, iterations=1, symbols=2, train_len=3, test_len=3)
    r = rims.Runner(out, batch=2)
    with pytest.raises(rims.RimsError, match="one token per batch row"):
        r.step([1, 2, 3])
    with pytest.raises(rims.RimsError, match="not below the vocabulary"):
        r.step([1, 999])
    with pytest.raises(rims.RimsError, match="non-negative"):
        r.step([1, -2])
    with pytest.raises(rims.RimsError, match="row 5"):
        r.reset(rows=[5])
    with pytest.raises(rims.RimsError, match=r"h must have shape \[2, 6\]"):
        r.state = (np.zeros((2, 5), np.float32), np.zeros((2, 6), np.float32))
    with pytest.raises(rims.RimsError, match="needs c"):
        r.state = np.zeros((2, 6), np.float32)
    with pytest.raises(rims.RimsError, match="batch size must be at least 1"):
        rims.Runner(out, batch=0)


def test_a_run_is_never_started_inside_another_or_with_rims_settings_for_a_dense_model(tmp_path):
    out = tmp_path / "run"
    tiny = dict(progress=False, mechanisms=2, active=1, hidden=3, embed=4, batch=2, epochs=1,
                iterations=1, symbols=2, train_len=3, test_len=3)
    rims.train(out, "copying", **tiny)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(rims.RimsError, match="lies inside the run directory"):
        rims.train(out / "epoch-000099", "copying", **tiny)
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(rims.RimsError, match="mechanisms: a RIMs setting, given for a dense lstm"):
        rims.train(tmp_path / "dense", "copying", model="lstm", **tiny)


def test_progress_callback_errors_stop_the_run_and_are_raised(tmp_path):
    seen = []

    def stop(event):
        seen.append(event["event"])
        if event["event"] == "step":
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        rims.train(tmp_path / "r", "copying", progress=stop, mechanisms=2, active=1, hidden=3, embed=4,
                   batch=2, epochs=1, iterations=50, symbols=2, train_len=3, test_len=3)
    assert seen == ["started", "step"]

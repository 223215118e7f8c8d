"""rims.torch.RIMs reproduces the two PyTorch codes: the committed golden fixtures (made by
running the real BlocksCore and RIMCell, tools/pytorch/make_fixtures.py) give, through the
layer, the same per-step h, c and masks, and the gradients of the fixture's loss
L = sum_t <h_t, wh[t]> + <c_T, wc> for every parameter and for x, h0 and c0, at the Rust
tests' tolerances (tests/ops/pytorch_golden.rs)."""

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs
from support import FIXTURES, assert_close, read_safetensors, section

CASES = [
    ("authors_lstm.safetensors", "authors"),
    ("authors_gru.safetensors", "authors"),
    ("dido_lstm.safetensors", "dido"),
    ("dido_gru.safetensors", "dido"),
]


def load(file, source):
    tensors, meta = read_safetensors(FIXTURES / file)
    k = int(meta["k"])
    layer = RIMs.from_pytorch(section(tensors, "state"), source, k)
    return tensors, meta, layer


def scale(v):
    return max(float(np.abs(v).max()), 1e-3)


@pytest.mark.parametrize("file,source", CASES)
def test_forward_and_gradients_match_the_pytorch_code(file, source):
    tensors, meta, layer = load(file, source)
    lstm = meta["cell"] == "LSTM"
    assert layer.variant == source and layer.rnn_cell == meta["cell"]
    layer.eval()
    f32 = lambda name: torch.tensor(tensors[name], dtype=torch.float32)
    x = f32("input.x").requires_grad_()
    h0 = f32("input.h0").requires_grad_()
    c0 = f32("input.c0").requires_grad_() if lstm else None
    h, (h_last, c_last), masks = layer(x, (h0, c0))

    np.testing.assert_array_equal(masks.numpy(), tensors["output.mask"], err_msg=f"{file}: masks")
    assert_close(f"{file} h", h.detach(), tensors["output.h"], 1e-6, 1e-5)
    assert_close(f"{file} h_T", h_last.detach(), tensors["output.h"][-1], 1e-6, 1e-5)
    loss = (h * f32("loss.wh")).sum()
    if lstm:
        assert_close(f"{file} c_T", c_last.detach(), tensors["output.c"][-1], 1e-6, 1e-5)
        loss = loss + (c_last * f32("loss.wc")).sum()
    else:
        assert c_last is None
    loss.backward()

    # PyTorch's parameter gradients, mapped to the canonical layout as the weights are (for
    # the authors only the diagonal blocks of their dense matrices, docs/spec.md §1.4 (a)).
    grads = {k: v for k, v in section(tensors, "grad").items() if k not in ("x", "h0", "c0")}
    want = rims.import_weights(grads, source, int(meta["k"]))["cell"]
    compared = 0
    for name, p in layer.named_parameters():
        assert p.grad is not None, f"{file}: no gradient for {name}"
        w = want[name]
        assert_close(f"{file} d{name}", p.grad, w, 2e-6 * scale(w), 1e-5)
        compared += 1
    assert compared >= 9
    for name, var in (("x", x), ("h0", h0)) + ((("c0", c0),) if lstm else ()):
        w = tensors[f"grad.{name}"]
        assert np.abs(w).max() > 0
        assert_close(f"{file} d{name}", var.grad, w, 2e-6 * scale(w), 1e-5)


@pytest.mark.parametrize("file,source", CASES)
def test_step_by_step_calls_give_every_steps_state(file, source):
    # T calls of one step, each from the last one's (h_T, c_T): per-step h and c as the code.
    tensors, meta, layer = load(file, source)
    layer.eval()
    lstm = meta["cell"] == "LSTM"
    x = torch.tensor(tensors["input.x"], dtype=torch.float32)
    state = (
        torch.tensor(tensors["input.h0"], dtype=torch.float32),
        torch.tensor(tensors["input.c0"], dtype=torch.float32) if lstm else None,
    )
    with torch.no_grad():
        for t in range(x.shape[0]):
            h, state, masks = layer(x[t : t + 1], state)
            assert_close(f"{file} h[{t}]", h[0], tensors["output.h"][t], 1e-6, 1e-5)
            np.testing.assert_array_equal(masks[0].numpy(), tensors["output.mask"][t])
            if lstm:
                assert_close(f"{file} c[{t}]", state[1], tensors["output.c"][t], 1e-6, 1e-5)

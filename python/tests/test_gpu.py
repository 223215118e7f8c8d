"""The layer on the engine's GPU device (WGSL through wgpu; Mesa's llvmpipe on a machine without
a GPU) computes what the CPU device does: a golden fixture's forward and gradients. Without an
adapter the test is skipped with a message, and fails under CI=true: a missing device there is
a failure."""

import os

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs
from support import FIXTURES, read_safetensors, section


def gpu_or_skip():
    try:
        return rims.device_info("gpu")
    except rims.RimsError as e:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"CI=true and no GPU adapter could be opened: {e}")
        pytest.skip(f"SKIPPING GPU TEST: no GPU adapter ({e})")


@pytest.mark.parametrize("file,source", [("dido_lstm.safetensors", "dido"), ("authors_gru.safetensors", "authors")])
def test_the_gpu_device_matches_the_cpu_device(file, source):
    gpu_or_skip()
    tensors, meta = read_safetensors(FIXTURES / file)
    state = section(tensors, "state")
    k = int(meta["k"])
    results = []
    for device in ("cpu", "gpu"):
        layer = RIMs.from_pytorch(state, source, k, device=device)
        assert layer.device_kind == device
        layer.eval()
        x = torch.tensor(tensors["input.x"], dtype=torch.float32, requires_grad=True)
        h0 = torch.tensor(tensors["input.h0"], dtype=torch.float32)
        c0 = torch.tensor(tensors["input.c0"], dtype=torch.float32) if layer.rnn_cell == "LSTM" else None
        h, _, masks = layer(x, (h0, c0))
        (h * torch.tensor(tensors["loss.wh"], dtype=torch.float32)).sum().backward()
        grads = [x.grad] + [p.grad for p in layer.parameters()]
        results.append((h.detach(), masks, grads))
    (h_cpu, m_cpu, g_cpu), (h_gpu, m_gpu, g_gpu) = results
    np.testing.assert_array_equal(m_gpu.numpy(), m_cpu.numpy())
    torch.testing.assert_close(h_gpu, h_cpu, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_gpu, g_cpu):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()) + 1e-7)
    np.testing.assert_allclose(h_cpu.numpy(), tensors["output.h"], rtol=1e-5, atol=1e-6)

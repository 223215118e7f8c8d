"""The engine in a Python process: it releases the GIL while it works, its CPU thread count is
settable, and a process that forks after using it (a torch DataLoader with workers) does not
hang: the child can step."""

import os
import threading
import time

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs


def small_layer():
    layer = RIMs(8, 16, 4, 2, input_key_size=8, input_value_size=8, comm_key_size=8, seed=1)
    layer.eval()
    return layer


def threaded_layer():
    """A layer big enough that the CPU device's kernels spread over its thread pool."""
    layer = RIMs(64, 64, 6, 4, input_key_size=32, input_value_size=64, comm_key_size=16, seed=1)
    layer.eval()
    return layer


def test_the_gil_is_released_during_a_long_forward():
    layer = threaded_layer()
    x = torch.randn(300, 32, 64)
    with torch.no_grad():
        layer(x[:2])  # warm up
        start = time.perf_counter()
        layer(x)
        alone = time.perf_counter() - start
    ticks = []
    worker = threading.Thread(target=lambda: layer(x))
    with torch.no_grad():
        worker.start()
        while worker.is_alive():
            ticks.append(time.perf_counter())
        worker.join()
    # With the GIL held for the whole call, this loop would stall for all of it.
    gaps = np.diff(ticks) if len(ticks) > 1 else np.array([alone])
    assert alone > 0.05, f"the forward is too short to tell ({alone:.3f} s)"
    assert len(ticks) > 1000 and gaps.max() < 0.5 * alone, (len(ticks), gaps.max(), alone)


def test_set_num_threads():
    before = rims.get_num_threads()
    try:
        rims.set_num_threads(1)
        assert rims.get_num_threads() == 1
        layer = small_layer()
        x = torch.randn(5, 3, 8)
        one = layer(x)[0]
        rims.set_num_threads(2)
        assert rims.get_num_threads() == 2
        torch.testing.assert_close(layer(x)[0], one, rtol=0, atol=0)  # any thread count, same bits
        with pytest.raises(rims.RimsError, match="thread count"):
            rims.set_num_threads(0)
    finally:
        rims.set_num_threads(before)
    assert "CPU" in rims.device_info("cpu")


def wait_for(pid, seconds=int(os.environ.get("RIMS_TEST_FORK_WAIT", "120"))):
    deadline = time.time() + seconds
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {seconds} s (hung)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_can_step(tmp_path):
    layer = threaded_layer()
    x = torch.randn(6, 32, 64)
    with torch.no_grad():
        want = layer(x)[0].numpy()  # the parent's pool is running now
    out = tmp_path / "run"
    rims.train(out, "copying", progress=False, mechanisms=2, active=1, hidden=3, embed=4, batch=2,
               epochs=1, iterations=1, symbols=2, train_len=3, test_len=3)
    parent_step = rims.Runner(out, batch=2).step([1, 2])["logits"]
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if every check passed
        code = 1
        try:
            with torch.no_grad():
                same = np.array_equal(layer(x)[0].numpy(), want)  # an object from before the fork
            h = threaded_layer()(x)[0]  # a new one
            logits = rims.Runner(out, batch=2).step([1, 2])["logits"]
            code = 0 if same and h.shape == (6, 32, 384) and np.array_equal(logits, parent_step) else 2
        finally:
            os._exit(code)
    assert wait_for(pid) == 0
    with torch.no_grad():
        np.testing.assert_array_equal(layer(x)[0].numpy(), want)  # the parent goes on


class Sequences(torch.utils.data.Dataset):
    """Each item runs the engine in the DataLoader's worker process."""

    def __init__(self):
        self.layer = threaded_layer()

    def __len__(self):
        return 4

    def __getitem__(self, i):
        with torch.no_grad():
            x = torch.full((4, 32, 64), float(i) / 4)
            return self.layer(x)[0][-1, 0]


def test_dataloader_workers_after_the_engine_ran():
    data = Sequences()
    with torch.no_grad():
        want = torch.stack([data[i] for i in range(4)])  # the engine runs in the parent first
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2, timeout=120)
    got = torch.cat([b for b in loader])
    torch.testing.assert_close(got, want, rtol=0, atol=0)

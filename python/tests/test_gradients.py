"""The layer's gradients by themselves: against central finite differences of its own forward
(k = N, so no top-k selection switches), truncated BPTT across two segments with the state
carried (not detached) equal to one sequence, and dropout drawn from torch's seed stream."""

import numpy as np
import pytest
import torch

from rims.torch import RIMs

TINY = dict(input_size=4, hidden_size=3, num_units=3, k=3, input_key_size=4, input_value_size=5,
            num_comm_heads=2, comm_key_size=3, input_dropout=0.0, comm_dropout=0.0)


def make(cell, variant, **kw):
    args = dict(TINY, rnn_cell=cell, variant=variant, seed=3)
    args.update(kw)
    layer = RIMs(**args)
    with torch.no_grad():  # larger weights than the 0.01 init, so every path matters
        g = torch.Generator().manual_seed(4)
        for p in layer.parameters():
            p.copy_(0.4 * torch.randn(p.shape, generator=g))
    return layer


def loss_of(layer, x, h0, c0, wh, wc):
    h, (_, c_last), _ = layer(x, (h0, c0))
    loss = (h * wh).sum()
    if c_last is not None:
        loss = loss + (c_last * wc).sum()
    return loss


@pytest.mark.parametrize("cell,variant", [("LSTM", "authors"), ("GRU", "authors"), ("LSTM", "dido"), ("GRU", "dido")])
def test_gradients_match_finite_differences(cell, variant):
    layer = make(cell, variant)
    g = torch.Generator().manual_seed(1)
    t_len, b, nh = 4, 2, 9
    x = torch.randn(t_len, b, 4, generator=g, requires_grad=True)
    h0 = (0.5 * torch.randn(b, nh, generator=g)).requires_grad_()
    c0 = (0.5 * torch.randn(b, nh, generator=g)).requires_grad_() if cell == "LSTM" else None
    wh, wc = torch.randn(t_len, b, nh, generator=g), torch.randn(b, nh, generator=g)
    loss = loss_of(layer, x, h0, c0, wh, wc)
    loss.backward()
    # The loss is f32: a difference quotient cannot resolve less than a few ulps of it over 2·eps.
    resolution = 8 * abs(loss.item()) * 2.0**-23 / (2 * 1e-2)
    checks = [("x", x)] + [("h0", h0)] + ([("c0", c0)] if c0 is not None else [])
    checks += list(layer.named_parameters())
    rng = np.random.default_rng(2)
    eps = 1e-2
    for name, var in checks:
        analytic = var.grad.detach().numpy().reshape(-1)
        scale = max(float(np.abs(analytic).max()), 1e-2)
        flat = var.data.view(-1)
        for i in rng.choice(flat.numel(), size=min(6, flat.numel()), replace=False):
            old = flat[i].item()
            with torch.no_grad():
                flat[i] = old + eps
                up = loss_of(layer, x, h0, c0, wh, wc).item()
                flat[i] = old - eps
                down = loss_of(layer, x, h0, c0, wh, wc).item()
                flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - analytic[i]) <= 3e-3 * scale + 2e-2 * abs(numeric) + resolution, (
                f"{cell}/{variant} d{name}[{i}]: engine {analytic[i]:.6f}, finite differences {numeric:.6f}"
            )


@pytest.mark.parametrize("cell,variant", [("LSTM", "authors"), ("GRU", "dido")])
def test_two_segments_with_a_carried_state_equal_one_sequence(cell, variant):
    layer = make(cell, variant, k=2)
    g = torch.Generator().manual_seed(7)
    t_len, t1, b, nh = 6, 2, 3, 9
    x = torch.randn(t_len, b, 4, generator=g)
    wh, wc = torch.randn(t_len, b, nh, generator=g), torch.randn(b, nh, generator=g)
    h0 = 0.5 * torch.randn(b, nh, generator=g)
    c0 = 0.5 * torch.randn(b, nh, generator=g) if cell == "LSTM" else None

    def run(split):
        layer.zero_grad()
        xs = x.clone().requires_grad_()
        h0v = h0.clone().requires_grad_()
        c0v = c0.clone().requires_grad_() if c0 is not None else None
        if split:
            h1, state, _ = layer(xs[:t1], (h0v, c0v))  # the state is NOT detached
            h2, (h_last, c_last), _ = layer(xs[t1:], state)
            h = torch.cat([h1, h2])
        else:
            h, (h_last, c_last), _ = layer(xs, (h0v, c0v))
        loss = (h * wh).sum() + (h_last * wc).sum()
        if c_last is not None:
            loss = loss + (c_last * wc).sum()
        loss.backward()
        grads = [xs.grad, h0v.grad] + ([c0v.grad] if c0v is not None else [])
        grads += [p.grad.clone() for p in layer.parameters()]
        return h.detach(), grads

    h_one, g_one = run(False)
    h_two, g_two = run(True)
    torch.testing.assert_close(h_two, h_one, rtol=1e-5, atol=1e-6)
    assert any(g.abs().max() > 0 for g in g_one)
    for i, (a, b_) in enumerate(zip(g_two, g_one)):
        torch.testing.assert_close(a, b_, rtol=1e-4, atol=1e-5, msg=f"gradient {i}")


def test_dropout_follows_torchs_seed_and_eval_mode():
    layer = make("LSTM", "authors", input_dropout=0.3, comm_dropout=0.3)
    x = torch.randn(5, 2, 4, generator=torch.Generator().manual_seed(3))
    layer.train()
    torch.manual_seed(11)
    a = layer(x)[0]
    torch.manual_seed(11)
    b = layer(x)[0]
    c = layer(x)[0]
    layer.eval()
    e1, e2 = layer(x)[0], layer(x)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # same seed, same masks
    assert (a - c).abs().max() > 1e-4  # the next draw differs
    torch.testing.assert_close(e1, e2, rtol=0, atol=0)  # no dropout in eval mode
    assert (a - e1).abs().max() > 1e-4

"""The same training step two ways: a torch model around rims.torch.RIMs with torch.optim.Adam,
and the engine's own step (rims.Trainer, the step `rims train` takes), from the same initial
parameters on the same batches, give the same parameters afterwards."""

import numpy as np
import pytest
import torch
from torch import nn

import rims
from rims.torch import RIMs
from support import assert_close

SIZES = dict(mechanisms=3, active=2, hidden=5, embed=6, batch=4)


class CopyModel(nn.Module):
    """The engine's copying model in torch: embedding -> RIMs -> linear decoder at every step."""

    def __init__(self, cfg, weights):
        super().__init__()
        v, d = weights["embed"].shape
        self.embed = nn.Embedding(v, d)
        self.rims = RIMs(
            d,
            cfg["hidden"],
            cfg["mechanisms"],
            cfg["active"],
            rnn_cell=cfg["cell"].upper(),
            variant=cfg["variant"],
            num_input_heads=cfg["input_heads"],
            input_key_size=cfg["input_key"],
            input_value_size=cfg["input_value"],
            num_comm_heads=cfg["comm_heads"],
            comm_key_size=cfg["comm_key"],
            comm_value_size=cfg["comm_value"],
            input_dropout=0.0,
            comm_dropout=0.0,
        )
        nh, classes = weights["dec_w"].shape
        self.decoder = nn.Linear(nh, classes)
        with torch.no_grad():
            self.embed.weight.copy_(torch.from_numpy(weights["embed"]))
            self.decoder.weight.copy_(torch.from_numpy(weights["dec_w"].T.copy()))
            self.decoder.bias.copy_(torch.from_numpy(weights["dec_b"]))
            for name, p in list(self.rims.named_parameters()) + list(self.rims.named_buffers()):
                p.copy_(torch.from_numpy(weights[name]))

    def forward(self, tokens):
        h, _, _ = self.rims(self.embed(tokens))
        return self.decoder(h)

    def weights(self):
        out = {name: p.detach().numpy() for name, p in self.rims.named_parameters()}
        out["embed"] = self.embed.weight.detach().numpy()
        out["dec_w"] = self.decoder.weight.detach().numpy().T
        out["dec_b"] = self.decoder.bias.detach().numpy()
        return out


@pytest.mark.parametrize("cell,variant", [("lstm", "authors"), ("gru", "authors"), ("lstm", "dido")])
def test_torch_adam_step_equals_the_engines_step(cell, variant):
    trainer = rims.Trainer(
        "copying", cell=cell, variant=variant, dropout=0.0, cell_dropout=0.0, clip=0, seed=5, **SIZES
    )
    cfg = trainer.config
    model = CopyModel(cfg, trainer.weights())
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    rng = np.random.default_rng(9)
    t_len, b = 7, SIZES["batch"]
    for step in range(3):
        tokens = rng.integers(0, 20, size=(t_len, b)).astype(np.uint32)
        targets = rng.integers(0, 20, size=(t_len * b,)).astype(np.uint32)
        engine_loss = trainer.step(tokens, targets)
        opt.zero_grad()
        logits = model(torch.from_numpy(tokens.astype(np.int64)))
        loss = nn.functional.cross_entropy(logits.reshape(t_len * b, -1), torch.from_numpy(targets.astype(np.int64)))
        loss.backward()
        opt.step()
        assert abs(loss.item() - engine_loss) < 1e-5 * max(1.0, abs(engine_loss)), (step, loss.item(), engine_loss)
        engine, torch_side = trainer.weights(), model.weights()
        # Adam's step is lr·m/(sqrt(v) + eps): for a gradient near eps (1e-8) it turns the f32
        # rounding of the gradient (another summation order) into up to ~lr·1e-3 of a step.
        atol = 2e-3 * cfg["lr"]
        for name, want in engine.items():
            if name in torch_side:
                assert_close(f"{cell}/{variant} step {step + 1}: {name}", torch_side[name], want, atol, 1e-4)

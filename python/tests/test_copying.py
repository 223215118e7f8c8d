"""A small torch model (embedding -> rims.torch.RIMs -> nn.Linear) learns the copying task: the
layer's gradients are good enough to train with a torch optimiser."""

import numpy as np
import torch
from torch import nn

from rims.torch import RIMs

SYMBOLS, COPY, GAP = 4, 3, 4  # copy 3 symbols from 1..4 over a gap of 4 blanks
BLANK, MARKER = 0, SYMBOLS + 1
VOCAB = SYMBOLS + 2


def batch(rng, b):
    """Inputs [T, B] and targets [T, B]: symbols, blanks, the marker, blanks to recall into;
    the targets are blank everywhere but the recall, which repeats the symbols."""
    seq = rng.integers(1, SYMBOLS + 1, size=(COPY, b))
    t_len = COPY + GAP + 1 + COPY
    x = np.full((t_len, b), BLANK)
    x[:COPY] = seq
    x[COPY + GAP] = MARKER
    y = np.full((t_len, b), BLANK)
    y[-COPY:] = seq
    return torch.from_numpy(x), torch.from_numpy(y)


class Copier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.rims = RIMs(8, 16, 4, 3, input_key_size=16, input_value_size=16, num_comm_heads=2,
                         comm_key_size=8, input_dropout=0.0, comm_dropout=0.0, seed=1)
        with torch.no_grad():  # the engine's main job starts the input attention 20x larger
            for name in ("in_q", "in_k_w", "in_v_w"):
                getattr(self.rims, name).mul_(20.0)
        self.out = nn.Linear(64, VOCAB)

    def forward(self, x):
        h, _, _ = self.rims(self.embed(x))
        return self.out(h)


def test_a_torch_model_around_the_layer_learns_copying():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Copier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(800):
        x, y = batch(rng, 32)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x, y = batch(np.random.default_rng(99), 256)
        pred = model(x).argmax(-1)
    accuracy = (pred[-COPY:] == y[-COPY:]).float().mean().item()
    assert accuracy > 0.9, f"copied-segment accuracy {accuracy:.3f} (chance 0.25)"

"""``rims.torch.RIMs``: a RIMs layer as a ``torch.nn.Module`` whose forward and backward the
rims engine computes.

The parameters are ``nn.Parameter`` s under the canonical names of docs/spec.md §4 (``in_q``,
``rnn_wx``, ``comm_q``, ...), so torch optimisers, clipping, ``state_dict()`` and
``load_state_dict()`` work as for any module; the variant's frozen tensors (the authors' zero
input-attention biases) are buffers. The whole sequence is one engine call: the gradients of
x, of the initial state, of every parameter, and those flowing into the final state (truncated
BPTT with a carried, non-detached state) come back from the engine's backward.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import nn

from . import RimsError, _rims, export_weights, import_weights

__all__ = ["RIMs"]

_CELLS = ("LSTM", "GRU")
_VARIANTS = ("authors", "dido")


def _numpy(name: str, t: torch.Tensor, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """A float32 CPU tensor's values as a contiguous array (no copy when already so)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise RimsError(
            f"{name} is on {t.device}; rims.torch.RIMs computes on the rims engine's own device "
            f"(device='cpu' or 'gpu' when made) and reads CPU tensors: pass {name}.cpu()"
        )
    if t.dtype != torch.float32:
        raise TypeError(f"{name} must be float32, got {t.dtype}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise RimsError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
    return t.detach().contiguous().numpy()


class _RimsSequence(torch.autograd.Function):
    """One whole-sequence engine call; its backward is the engine's."""

    @staticmethod
    def forward(ctx, layer: "RIMs", x, h0, c0, *params):  # type: ignore[override]
        core = layer._core
        record = any(ctx.needs_input_grad[1:])
        training = layer.training and layer.dropout > 0
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) if training else 0
        arrays = [_numpy(name, p) for name, p in zip(layer._names, params)]
        h, h_last, c_last, masks, pending = core.forward(
            _numpy("x", x),
            None if h0 is None else _numpy("h0", h0),
            None if c0 is None else _numpy("c0", c0),
            arrays,
            training,
            seed,
            record,
            bool(ctx.needs_input_grad[1]),
        )
        ctx.pending = pending
        ctx.has_state = (h0 is not None, c0 is not None)
        ctx.trainable = layer._trainable
        ctx.save_for_backward(*params)  # so torch refuses a backward after an in-place update
        ctx.set_materialize_grads(False)
        outs = [torch.from_numpy(h), torch.from_numpy(h_last)]
        c_out = torch.from_numpy(c_last) if c_last is not None else torch.empty(0)
        masks_t = torch.from_numpy(masks)
        # One call: each call replaces the set of non-differentiable outputs.
        ctx.mark_non_differentiable(*([masks_t] if c_last is not None else [masks_t, c_out]))
        return outs[0], outs[1], c_out, masks_t

    @staticmethod
    def backward(ctx, gh, gh_last, gc_last, _gmasks):  # type: ignore[override]
        ctx.saved_tensors  # the version check of the parameters
        if ctx.pending is None:
            raise RuntimeError("rims: this forward was run without recording a backward")
        as_np = lambda name, g: None if g is None or g.numel() == 0 else _numpy(name, g.float())
        dx, dh0, dc0, grads = ctx.pending.backward(
            as_np("grad of h", gh), as_np("grad of h_T", gh_last), as_np("grad of c_T", gc_last)
        )
        ctx.pending = None
        it = iter(grads)
        param_grads = [torch.from_numpy(next(it)) if trainable else None for trainable in ctx.trainable]
        t = lambda a, wanted: torch.from_numpy(a) if (a is not None and wanted) else None
        return (
            None,
            t(dx, ctx.needs_input_grad[1]),
            t(dh0, ctx.has_state[0]),
            t(dc0, ctx.has_state[1]),
            *param_grads,
        )


class RIMs(nn.Module):
    """Recurrent Independent Mechanisms over a whole sequence, computed by the rims engine.

    ``h, (h_T, c_T), masks = layer(x, state=None)`` with x [T, B, input_size] float32 and
    ``state = (h0, c0)``, each [B, num_units*hidden_size] (``c0`` None for GRU cells); h is
    [T, B, num_units*hidden_size] (mechanism j owns columns [j*H, (j+1)*H)), ``c_T`` is None
    for GRU cells, masks [T, B, num_units] of 0/1 (active mechanisms). Zeros when ``state`` is
    None.

    The keywords follow dido1998's ``RIMCell`` (and its defaults where they apply):
    ``variant="authors"`` computes the authors' ``BlocksCore`` (docs/spec.md §1), ``"dido"``
    dido's ``RIMCell`` (§3). The engine applies one dropout to the input attention's output
    and to the communication, so ``input_dropout`` and ``comm_dropout`` must be equal;
    ``comm_value_size`` defaults to ``hidden_size`` for dido (which forces it) and to
    ``comm_key_size`` for the authors. ``device`` is the engine's: ``"cpu"`` (its native CPU
    device) or ``"gpu"`` (WGSL through wgpu); tensors stay on torch's CPU either way.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_units: int,
        k: int,
        rnn_cell: str = "LSTM",
        variant: str = "authors",
        num_input_heads: int = 1,
        input_key_size: int = 64,
        input_value_size: int = 400,
        num_comm_heads: int = 4,
        comm_key_size: int = 32,
        comm_value_size: Optional[int] = None,
        input_dropout: float = 0.1,
        comm_dropout: float = 0.1,
        device: str = "cpu",
        seed: Optional[int] = None,
    ):
        super().__init__()
        cell = str(rnn_cell).upper()
        if cell not in _CELLS:
            raise RimsError(f"rnn_cell must be 'LSTM' or 'GRU', got {rnn_cell!r}")
        if variant not in _VARIANTS:
            raise RimsError(f"variant must be 'authors' or 'dido', got {variant!r}")
        if input_dropout != comm_dropout:
            raise RimsError(
                f"input_dropout ({input_dropout}) and comm_dropout ({comm_dropout}) differ: the engine "
                "applies one dropout to both; give them one value"
            )
        if comm_value_size is None:
            comm_value_size = hidden_size if variant == "dido" else comm_key_size
        config = {
            "input": input_size,
            "hidden": hidden_size,
            "mechanisms": num_units,
            "active": k,
            "cell": cell,
            "variant": variant,
            "input_heads": num_input_heads,
            "input_key": input_key_size,
            "input_value": input_value_size,
            "comm_heads": num_comm_heads,
            "comm_key": comm_key_size,
            "comm_value": comm_value_size,
            "dropout": float(input_dropout),
        }
        self._core = _rims.Layer(config, device)
        self.input_size, self.hidden_size, self.num_units, self.k = input_size, hidden_size, num_units, k
        self.rnn_cell, self.variant, self.dropout = cell, variant, float(input_dropout)
        specs = self._core.param_specs()
        self._names = [name for name, _, _ in specs]
        self._trainable = [trainable for _, _, trainable in specs]
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        init = self._core.initial_params(int(seed))
        for name, _, trainable in specs:
            value = torch.from_numpy(np.array(init[name]))
            if trainable:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    @property
    def engine_config(self) -> Dict[str, Any]:
        """The layer's sizes under the engine's names (docs/spec.md §0)."""
        return dict(self._core.config)

    @property
    def device_kind(self) -> str:
        """The engine device: "cpu" or "gpu"."""
        return self._core.device

    def extra_repr(self) -> str:
        c = self._core.config
        return (
            f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_units={self.num_units}, "
            f"k={self.k}, rnn_cell={self.rnn_cell!r}, variant={self.variant!r}, "
            f"device={self._core.device!r}, heads=({c['input_heads']}, {c['comm_heads']})"
        )

    def forward(self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, Optional[torch.Tensor]]] = None):
        width = self.num_units * self.hidden_size
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise RimsError(f"x must be [T, B, input_size={self.input_size}], got {list(x.shape)}")
        h0 = c0 = None
        if state is not None:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise RimsError("state must be a tuple (h0, c0) (c0 None for GRU cells)")
            h0, c0 = state
            batch = x.shape[1]
            for name, s in (("h0", h0), ("c0", c0)):
                if s is not None:
                    _numpy(name, s, (batch, width))
            if self.rnn_cell == "GRU" and c0 is not None:
                raise RimsError("c0 must be None for a GRU layer (it has no cell state)")
        params = [getattr(self, name) for name in self._names]
        h, h_last, c_last, masks = _RimsSequence.apply(self, x, h0, c0, *params)
        if self.rnn_cell == "GRU":
            c_last = None
        return h, (h_last, c_last), masks

    # --- the PyTorch codes' weights ---------------------------------------------------------

    @classmethod
    def from_pytorch(
        cls,
        state_dict: Mapping[str, Any],
        source: str,
        k: int,
        *,
        comm_heads: Optional[int] = None,
        prefix: Optional[str] = None,
        dropout: float = 0.0,
        device: str = "cpu",
    ) -> "RIMs":
        """A layer with the weights of the authors' ``BlocksCore`` (``source="authors"``; a bare
        cell or their whole ``RNNModel``, the cell found or named by ``prefix``) or of dido's
        ``RIMCell`` (``source="dido"``), through the engine's importer (docs/spec.md §4). ``k``
        is the active mechanisms per step; ``dropout`` is the layer's (the state_dict does not
        hold it)."""
        imported = import_weights(state_dict, source, k, comm_heads=comm_heads, prefix=prefix)
        c = imported["config"]
        layer = cls(
            input_size=c["input"],
            hidden_size=c["hidden"],
            num_units=c["mechanisms"],
            k=c["active"],
            rnn_cell=c["cell"],
            variant=c["variant"],
            num_input_heads=c["input_heads"],
            input_key_size=c["input_key"],
            input_value_size=c["input_value"],
            num_comm_heads=c["comm_heads"],
            comm_key_size=c["comm_key"],
            comm_value_size=c["comm_value"],
            input_dropout=dropout,
            comm_dropout=dropout,
            device=device,
            seed=0,
        )
        with torch.no_grad():
            for name in layer._names:
                getattr(layer, name).copy_(torch.from_numpy(np.array(imported["cell"][name])))
        return layer

    def to_pytorch(self, source: str) -> Dict[str, torch.Tensor]:
        """The state_dict of ``source``'s module (``"authors"``: ``BlocksCore``, ``"dido"``:
        ``RIMCell``) with this layer's weights, which it loads with ``strict=True``."""
        cell = {name: getattr(self, name).detach().cpu().numpy() for name in self._names}
        config = dict(self._core.config)
        out = export_weights(config, cell, source)
        return {name: torch.from_numpy(np.array(v)) for name, v in out.items()}

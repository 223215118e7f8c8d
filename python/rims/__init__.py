"""rims: Recurrent Independent Mechanisms on a hand-written engine (Rust, WGSL), from Python.

- ``rims.torch.RIMs``: a ``torch.nn.Module`` whose forward and backward the engine computes
  (drop-in for dido1998's ``RIMCell`` loop or the authors' ``BlocksCore``).
- ``rims.Runner``: a trained checkpoint stepped one time step at a time, numpy in and out.
- ``rims.train`` / ``rims.evaluate``: the engine's experiments (copying, sMNIST, adding, balls) with
  the CLI's settings, into crash-safe run directories.
- ``rims.Trainer``: the engine's own model and training step on batches you make.
- ``rims.rl_train`` / ``rims.rl_evaluate``: reinforcement learning (recurrent PPO with a RIMs or
  LSTM agent on MiniGrid-style worlds), as ``rims rl train`` and ``rims rl eval``.
- ``rims.import_weights`` / ``rims.export_weights``: the two PyTorch codes' state_dicts in and
  out of the canonical layout (docs/spec.md §4).

Every engine error is a ``rims.RimsError`` (a ``ValueError``) carrying the engine's message.
The engine runs with the GIL released; ``rims.set_num_threads(n)`` sets the CPU device's
threads (default: the ``RIMS_THREADS`` variable, else every core).
"""

from __future__ import annotations

import json
import operator
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _rims
from ._rims import RimsError, device_info, get_num_threads, set_num_threads

__all__ = [
    "RimsError",
    "Runner",
    "Trainer",
    "device_info",
    "evaluate",
    "export_weights",
    "get_num_threads",
    "import_weights",
    "rl_evaluate",
    "rl_train",
    "set_num_threads",
    "train",
]

__version__ = "0.1.0"

# The engine's CPU threads do not survive a fork: the child gets a pool of its own (a torch
# DataLoader with workers forks after the parent used the engine).
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rims._after_fork_in_child)

PathLike = Union[str, "os.PathLike[str]"]


def _as_array(name: str, value: Any, dtype: Any) -> np.ndarray:
    """``value`` (a numpy array, a list, or a CPU torch tensor) as a contiguous array."""
    if hasattr(value, "detach") and hasattr(value, "device"):
        if value.device.type != "cpu":
            raise RimsError(f"{name} is on {value.device}; rims reads CPU tensors: pass {name}.cpu()")
        value = value.detach().numpy()
    return np.ascontiguousarray(value, dtype=dtype)


class Runner:
    """A trained checkpoint stepped one time step at a time, its state kept between steps.

    ``Runner(checkpoint_dir, batch=B, device="cpu"|"gpu")``; ``step(x)`` feeds one step for
    every batch row: tokens (an integer array [B]) for models with an embedding, or cell
    inputs (float32 [B, D]) otherwise. It returns ``dict(h=[B, N*H],
    logits=[B, V], masks=[B, N])``. ``state`` gets and sets ``(h, c)``; ``reset(rows=None)``
    zeroes every row's state or the rows listed.
    """

    def __init__(self, checkpoint_dir: PathLike, batch: int = 1, device: Optional[str] = None):
        self._runner = _rims.Runner(str(Path(checkpoint_dir)), batch, device)

    @property
    def batch(self) -> int:
        return self._runner.batch

    @property
    def steps(self) -> int:
        return self._runner.steps

    @property
    def device(self) -> str:
        return self._runner.device

    def step(self, x: Any) -> Dict[str, np.ndarray]:
        arr = np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)
        if np.issubdtype(arr.dtype, np.integer):
            if not self._runner.takes_tokens:
                raise RimsError("this model takes float32 features [B, D], not tokens")
            if arr.size and arr.min() < 0:
                raise RimsError("tokens must be non-negative")
            return self._runner.step_tokens(np.ascontiguousarray(arr.reshape(-1), dtype=np.uint32))
        return self._runner.step_features(_as_array("x", arr, np.float32))

    @property
    def state(self):
        """(h, c) as float32 arrays [B, width]; c is None for GRU cells."""
        return self._runner.get_state()

    @state.setter
    def state(self, value) -> None:
        if isinstance(value, tuple):
            h, c = value
        else:
            h, c = value, None
        c = None if c is None else _as_array("c", c, np.float32)
        self._runner.set_state(_as_array("h", h, np.float32), c)

    def reset(self, rows: Optional[Sequence[int]] = None) -> None:
        self._runner.reset(None if rows is None else [int(r) for r in rows])


def _settings(flags: Mapping[str, Any]) -> str:
    """The CLI's flag names (as keywords) as the engine's settings, in JSON."""
    given: Dict[str, Any] = {}
    for key, value in flags.items():
        key = key.replace("-", "_")
        if key in ("carry", "no_carry"):
            given["carry_state"] = bool(value) == (key == "carry")
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        given[key] = value
    return json.dumps(given)


class _PrintProgress:
    """The default progress display: a step counter on one line (on a terminal) and a line
    per evaluation."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.tty = sys.stderr.isatty()

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "started":
            self.total = int(event["steps"])
        elif kind == "step":
            self.done += 1
            if self.tty:
                print(f"\rstep {self.done}/{self.total}  loss {event['loss']:.4f}", end="", file=sys.stderr)
        elif kind == "evaluated":
            rec = json.loads(event["record"])
            parts = [
                f"{e['split']}@{e['size']}: loss {e['loss']:.4f} acc {100 * e['accuracy']:.1f}%" for e in rec["eval"]
            ]
            if self.tty:
                print("\r", end="", file=sys.stderr)
            print(f"epoch {rec['epoch']:3d}  step {rec['step']:6d}  train loss {rec['train_loss']:.4f}  " + "  ".join(parts))


def train(
    out: PathLike,
    task: str = "copying",
    *,
    preset: str = "small",
    resume: bool = False,
    device: Optional[str] = None,
    progress: Union[bool, Callable[[Dict[str, Any]], None]] = True,
    **flags: Any,
) -> List[Dict[str, Any]]:
    """Trains a run into ``out`` as ``rims train --out OUT --task TASK`` does, the other flags
    given by their names (``epochs=5, lr=1e-3, model="lstm", carry=False, ...``), and returns
    the evaluation records this call made (dicts, as ``metrics.jsonl`` holds them).

    ``resume=True`` continues the run in ``out`` (only ``epochs`` may be given). ``progress``
    is True (a counter and a line per evaluation), False, or a callable that receives each
    event as a dict (``event`` = "started", "step" or "evaluated"); an exception it raises, or
    Ctrl-C, stops the run after the current step with the last checkpoint kept.
    """
    flags = dict(flags)
    if not resume:
        flags["task"] = task
    callback = _PrintProgress() if progress is True else (progress or None)
    text = _rims.train(os.fspath(out), preset, _settings(flags), resume, device, callback)
    return json.loads(text)


def evaluate(
    checkpoint: PathLike,
    *,
    lengths: Optional[Sequence[int]] = None,
    resolutions: Optional[Sequence[int]] = None,
    device: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Evaluates the checkpoint in a run directory at its own sizes, or at the copying/adding
    ``lengths`` (one or two) or sMNIST ``resolutions``: a list of ``dict(split, size, loss,
    accuracy)``."""
    text = _rims.evaluate(
        os.fspath(checkpoint),
        None if lengths is None else [int(v) for v in lengths],
        None if resolutions is None else [int(v) for v in resolutions],
        device,
    )
    return json.loads(text)


class _DefaultStr(str):
    """A default argument value, told apart from the same value given (``resume=True``)."""


class _DefaultInt(int):
    """A default argument value, told apart from the same value given (``resume=True``)."""


_RL_ENV = _DefaultStr("doorkey-5x5")
_RL_MODEL = _DefaultStr("rims")
_RL_FRAMES = _DefaultInt(300_000)
_RL_SEED = _DefaultInt(1)


def _json_value(value: Any) -> Any:
    """numpy scalars and paths as JSON values (``json.dumps``'s ``default``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"a setting cannot be a {type(value).__name__} ({value!r})")


def _print_update(record: Dict[str, Any]) -> None:
    print(
        f"update {record['update']:5d}  frames {record['frames']:8d}  {record['fps']:6.0f} frames/s  "
        f"return {record['mean_return']:.3f}  success {100 * record['success_rate']:.1f}%  "
        f"length {record['mean_length']:.1f}  entropy {record['entropy']:.3f}"
    )


def rl_train(
    out: PathLike,
    *,
    env: str = _RL_ENV,
    model: str = _RL_MODEL,
    frames: int = _RL_FRAMES,
    seed: int = _RL_SEED,
    resume: bool = False,
    device: Optional[str] = None,
    progress: Union[None, bool, Callable[[Dict[str, Any]], None]] = None,
    **settings: Any,
) -> List[Dict[str, Any]]:
    """Trains an agent with recurrent PPO on a world into the run directory ``out``, as
    ``rims rl train --out OUT`` does, and returns the records of the updates this call made
    (dicts, as ``metrics.jsonl`` holds them: ``update``, ``frames``, ``fps``, ``episodes``,
    ``mean_return``, ``success_rate``, ``mean_length``, ``policy_loss``, ``value_loss``,
    ``entropy``, ``approx_kl``, ``clipped``, ``grad_norm``, ...).

    ``env`` is ``empty-NxN``, ``doorkey-NxN`` (N >= 5) or ``memory-sN``; ``model`` is ``rims``,
    ``lstm`` or ``gru``. Other settings go by their names in the run's ``rl.json`` (``envs``,
    ``steps``, ``epochs``, ``batch``, ``recurrence``, ``lr``, ``gamma``, ``lambda``, ``clip``,
    ``value_coef``, ``entropy_coef``, ``max_grad_norm``, ``mechanisms``, ``active``, ``hidden``,
    ``cell``, ``variant``, ``embed``, ``features``, ``head_hidden``, ``checkpoint_every``); the
    rest are the CLI's defaults (torch_ac's PPO; RIMs 4 x 16 with k = 3, or 64 LSTM units). An
    unknown name, a value of the wrong type or a setting that cannot work raises ``RimsError``.

    ``resume=True`` continues the run in ``out`` with its own settings: ``frames`` may raise its
    length, and any other setting given must be the run's. ``progress`` is None or False
    (quiet), True (a line per update) or a callable that receives each update's record as a
    dict; an exception it raises, or Ctrl-C, stops the run after that update with the last
    checkpoint kept (every ``checkpoint_every`` updates, and the last) and is raised again here.
    """
    given: Dict[str, Any] = {}
    for key, value, default in (
        ("env", env, _RL_ENV),
        ("model", model, _RL_MODEL),
        ("frames", frames, _RL_FRAMES),
        ("seed", seed, _RL_SEED),
    ):
        if value is None or isinstance(value, (_DefaultStr, _DefaultInt)):
            if resume:
                continue  # not given: the run's own
            value = str(default) if isinstance(default, str) else int(default)
        given[key] = value
    given.update(settings)
    callback: Optional[Callable[[str], None]] = None
    if progress is True:
        callback = lambda text: _print_update(json.loads(text))  # noqa: E731
    elif progress:
        user = progress
        callback = lambda text: user(json.loads(text))  # noqa: E731
    text = _rims.rl_train(os.fspath(out), json.dumps(given, default=_json_value), resume, device, callback)
    return json.loads(text)


def rl_evaluate(
    checkpoint: PathLike,
    env: Optional[str] = None,
    episodes: int = 500,
    greedy: bool = False,
    device: Optional[str] = None,
) -> Dict[str, Any]:
    """Plays the agent of the run directory ``checkpoint`` on ``env`` (default: the world it
    trained on), as ``rims rl eval`` does: the first episode of each of ``episodes``
    environments (1 to 65536), on layouts no training run sees, actions sampled from the
    policy or, with ``greedy=True``, the most likely ones. Returns ``dict(env, episodes,
    mean_return, success_rate, mean_length)``."""
    text = _rims.rl_evaluate(os.fspath(checkpoint), env, operator.index(episodes), bool(greedy), device)
    return json.loads(text)


class Trainer:
    """The engine's model for a run's settings (``rims train``'s names) with its Adam, stepped
    on batches you make: ``step(inputs, targets)`` is the training step ``rims train`` takes.

    ``inputs``: tokens [T, B] (integers) for copying and sMNIST models, features float32
    [T, B, F] for adding models, frames float32 [T, B, S, S] for balls models; ``targets``: class
    indices (one per logits row: T*B for copying, B for sMNIST), float32 values shaped like the
    outputs (adding), or the next frames [T, B, S, S] in [0, 1] (balls: binary cross-entropy,
    summed over each frame's pixels and averaged over the frames).
    """

    def __init__(self, task: str = "copying", *, preset: str = "small", device: Optional[str] = None, **flags: Any):
        flags = dict(flags)
        flags["task"] = task
        self._trainer = _rims.Trainer(preset, _settings(flags), device)

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self._trainer.config_json)

    @property
    def steps(self) -> int:
        return self._trainer.steps

    def step(self, inputs: Any, targets: Any) -> float:
        return self._trainer.step(_batch_array("inputs", inputs), _batch_array("targets", targets))

    def weights(self) -> Dict[str, np.ndarray]:
        return dict(self._trainer.weights())

    def set_weights(self, weights: Mapping[str, Any]) -> None:
        self._trainer.set_weights({k: _as_array(k, v, np.float32) for k, v in weights.items()})


def _batch_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value.detach().numpy() if hasattr(value, "detach") else value)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and arr.min() < 0:
            raise RimsError(f"{name}: class indices and tokens must be non-negative")
        return np.ascontiguousarray(arr, dtype=np.uint32)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _float64_dict(state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            if not value.is_floating_point():
                raise RimsError(f"'{key}' is a {value.dtype} tensor; a state_dict's tensors must be floating point")
            value = value.detach().cpu().double().numpy()
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            raise RimsError(f"'{key}' is an array of {arr.dtype}; a state_dict's tensors must be floating point")
        out[str(key)] = np.ascontiguousarray(arr, dtype=np.float64)
    return out


def import_weights(
    state_dict: Mapping[str, Any],
    source: str,
    k: int,
    *,
    comm_heads: Optional[int] = None,
    prefix: Optional[str] = None,
) -> Dict[str, Any]:
    """Maps a state_dict of the authors' ``BlocksCore`` (or their whole ``RNNModel``) or of
    dido's ``RIMCell`` (tensors or arrays by key) to the canonical layout: ``dict(config=...,
    cell={name: float32 array}, embed=..., decoder=(dec_w, dec_b) or None, notes=[...])``.
    ``k`` is the active mechanisms per step (no state_dict holds it)."""
    config, cell, embed, decoder, notes = _rims.import_weights(_float64_dict(state_dict), source, int(k), comm_heads, prefix)
    return {"config": dict(config), "cell": dict(cell), "embed": embed, "decoder": decoder, "notes": list(notes)}


def export_weights(
    config: Mapping[str, Any],
    cell: Mapping[str, Any],
    source: str,
    *,
    embed: Any = None,
    decoder: Any = None,
) -> Dict[str, np.ndarray]:
    """The canonical cell tensors (``config`` as ``import_weights`` gives it) as the state_dict
    that ``source``'s module (``"authors"``: ``BlocksCore``, ``"dido"``: ``RIMCell``) loads with
    ``strict=True``; with the authors' code, ``embed`` and ``decoder`` (weight [C, N*H], bias
    [C]) make it their whole ``RNNModel``."""
    dec = None
    if decoder is not None:
        w, b = decoder
        dec = tuple(_float64_dict({"decoder.weight": w, "decoder.bias": b}).values())
    emb = None if embed is None else _float64_dict({"embed": embed})["embed"]
    return dict(_rims.export_weights(dict(config), _float64_dict(cell), source, emb, dec))

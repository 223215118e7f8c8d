"""The PyTorch codes' weights in and out: import -> export gives back the state_dict (dido's
exactly, up to f32; the authors' on the diagonal blocks, zeros off them), through the dict API
and through RIMs.from_pytorch / to_pytorch, and a layer's state_dict round-trips."""

import numpy as np
import pytest
import torch

import rims
from rims.torch import RIMs
from support import FIXTURES, read_safetensors, section


def fixture(file):
    tensors, meta = read_safetensors(FIXTURES / file)
    return section(tensors, "state"), int(meta["k"])


@pytest.mark.parametrize("file", ["dido_lstm.safetensors", "dido_gru.safetensors"])
def test_dido_state_dicts_round_trip(file):
    state, k = fixture(file)
    imported = rims.import_weights(state, "dido", k)
    assert imported["config"]["variant"] == "dido" and imported["config"]["active"] == k
    back = rims.export_weights(imported["config"], imported["cell"], "dido")
    assert set(back) == set(state)
    for name, want in state.items():
        np.testing.assert_allclose(back[name], want, rtol=1e-6, atol=1e-7, err_msg=name)
    layer = RIMs.from_pytorch({k_: torch.from_numpy(v) for k_, v in state.items()}, "dido", k)
    again = layer.to_pytorch("dido")
    for name, want in state.items():
        np.testing.assert_allclose(again[name].numpy(), want, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("file", ["authors_lstm.safetensors", "authors_gru.safetensors"])
def test_authors_state_dicts_round_trip_on_the_blocks(file):
    state, k = fixture(file)
    imported = rims.import_weights(state, "authors", k)
    assert any("off" in n or "block" in n for n in imported["notes"]) or imported["notes"] == []
    back = rims.export_weights(imported["config"], imported["cell"], "authors")
    assert set(back) == set(state)
    c = imported["config"]
    n, h = c["mechanisms"], c["hidden"]
    dense = [name for name in state if name.startswith("block_lstm.") and name.endswith(("weight_ih", "weight_hh"))]
    assert dense, "the fixture has the dense LSTM/GRU matrices"
    for name in dense:
        got, want = back[name], state[name]
        rows, cols = want.shape
        g = rows // (n * h)
        a = cols // n
        mask = np.zeros_like(want, dtype=bool)
        for gate in range(g):
            for j in range(n):
                mask[gate * n * h + j * h : gate * n * h + (j + 1) * h, j * a : (j + 1) * a] = True
        np.testing.assert_allclose(got[mask], want[mask], rtol=1e-6, atol=1e-7, err_msg=name)
        assert not got[~mask].any(), f"{name}: off the blocks must be zero"
    for name in ("inp_att.GLN_qs.w", "mha.GLN_qs.w", "mha.fc.weight"):
        np.testing.assert_allclose(back[name], state[name], rtol=1e-6, atol=1e-7, err_msg=name)


def test_a_layers_state_dict_round_trips_and_names_are_canonical():
    layer = RIMs(6, 4, 3, 2, input_key_size=5, input_value_size=7, comm_key_size=3, seed=1)
    names = dict(layer.named_parameters())
    assert {"in_q", "in_k_w", "in_v_w", "rnn_wx", "rnn_wh", "comm_q", "comm_fc_w"} <= set(names)
    assert set(dict(layer.named_buffers())) == {"in_k_b", "in_v_b"}  # variant A's frozen zeros
    assert tuple(names["rnn_wx"].shape) == (3, 7, 16)
    other = RIMs(6, 4, 3, 2, input_key_size=5, input_value_size=7, comm_key_size=3, seed=2)
    assert not torch.equal(other.rnn_wx, layer.rnn_wx)
    other.load_state_dict(layer.state_dict())
    layer.eval(), other.eval()  # no dropout draws
    x = torch.randn(3, 2, 6)
    torch.testing.assert_close(other(x)[0], layer(x)[0], rtol=0, atol=0)


def test_exports_the_code_cannot_run_are_refused():
    layer = RIMs(6, 4, 3, 2, input_key_size=5, input_value_size=7, comm_key_size=3)
    with pytest.raises(rims.RimsError, match="dido"):
        layer.to_pytorch("dido")  # variant A cannot become dido's RIMCell
    with pytest.raises(rims.RimsError):
        layer.to_pytorch("nobody")
    state, k = fixture("dido_lstm.safetensors")
    with pytest.raises(rims.RimsError, match="authors|BlocksCore|is --from right"):
        rims.import_weights(state, "authors", k)
    bad = dict(state)
    bad["key.weight"] = np.full_like(bad["key.weight"], np.nan)
    with pytest.raises(rims.RimsError, match="not finite"):
        rims.import_weights(bad, "dido", k)
    extra = dict(state, stray=np.zeros(3))
    with pytest.raises(rims.RimsError, match="stray"):
        rims.import_weights(extra, "dido", k)
    with pytest.raises(rims.RimsError, match="floating point"):
        rims.import_weights(dict(state, **{"key.bias": np.arange(3)}), "dido", k)


@pytest.mark.parametrize("key,shape", [("value.weight", (0, 5)), ("value_.w", (4, 3, 0))])
def test_zero_sized_axes_are_refused_not_a_panic(key, shape):
    state, k = fixture("dido_lstm.safetensors")
    state = dict(state, **{key: np.zeros(shape)})
    with pytest.raises(rims.RimsError, match="axis of size 0"):
        rims.import_weights(state, "dido", k)


def test_whole_models_import_with_their_embedding_and_readout():
    # The authors' RNNModel: encoder, the cell under bc_lst.0., decoder.
    state, k = fixture("authors_lstm.safetensors")
    d = state["inp_att.GLN_ks.w"].shape[1]
    nh = state["inp_att.GLN_qs.w"].shape[0] * state["inp_att.GLN_qs.w"].shape[1]
    rng = np.random.default_rng(3)
    whole = {f"bc_lst.0.{name}": v for name, v in state.items()}
    whole["encoder.weight"] = rng.normal(size=(7, d))
    whole["decoder.weight"] = rng.normal(size=(7, nh))
    whole["decoder.bias"] = rng.normal(size=(7,))
    got = rims.import_weights(whole, "authors", k)
    np.testing.assert_allclose(got["embed"], whole["encoder.weight"], rtol=1e-6)
    dec_w, dec_b = got["decoder"]
    np.testing.assert_allclose(dec_w, whole["decoder.weight"].T, rtol=1e-6)
    np.testing.assert_allclose(dec_b, whole["decoder.bias"], rtol=1e-6)
    layer = RIMs.from_pytorch(whole, "authors", k, prefix="bc_lst.0.")
    bare = RIMs.from_pytorch(state, "authors", k)
    for name, p in bare.named_parameters():
        torch.testing.assert_close(getattr(layer, name), p, rtol=0, atol=0)
    # Back out as the whole RNNModel: the authors' code loads it with strict=True.
    back = rims.export_weights(got["config"], got["cell"], "authors", embed=whole["encoder.weight"],
                               decoder=(whole["decoder.weight"], whole["decoder.bias"]))
    assert set(back) == set(whole)
    # dido's cell inside a model of the user's, with a prefix and a readout beside it.
    dstate, dk = fixture("dido_gru.safetensors")
    model = {f"rim.cell.{name}": v for name, v in dstate.items()}
    n_h = dstate["query.w"].shape[0] * dstate["query.w"].shape[1]
    model["head.weight"] = rng.normal(size=(3, n_h))
    model["head.bias"] = rng.normal(size=(3,))
    got = rims.import_weights(model, "dido", dk, prefix="rim.cell.")
    assert got["decoder"][0].shape == (n_h, 3)
    assert any("head" in note for note in got["notes"])
    with pytest.raises(rims.RimsError, match="prefix"):
        rims.import_weights(model, "dido", dk, prefix="nowhere.")

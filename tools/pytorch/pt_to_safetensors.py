#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pt / .pth) into a safetensors file of its state_dict.

Accepted checkpoint shapes:
  * a state_dict (a mapping from names to tensors),
  * a dict holding one under 'state_dict', 'model_state_dict', 'model' or 'net'
    (the value may itself be a state_dict or a whole module),
  * a whole pickled nn.Module (only with --allow-pickle, which runs the file's pickled code, so
    trusted files only; the defining code must be importable: pass --src DIR, e.g. --src /tmp/dido).
    The authors' BlocksCore cannot be pickled whole (MultiHeadAttention holds a lambda), so their
    checkpoints are state_dicts.

The tensors are written as they are (dtype kept unless --dtype is given), made
contiguous and detached from any storage they shared. Nothing is renamed: the
names are the module's own (e.g. `bc_lst.0.block_lstm.lstm.weight_ih`). Use
--strip-prefix to drop a leading prefix such as `module.` (DataParallel) or
`bc_lst.0.` (to get a bare BlocksCore state_dict as in docs/spec.md section 4).

This is NOT the canonical rims layout (docs/spec.md section 4): it is the raw
state_dict, which the Rust side maps (and blockifies) on import.

Examples:
  python3 tools/pytorch/pt_to_safetensors.py model.pt model.safetensors
  python3 tools/pytorch/pt_to_safetensors.py --src /tmp/authors/event_based \\
      --strip-prefix bc_lst.0. --only-prefix bc_lst.0. --dtype float32 ckpt.pt cell.safetensors
"""
import argparse
import pickle
import sys


def die(msg):
    print(f"pt_to_safetensors: error: {msg}", file=sys.stderr)
    sys.exit(2)


CANDIDATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def find_state_dict(obj, torch, path="checkpoint"):
    nn = torch.nn
    if isinstance(obj, nn.Module):
        return obj.state_dict(), f"{path} (nn.Module {type(obj).__name__})"
    if isinstance(obj, dict):
        if obj and all(isinstance(k, str) for k in obj) and all(torch.is_tensor(v) for v in obj.values()):
            return obj, path
        for key in CANDIDATE_KEYS:
            if key in obj:
                return find_state_dict(obj[key], torch, f"{path}[{key!r}]")
        tensors = {k: v for k, v in obj.items() if torch.is_tensor(v)}
        others = sorted(str(k) for k, v in obj.items() if not torch.is_tensor(v))
        if tensors and others:
            die(f"{path} mixes tensors with non-tensor entries {others[:8]} and has none of the keys "
                f"{list(CANDIDATE_KEYS)}; cannot tell which part is the state_dict")
        die(f"{path} is a dict with keys {sorted(map(str, obj))[:12]} but none of {list(CANDIDATE_KEYS)} "
            f"holds a state_dict")
    die(f"{path} is a {type(obj).__name__}, not a state_dict, a dict holding one, or an nn.Module")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help=".pt/.pth checkpoint")
    ap.add_argument("output", help="output .safetensors")
    ap.add_argument("--src", action="append", default=[],
                    help="directory to put on sys.path so pickled modules can be imported (repeatable)")
    ap.add_argument("--only-prefix", default=None, help="keep only tensors whose name starts with this")
    ap.add_argument("--strip-prefix", default=None, help="remove this prefix from names that have it")
    ap.add_argument("--dtype", choices=["keep", "float32", "float64"], default="keep",
                    help="cast floating-point tensors (integer tensors are kept)")
    ap.add_argument("--allow-pickle", action="store_true",
                    help="load with torch.load(weights_only=False), which runs arbitrary pickled code: "
                         "needed for whole pickled modules, use only on trusted files. Without it the "
                         "file is loaded with weights_only=True")
    args = ap.parse_args()

    for d in args.src:
        sys.path.insert(0, d)
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        die(f"{e}; install with `pip install torch safetensors`")

    try:
        obj = torch.load(args.input, map_location="cpu", weights_only=not args.allow_pickle)
    except FileNotFoundError:
        die(f"no such file: {args.input}")
    except pickle.UnpicklingError:
        die(f"torch.load(weights_only=True) refused {args.input}: it holds more than tensors. If it pickles a whole module or other "
            f"objects and you trust it, rerun with --allow-pickle (and --src DIR for the module's code)")
    except TypeError:  # very old torch without weights_only
        obj = torch.load(args.input, map_location="cpu")
    except (ModuleNotFoundError, AttributeError) as e:
        die(f"cannot unpickle {args.input}: {e}. The checkpoint pickles a whole module; pass the directory "
            f"of its code with --src (e.g. --src /tmp/authors/event_based)")
    except Exception as e:  # noqa: BLE001
        die(f"cannot load {args.input} with torch.load: {type(e).__name__}: {e}")

    sd, where = find_state_dict(obj, torch)
    out = {}
    skipped = []
    for name, t in sd.items():
        if not torch.is_tensor(t):
            skipped.append(name)
            continue
        if args.only_prefix is not None and not name.startswith(args.only_prefix):
            continue
        if args.strip_prefix and name.startswith(args.strip_prefix):
            name = name[len(args.strip_prefix):]
        if name in out:
            die(f"two tensors map to the name {name!r} after --strip-prefix")
        t = t.detach().to("cpu")
        if args.dtype != "keep" and t.is_floating_point():
            t = t.to(getattr(torch, args.dtype))
        if t.is_sparse:
            t = t.to_dense()
        out[name] = t.contiguous().clone()
    if not out:
        die(f"no tensors left to write from {where} (only-prefix={args.only_prefix!r})")
    meta = {"source": str(args.input), "found_at": where, "torch_version": torch.__version__}
    save_file(out, args.output, metadata=meta)
    total = sum(t.numel() for t in out.values())
    print(f"wrote {len(out)} tensors ({total} values) from {where} to {args.output}")
    if skipped:
        print(f"skipped non-tensor entries: {skipped}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Does the exported standalone source reproduce the retrained model's test accuracy without nasforge?

Exports the last retrain of DB as plain PyTorch source (``nasforge export DB --format python``),
creates a separate virtual environment holding only the pinned CPU torch (no nasforge, checked), and
there runs a script that reads the raw Fashion-MNIST test IDX files itself (gzip + struct, no
nasforge loader), applies the exported ``preprocess()`` and network, and counts correct predictions.
The accuracy must equal the one ``nasforge retrain`` recorded.

    .venv/bin/python benchmarks/standalone_export.py runs/fashion_mnist.db
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

from _common import write_result

from nasforge import api
from nasforge.data.idx import locate
from nasforge.store import Store

TORCH = "torch==2.13.0"  # the pinned CPU wheel; a bare `torch` pulls a multi-GB CUDA build

EVAL = textwrap.dedent('''
    """Score an exported nasforge model on raw Fashion-MNIST test files, with torch and the stdlib only."""
    import gzip, importlib.util, json, struct, sys
    from pathlib import Path

    import torch

    model_py, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
    try:
        import nasforge  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("nasforge is importable in this environment: not a standalone check")

    def idx(name):
        path = next(p for p in (data_dir / name, data_dir / (name + ".gz")) if p.exists())
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
        ndim = raw[3]
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)

    spec = importlib.util.spec_from_file_location("model", model_py)
    model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model)
    net = model.load()
    x, y = idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte").long()
    with torch.no_grad():
        pred = torch.cat([net(model.preprocess(x[i:i + 1000])).argmax(1) for i in range(0, len(x), 1000)])
    print(json.dumps({"accuracy": float((pred == y).float().mean()), "n": len(y), "torch": torch.__version__,
                      "nasforge_importable": False, "python": sys.executable}))
''')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("--venv", default="runs/standalone-venv", help="the torch-only environment (created if missing)")
    ap.add_argument("--out", default="runs/standalone-export", help="where the export is written")
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST IDX directory (default: the Debian install)")
    ap.add_argument("--name", default="standalone_export")
    args = ap.parse_args()
    files = api.export(args.db, format="python", out_dir=args.out)
    model_py = next(f for f in files if f.name == "model.py")
    venv = Path(args.venv)
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", TORCH], check=True)
    script = Path(args.out) / "score_standalone.py"
    script.write_text(EVAL)
    data_dir = Path(args.data_dir) if args.data_dir else locate("fashion_mnist", None)
    # -I: isolated (no PYTHONPATH, no user site, not the current directory): only the venv's packages
    r = subprocess.run([str(py), "-I", str(script), str(model_py), str(data_dir)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the standalone run failed:\n{r.stderr}")
    got = json.loads(r.stdout)
    with Store(args.db, create=False) as st:
        exp = st.experiment()
        assert exp is not None
        res = st.results(exp.id, "retrain")[-1]
    want = next(m for m in res["models"] if m["name"] == "searched")
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.split()
    payload = {"db": args.db, "experiment": exp.name, "trial": res["trial"], "architecture": want["description"],
               "retrain_test_accuracy": want["test"]["accuracy"], "standalone_test_accuracy": got["accuracy"],
               "equal": abs(got["accuracy"] - want["test"]["accuracy"]) < 0.5 / got["n"], "n_test": got["n"],
               "venv_packages": freeze, "export_files": [str(f) for f in files]}
    out = write_result(args.name, "exported standalone source, in a torch-only venv, vs the retrain's test accuracy",
                       "python " + " ".join(map(shlex.quote, sys.argv)), payload)
    print(json.dumps(payload, indent=2))
    print("wrote", out)
    if not payload["equal"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()

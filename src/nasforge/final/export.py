"""Export a trained network: standalone PyTorch source, TorchScript, ONNX, or its genotype as JSON.

- ``python``: ``model.py`` defines ``class Net(nn.Sequential)`` from plain ``torch.nn`` layers (and,
  where the network has them, the source of the few custom modules it uses: parallel branches,
  residual blocks, squeeze-excitation, DAG cells, reduction blocks), generated from the built module tree. With it goes
  ``model_state_dict.pt``, a state dict that loads with ``torch.load(..., weights_only=True)``.
  The file imports only torch: it runs where nasforge is not installed.
- ``torchscript``: ``model_torchscript.pt``, traced (the networks' control flow depends only on
  their structure), loads with ``torch.jit.load``.
- ``onnx``: ``model.onnx`` with a dynamic batch axis (``pip install 'nasforge[onnx]'``).
- ``json``: ``model.json``, the genotype (sample, space config, description, input shape, classes,
  parameters and FLOPs) with the state dict beside it; :func:`model_from_genotype` rebuilds it.

Every export reproduces the trained network's outputs (tested per format). A regression network (its
:class:`~nasforge.data.base.Preprocess` has a target) is exported with a last ``Linear(1, 1)`` layer holding
the target's standard deviation and mean, so every format outputs predictions in the original units (the
``json`` genotype's state dict holds it too, and :func:`model_from_genotype` rebuilds it).

Text from the experiment (its name, the description, class names, anything read from a database)
reaches ``model.py`` only as escaped Python literals: as ``repr`` in assignments, and with every
backslash, double quote and unprintable character escaped inside docstrings. Before a ``model.py`` is
reported written, its exact bytes are compiled and ``DESCRIPTION``, ``CLASSES`` and the docstrings are
checked to read back as the strings given. Every file is written atomically (:mod:`nasforge.atomic`).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import inspect
import json
import textwrap
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge import atomic
from nasforge.data.base import Preprocess
from nasforge.errors import NasforgeError
from nasforge.evaluate.cost import count_flops, count_params
from nasforge.final import FORMATS
from nasforge.final.ensemble import Ensemble, build_ensemble
from nasforge.space.cell_nn import Cell, ReductionBlock
from nasforge.space.chain_nn import Parallel, Residual
from nasforge.space.stage_nn import ResBlock, SqueezeExcite

STATE_DICT = "model_state_dict.pt"


class ExportError(NasforgeError):
    """The network cannot be exported in the requested format."""


@dataclass(frozen=True)
class ModelInfo:
    """What an export records beside the weights: enough to use the network, and to rebuild it with nasforge."""

    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    description: str = ""
    sample: Mapping[str, Any] | None = None
    space: Mapping[str, Any] | None = None
    experiment: str | None = None
    trial: int | None = None
    seed: int | None = None
    test: Mapping[str, float] | None = None
    preprocess: Preprocess | None = None
    members: int = 1  # trainings averaged into the network (final.ensemble); 1: a single network
    reference: str | None = None  # a reference network's name (final.references) where it, not a searched one, is
    # the network: it is rebuilt by that name rather than from a sample of a space
    # how raw examples became the inputs before the statistics (a CSV's column encoding with its medians and
    # one-hot values, an image folder's size; :attr:`~nasforge.data.base.Dataset.reader`), for whoever deploys it
    reader: Mapping[str, Any] | None = None


# ---------------------------------------------------------------------- python source
# Leaf layers: the constructor arguments that reproduce each one ("bias" means "has a bias").
_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
         "padding_mode")
_BN = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_LEAVES: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Conv1d: _CONV,
    nn.Conv2d: _CONV,
    nn.Linear: ("in_features", "out_features", "bias"),
    nn.BatchNorm1d: _BN,
    nn.BatchNorm2d: _BN,
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine", "bias"),
    nn.MaxPool1d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    nn.MaxPool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
    nn.AvgPool1d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    nn.AvgPool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    nn.AdaptiveAvgPool1d: ("output_size",),
    nn.AdaptiveAvgPool2d: ("output_size",),
    nn.Flatten: ("start_dim", "end_dim"),
    nn.Dropout: ("p",),
    nn.Dropout1d: ("p",),
    nn.Dropout2d: ("p",),
    nn.ReLU: (),
    nn.ReLU6: (),
    nn.GELU: ("approximate",),
    nn.SiLU: (),
    nn.ELU: ("alpha",),
    nn.LeakyReLU: ("negative_slope",),
    nn.Tanh: (),
    nn.Sigmoid: (),
    nn.Identity: (),
}

# nasforge's own modules: (submodule attributes, plain attributes); the generated class takes both
# as constructor arguments and carries the original ``forward`` source unchanged.
_CUSTOM: dict[type[nn.Module], tuple[tuple[str, ...], tuple[str, ...]]] = {
    Parallel: (("branches",), ("merge",)),
    Residual: (("body", "shortcut"), ("crop", "stride")),
    Cell: (("edges",), ("n_nodes", "wiring")),
    ReductionBlock: (("conv_a", "conv_b", "shortcut"), ()),
    ResBlock: (("body", "shortcut", "act"), ()),
    SqueezeExcite: (("gate",), ()),
    Ensemble: (("members",), ("average",)),
}


def _literal(value: Any, where: str) -> str:
    text = repr(value)
    try:
        ok = ast.literal_eval(text) == value
    except (ValueError, SyntaxError):
        ok = False
    if not ok:
        raise ExportError(f"{where} = {text} cannot be written as Python source; use --format torchscript")
    return text


_DOC_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _doc_text(text: str) -> str:
    """What a docstring can hold of ``text``: a class's docstring must encode as UTF-8, so lone surrogates
    (from a file name or a database read with surrogateescape) stand as their escapes, e.g. ``\\udcff``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _doc(text: str) -> str:
    """``text`` as it may stand inside a triple-quoted docstring and read back as itself.

    Backslashes and double quotes are escaped (so nothing can close the docstring or start an escape),
    and so is every unprintable character (line breaks, NUL, lone surrogates, which UTF-8 cannot encode).
    """
    out = []
    for ch in str(text):
        if ch in _DOC_ESCAPES:
            out.append(_DOC_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def _leaf(m: nn.Module) -> str:
    """``nn.Conv2d(1, 8, kernel_size=3, padding=1, bias=False)``: settings at their defaults are left out."""
    t = type(m)
    defaults = inspect.signature(t.__init__).parameters
    args = []
    for a in _LEAVES[t]:
        value = getattr(m, a) is not None if a == "bias" else getattr(m, a)
        if isinstance(value, tuple) and value and all(v == value[0] for v in value):
            value = value[0]  # (3, 3) -> 3: the layer expands it again
        default = defaults[a].default if a in defaults else inspect.Parameter.empty
        if default is inspect.Parameter.empty:
            args.append(_literal(value, f"{t.__name__}.{a}"))
        elif value != default or type(value) is not type(default):
            args.append(f"{a}={_literal(value, f'{t.__name__}.{a}')}")
    return f"nn.{t.__name__}({', '.join(args)})"


def _expr(m: nn.Module, depth: int, used: set[type[nn.Module]]) -> str:
    """Python source that constructs ``m`` (with fresh weights), indented for nesting ``depth``."""
    t = type(m)
    if t in _LEAVES:
        if m._parameters.keys() - {"weight", "bias"}:  # pragma: no cover - torch's own layers
            raise ExportError(f"unexpected parameters in {t.__name__}")
        return _leaf(m)
    pad, inner = "    " * depth, "    " * (depth + 1)
    if t is nn.Sequential or t is nn.ModuleList:
        names = [n for n, _ in m.named_children()]
        if names != [str(i) for i in range(len(names))]:
            raise ExportError(f"a {t.__name__} with named children {names} is not supported")
        items = "".join(f"{inner}{_expr(c, depth + 1, used)},\n" for c in m.children())
        return f"nn.Sequential(\n{items}{pad})" if t is nn.Sequential else f"nn.ModuleList([\n{items}{pad}])"
    if t is nn.ModuleDict:
        items = "".join(f"{inner}{n!r}: {_expr(c, depth + 1, used)},\n" for n, c in m.named_children())
        return f"nn.ModuleDict({{\n{items}{pad}}})"
    if t in _CUSTOM:
        children, attrs = _CUSTOM[t]
        if set(dict(m.named_children())) != set(children) or m._parameters or m._buffers:
            raise ExportError(f"{t.__name__} holds submodules or tensors the exporter does not know; "
                              "update nasforge.final.export or use --format torchscript")
        used.add(t)
        args = [f"{inner}{c}={_expr(getattr(m, c), depth + 1, used)},\n" for c in children]
        args += [f"{inner}{a}={_literal(getattr(m, a), f'{t.__name__}.{a}')},\n" for a in attrs]
        return f"{t.__name__}(\n{''.join(args)}{pad})"
    raise ExportError(f"layer {t.__name__} has no standalone source export yet; use --format torchscript or onnx")


def _class_source(cls: type[nn.Module]) -> str:
    """A standalone copy of one of nasforge's modules: a plain constructor and the original forward."""
    children, attrs = _CUSTOM[cls]
    params = ", ".join(children + attrs)
    doc = _doc((inspect.getdoc(cls) or cls.__name__).splitlines()[0])
    body = "".join(f"        self.{p} = {p}\n" for p in children + attrs)
    forward = textwrap.indent(textwrap.dedent(inspect.getsource(cls.forward)), "    ")
    return (f"class {cls.__name__}(nn.Module):\n    \"\"\"{doc}\"\"\"\n\n    def __init__(self, {params}):\n"
            f"        super().__init__()\n{body}\n{forward}")


_TEMPLATE = '''"""{doc}

Exported by nasforge from {origin}. Standalone: needs PyTorch only, not nasforge.
Input: a float tensor (N, {shape_text}), normalised as in training: ``preprocess(raw)`` turns raw
inputs (e.g. 0..255 pixels) into it. Output: {output}.

    from model import load, preprocess
    net = load()            # Net with the weights in {weights_doc} beside this file, in eval mode
    {out_var} = net(preprocess(raw))
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INPUT_SHAPE = {input_shape}
CLASSES = {classes}
DESCRIPTION = {description}
WEIGHTS = {weights}
# (raw / SCALE - MEAN) / STD, per channel (or per feature), with the training split's statistics
SCALE = {scale}
MEAN = {mean}
STD = {std}


def preprocess(raw) -> torch.Tensor:
    """Raw inputs, shaped (N, *INPUT_SHAPE), as the tensor Net expects; single-channel images or
    sequences may omit the channel axis (e.g. (N, 28, 28) grey images); one example (a table row, a
    multi-channel image shaped INPUT_SHAPE) gets a batch axis."""
    x = torch.as_tensor(raw, dtype=torch.float32)
    if x.dim() == len(INPUT_SHAPE):
        if len(INPUT_SHAPE) > 1 and INPUT_SHAPE[0] == 1:
            x = x.unsqueeze(1)  # the channel axis
        elif tuple(x.shape) == INPUT_SHAPE:
            x = x.unsqueeze(0)  # a batch of one
        else:
            raise ValueError(f"expected inputs shaped (N, *{{INPUT_SHAPE}}) or {{INPUT_SHAPE}}, got {{tuple(x.shape)}}")
    if SCALE:
        x = x / SCALE
    if MEAN is None:
        return x
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - torch.tensor(MEAN).view(shape)) / torch.tensor(STD).view(shape)


{classes_source}class Net(nn.Sequential):
    """{doc}"""

    def __init__(self) -> None:
        super().__init__(
{layers}        )


def load(weights: str | Path | None = None) -> Net:
    """The network with its trained weights (default: WEIGHTS beside this file), in eval mode."""
    net = Net()
    path = Path(weights) if weights is not None else Path(__file__).with_name(WEIGHTS)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


if __name__ == "__main__":
    net = load()
    with torch.no_grad():
        out = net(torch.zeros(2, *INPUT_SHAPE))
    print(f"Net: {{sum(p.numel() for p in net.parameters())}} parameters, output {{tuple(out.shape)}}")
'''


def python_source(model: nn.Module, info: ModelInfo, *, weights: str = STATE_DICT) -> str:
    """Source of a standalone module defining ``Net`` (``model``'s architecture) and ``load()``."""
    if type(model) is not nn.Sequential:
        raise ExportError(f"the exporter expects the nn.Sequential the spaces build, not {type(model).__name__}")
    used: set[type[nn.Module]] = set()
    layers = "".join(f"            {_expr(c, 3, used)},\n" for c in model.children())
    classes_source = "".join(_class_source(c) + "\n\n" for c in _CUSTOM if c in used)
    origin = ", ".join(x for x in (f"experiment {info.experiment!r}" if info.experiment else "",
                                   f"trial {info.trial}" if info.trial is not None else "",
                                   f"seed {info.seed}" if info.seed is not None else "") if x) or "a network"
    pre = info.preprocess
    desc = info.description or "A network found by nasforge"
    # user text only as escaped literals: _doc inside the docstrings, _literal (a checked repr) elsewhere
    regression = pre is not None and pre.target is not None
    output = "logits over CLASSES" if not regression else (
        "(N, 1) predictions of CLASSES[0] in its original\nunits (the last layer, Linear(1, 1), undoes the "
        "standardisation of the targets in training)")
    return _TEMPLATE.format(
        output=output, out_var="prediction" if regression else "logits", doc=_doc(_doc_text(desc)), origin=_doc(origin),
        shape_text=_doc(", ".join(map(str, info.input_shape))),
        weights_doc=_doc(weights), input_shape=_literal(tuple(info.input_shape), "input_shape"),
        classes=_literal(tuple(info.classes), "classes"), description=_literal(desc, "description"),
        weights=_literal(weights, "weights"), classes_source=classes_source, layers=layers,
        scale=_literal(pre.scale if pre is not None else None, "preprocess.scale"),
        mean=_literal(pre.mean if pre is not None else None, "preprocess.mean"),
        std=_literal(pre.std if pre is not None else None, "preprocess.std"))


def _check_source(data: bytes, info: ModelInfo) -> None:
    """Compile the exact bytes of a ``model.py`` and read its strings back; ExportError if anything is off."""
    try:
        compile(data, "model.py", "exec", dont_inherit=True)
        tree = ast.parse(data)
    except (SyntaxError, ValueError) as e:
        raise ExportError(f"the generated model.py does not compile ({e}); please report this") from e
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError, SyntaxError):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    net = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Net"), None)
    desc = info.description or "A network found by nasforge"
    module_doc = ast.get_docstring(tree, clean=False) or ""
    if (values.get("DESCRIPTION") != desc or values.get("CLASSES") != tuple(info.classes) or net is None
            or ast.get_docstring(net, clean=False) != _doc_text(desc)
            or not module_doc.startswith(_doc_text(desc) + "\n")):
        raise ExportError("the generated model.py does not read back the description and classes given; "
                          "please report this")


# ---------------------------------------------------------------------- writers
def unstandardise(model: nn.Module, pre: Preprocess | None) -> nn.Module:
    """``model`` followed by a ``Linear(1, 1)`` that maps a regression network's standardised output back to the
    target's units (``y * std + mean``); ``model`` itself where ``pre`` has no target (classification).

    The spaces build an ``nn.Sequential``: its layers keep their names (and state-dict keys), the new one comes last.
    """
    target = pre.target if pre is not None else None
    if target is None:
        return model
    head = nn.Linear(1, 1)
    with torch.no_grad():
        head.weight.fill_(target[1])
        head.bias.fill_(target[0])
    layers = list(model.children()) if type(model) is nn.Sequential else [model]
    return nn.Sequential(*layers, head).eval()


def _plain(model: nn.Module) -> nn.Module:
    """A detached eval-mode copy in the default memory layout (training may leave channels_last)."""
    m = copy.deepcopy(model).eval()
    return m.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def _save_state(model: nn.Module, out_dir: Path) -> Path:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return atomic.torch_save(state, out_dir / STATE_DICT)


def _example(info: ModelInfo) -> torch.Tensor:
    return torch.randn((2, *info.input_shape), generator=torch.Generator().manual_seed(0))


def export_model(model: nn.Module, fmt: str, out_dir: str | Path, info: ModelInfo) -> list[Path]:
    """Write ``model`` in format ``fmt`` (one of :data:`FORMATS`) into ``out_dir``; returns the files."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out = Path(out_dir)
    model = unstandardise(_plain(model), info.preprocess)  # regression: predictions in the target's units
    if fmt == "python":
        data = python_source(model, info).encode("utf-8")  # Python's source encoding, whatever the locale
        _check_source(data, info)
        return [atomic.replace(out / "model.py", lambda p: _write_checked(p, data, info)), _save_state(model, out)]
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing warnings about a future-deprecated API, not about this model
            traced = torch.jit.trace(model, _example(info))
        return [atomic.replace(out / "model_torchscript.pt", lambda p: torch.jit.save(traced, str(p)))]
    if fmt == "onnx":
        return [atomic.replace(out / "model.onnx", lambda p: _onnx(model, info, p))]
    genotype = {
        "format": "nasforge-genotype", "version": 1, "experiment": info.experiment, "trial": info.trial,
        "seed": info.seed, "description": info.description,
        "sample": dict(info.sample) if info.sample is not None else None,
        "space": dict(info.space) if info.space is not None else None,
        **({"reference": info.reference} if info.reference is not None else {}),
        **({"members": info.members} if info.members > 1 else {}),
        "input_shape": list(info.input_shape), "classes": list(info.classes),
        "params": count_params(model), "flops": count_flops(model, tuple(info.input_shape)),
        "test": dict(info.test) if info.test is not None else None, "weights": STATE_DICT,
        "preprocess": info.preprocess.to_json() if info.preprocess is not None else None,
        **({"reader": dict(info.reader)} if info.reader is not None else {}),
    }
    text = json.dumps(genotype, indent=2)
    return [atomic.write_text(out / "model.json", text), _save_state(model, out)]


def _write_checked(path: Path, data: bytes, info: ModelInfo) -> None:
    """Write ``model.py`` and compile what is on disk before it replaces the previous export."""
    path.write_bytes(data)
    _check_source(path.read_bytes(), info)


def _onnx(model: nn.Module, info: ModelInfo, path: Path) -> None:
    try:
        import onnx
    except ImportError:
        raise ExportError("format onnx needs the onnx package: pip install 'nasforge[onnx]'") from None
    kw: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # the TorchScript-based exporter: no onnxscript needed, and these nets are static
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        name = "prediction" if info.preprocess is not None and info.preprocess.target is not None else "logits"
        torch.onnx.export(model, (_example(info),), str(path), input_names=["input"], output_names=[name],
                          dynamic_axes={"input": {0: "batch"}, name: {0: "batch"}}, **kw)
    onnx.checker.check_model(str(path))


# ---------------------------------------------------------------------- loaders
def load_python(path: str | Path, weights: str | Path | None = None) -> nn.Module:
    """Import an exported ``model.py`` by path and return its ``load(weights)``."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"nasforge_export_{abs(hash(str(path.resolve())))}", path)
    if spec is None or spec.loader is None:
        raise ExportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net: nn.Module = module.load(weights)
    return net


def model_from_genotype(path: str | Path, weights: str | Path | None = None) -> nn.Module:
    """Rebuild an exported genotype with nasforge's own space; with weights (default: the ones beside it). A
    regression network comes with its last layer that returns predictions in the target's units (see
    :func:`unstandardise`)."""
    from nasforge.final.references import make_reference
    from nasforge.space import make_space

    path = Path(path)
    g = json.loads(path.read_text())
    reference = g.get("reference")
    if g.get("format") != "nasforge-genotype" or (reference is None and (g.get("sample") is None
                                                                         or g.get("space") is None)):
        raise ExportError(f"{path} is not a nasforge genotype with a sample and a space, or a reference's name")
    shape = tuple(int(d) for d in g["input_shape"])
    pre = Preprocess.from_json(g["preprocess"]) if g.get("preprocess") else None
    if reference is not None:
        def build() -> nn.Module:
            return make_reference(str(reference), shape, len(g["classes"]))[1]
    else:
        space = make_space(g["space"], shape)

        def build() -> nn.Module:
            return space.build(g["sample"], shape, len(g["classes"]))
    model = build_ensemble(build, int(g.get("members", 1)), regression=pre is not None and pre.target is not None)
    w = Path(weights) if weights is not None else path.with_name(g.get("weights") or STATE_DICT)
    model = unstandardise(model, pre)
    model.load_state_dict(torch.load(w, map_location="cpu", weights_only=True))
    return model.eval()


def export_script(path: str | Path, fmt: str, out_dir: str | Path, *, stem: str,
                  input_shape: tuple[int, ...]) -> list[Path]:
    """A compressed network's TorchScript file (``nasforge compress`` writes it) as TorchScript or ONNX.

    ``torchscript`` copies the file (``model_<stem>_torchscript.pt``); ``onnx`` exports the loaded file
    (``model_<stem>.onnx``). An int8 network that ONNX's exporter cannot express is refused in one line.
    """
    from nasforge.final.compress import quantized_engine

    out = Path(out_dir)
    if fmt == "torchscript":
        return [atomic.write_bytes(out / f"model_{stem}_torchscript.pt", Path(path).read_bytes())]
    if fmt != "onnx":
        raise ExportError(f"a compressed network exports as torchscript or onnx, not {fmt!r}")
    info = ModelInfo(input_shape=tuple(input_shape), classes=())
    with quantized_engine():
        script = torch.jit.load(str(path), map_location="cpu")
        try:
            return [atomic.replace(out / f"model_{stem}.onnx", lambda p: _onnx(script, info, p))]
        except ExportError:
            raise
        except Exception as e:  # the exporter's many failures on quantized ops
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ExportError(f"ONNX cannot express the {stem} network ({first}); export it with --format "
                              "torchscript instead") from None

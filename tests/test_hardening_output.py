"""What nasforge writes cannot be broken by what it writes about: exported code from hostile strings,
the report page's Content-Security-Policy and escaping, and atomic writes (no torn file, no leftover
temporary) at every place a file is written."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from nasforge import atomic
from nasforge.config import from_dict
from nasforge.evaluate import torch_eval
from nasforge.final import export
from nasforge.final.export import ExportError, ModelInfo, export_model
from nasforge.report.browser import find_chromium, plots_loaded, render
from nasforge.report.html import CSP, CSS, FIGURES, SORTER, num_cell, write_report
from nasforge.space import ChainSpace
from nasforge.space.chain import chain_sample
from nasforge.store import Store
from nasforge.types import Cost, Trial, TrialState

SRC = Path(__file__).resolve().parents[1] / "src" / "nasforge"
HOSTILE = [
    '"""; import os; os.system("echo pwned")  #',
    'ends in a quote"',
    "ends in a backslash\\",
    "\\N{oops} \\x \\u12",
    "line\nbreak\r\nand\ttab\x0c\x0b\x1c\u2028\u2029",
    "nul\x00byte",
    "lone surrogate \udcff and \ud800",
    "'''single''' and \"double\" ' \" `",
    "{braces} {0} {description} %s",
    "</script><script>alert(1)</script>",
    "émoji 🦊 and ＼ fullwidth",
    "",
]


def import_file(path: Path, name: str = "exported_model"):
    spec = importlib.util.spec_from_file_location(f"{name}_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3))


def check_export(out: Path, description: str, experiment: str | None, classes: tuple[str, ...]) -> None:
    """Export, import what was written, and read every string back."""
    info = ModelInfo(input_shape=(4,), classes=classes, description=description, experiment=experiment, trial=3)
    files = export_model(tiny_net(), "python", out, info)
    assert [f.name for f in files] == ["model.py", "model_state_dict.pt"]
    assert sorted(p.name for p in out.iterdir()) == ["model.py", "model_state_dict.pt"]  # no temporaries
    source = (out / "model.py").read_bytes()
    compile(source, "model.py", "exec")
    mod = import_file(out / "model.py")
    desc = description or "A network found by nasforge"
    description_read, classes_read = mod.DESCRIPTION, mod.CLASSES
    assert description_read == desc and classes_read == classes
    shown = desc.encode("utf-8", "backslashreplace").decode("utf-8")  # a class docstring must be UTF-8
    assert mod.Net.__doc__ == shown and mod.__doc__.startswith(shown + "\n")
    assert "pwned" not in {k for k in vars(mod) if not k.startswith("_")}
    net = mod.load()
    assert tuple(net(torch.zeros(2, 4)).shape) == (2, 3)


# ---------------------------------------------------------------------- item 4: exported model.py
@pytest.mark.parametrize("text", HOSTILE)
def test_exported_model_compiles_and_round_trips_hostile_strings(tmp_path, text):
    check_export(tmp_path / "as-description", text, None, ("a",))
    check_export(tmp_path / "as-experiment", "plain", text or None, ("a",))
    check_export(tmp_path / "as-class", "plain", "e", (text, "b"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(description=st.text(), experiment=st.text(), classes=st.lists(st.text(), min_size=1, max_size=3))
def test_any_strings_give_a_model_py_that_compiles_imports_and_round_trips(description, experiment, classes):
    with tempfile.TemporaryDirectory() as d:
        check_export(Path(d), description, experiment or None, tuple(classes))


def test_export_compiles_the_file_before_reporting_success(tmp_path, monkeypatch):
    """A generator bug that writes broken source is an ExportError, and the previous export stays."""
    out = tmp_path / "x"
    check_export(out, "first", None, ("a",))
    before = (out / "model.py").read_bytes()
    monkeypatch.setattr(export, "_TEMPLATE", export._TEMPLATE.replace("def load(", "def load((", 1))
    with pytest.raises(ExportError, match="does not compile"):
        export_model(tiny_net(), "python", out, ModelInfo(input_shape=(4,), classes=("a",), description="second"))
    assert (out / "model.py").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["model.py", "model_state_dict.pt"]


def test_export_refuses_values_that_are_not_literals(tmp_path):
    from nasforge.data.base import Preprocess

    pre = Preprocess(scale=None, mean=(float("nan"),), std=(1.0,))
    with pytest.raises(ExportError, match="cannot be written as Python source"):
        export_model(tiny_net(), "python", tmp_path, ModelInfo(input_shape=(4,), classes=("a",), preprocess=pre))
    assert not (tmp_path / "model.py").exists()


# ---------------------------------------------------------------------- item 5: the report page
class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in self.data else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in:
            self.data[self._in].append(data)


def parse(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


EVIL = "x' onmouseover='alert(1)' \"><script>alert(2)</script>"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A stored experiment (no training) whose trial carries hostile text, and its report."""
    d = tmp_path_factory.mktemp("rep")
    cfg = from_dict({"name": "h", "data": {"source": "digits"}, "space": {"kind": "chain", "max_blocks": 3}})
    space = ChainSpace(max_blocks=3)
    s = chain_sample(space, [{"type": "conv", "width": 32}, {"type": "pool"}])
    trials = [Trial(0, space.key(s), s, TrialState.COMPLETE, score=0.8, cost=Cost(500, 9000),
                    curve=({"epoch": 1.0, "val_accuracy": 0.8},)),
              Trial(1, "f", s, TrialState.FAILED, reason=EVIL)]
    with Store(d / "h.db") as st_:
        exp = st_.create_experiment(cfg.name, cfg.to_json(), cfg.fingerprint())
        for t in trials:
            st_.add_trial(exp.id, t)
    return write_report(d / "h.db")


def test_report_page_has_a_strict_csp_matching_its_only_script_and_style(hostile_report):
    page = hostile_report.read_text(encoding="utf-8")
    tags = parse(page)
    metas = [a for t, a in tags.tags if t == "meta" and (a.get("http-equiv") or "").lower()
             == "content-security-policy"]
    assert len(metas) == 1 and metas[0]["content"] == CSP
    assert page.index("Content-Security-Policy") < page.index("<style>")  # before anything it governs
    policy = {d.split()[0]: d.split()[1:] for d in CSP.split(";")}
    assert policy["default-src"] == ["'none'"] and policy["img-src"] == ["data:"]
    assert policy["script-src"] == [sha(SORTER)] and policy["style-src"] == [sha(CSS)]
    assert "'unsafe-inline'" not in CSP and "http" not in CSP and '"' not in CSP
    # the page's one script and one style sheet are exactly the hashed texts
    assert tags.data["script"] == [SORTER] and tags.data["style"] == [CSS]
    assert sum(t == "script" for t, _ in tags.tags) == 1 and sum(t == "style" for t, _ in tags.tags) == 1
    for _, attrs in tags.tags:  # nothing the policy would block: no style or event-handler attributes
        assert "style" not in attrs and not any(k.startswith("on") for k in attrs)
        if "src" in attrs:
            assert (attrs["src"] or "").startswith("data:image/png;base64,")
    assert EVIL not in page and html.escape(EVIL, quote=True) in page  # the failure reason, shown as text


def test_report_escapes_every_attribute_value():
    for v in (EVIL, 0.5, 3, "a'b\"c<d>&e"):
        tags = parse(num_cell(v, "shown"))  # type: ignore[arg-type]  # e.g. a text column from an old database
        assert tags.tags == [("td", {"data-v": str(v)})]


def test_report_page_script_runs_under_its_csp_in_chromium(hostile_report, tmp_path):
    """The hashed script runs and the hashed style applies; an injected script does not run."""
    if find_chromium() is None:
        pytest.skip("chromium is not installed (make setup installs Debian's chromium)")
    page = hostile_report.read_text(encoding="utf-8")
    assert plots_loaded(render(hostile_report)) == len(FIGURES)  # the page's own script ran, figures decoded
    probe = ("window.addEventListener('load', function () { document.body.setAttribute('data-header-bg', "
             "getComputedStyle(document.querySelector('header')).backgroundColor); });")
    injected = "document.body.setAttribute('data-injected', 'ran');"
    test_page = (page.replace(f"script-src {sha(SORTER)}", f"script-src {sha(SORTER)} {sha(probe)}")
                 .replace("</body>", f"<script>{probe}</script><script>{injected}</script>"
                                     "<img id='remote' src='https://example.invalid/x.png'></body>"))
    (tmp_path / "t.html").write_text(test_page, encoding="utf-8")
    dom = render(tmp_path / "t.html")
    assert 'data-header-bg="rgb(35, 57, 93)"' in dom  # the style sheet applied: its hash is right
    assert "data-injected" not in dom.split("<script>")[0]  # the unhashed script was blocked
    assert plots_loaded(dom) == len(FIGURES)


# ---------------------------------------------------------------------- item 12: atomic writes
def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.startswith("."))


def test_atomic_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    target = tmp_path / "f.bin"
    atomic.write_bytes(target, b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"ne")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic.replace(target, half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        atomic.replace(target, lambda tmp: (tmp.write_bytes(b"n"), (_ for _ in ()).throw(KeyboardInterrupt())))
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []
    assert atomic.write_text(tmp_path / "new" / "t.txt", "é\udcff".encode("utf-8", "surrogateescape")
                             .decode("utf-8", "replace")).read_text(encoding="utf-8") == "é\ufffd"


def test_atomic_writers_never_share_a_temporary_file(tmp_path):
    """Two writers of one path: each renames its own complete file (a shared ``x.tmp`` tore one)."""
    target = tmp_path / "x.pt"
    first_started, second_done = threading.Event(), threading.Event()
    names: list[str] = []

    def slow(tmp: Path) -> None:
        names.append(tmp.name)
        tmp.write_bytes(b"A" * 1000)
        first_started.set()
        second_done.wait(10)

    t = threading.Thread(target=atomic.replace, args=(target, slow))
    t.start()
    first_started.wait(10)
    atomic.replace(target, lambda tmp: (names.append(tmp.name), tmp.write_bytes(b"B" * 10)))
    second_done.set()
    t.join()
    assert len(set(names)) == 2 and target.read_bytes() == b"A" * 1000 and leftovers(tmp_path) == []


def test_atomic_files_get_ordinary_permissions(tmp_path):
    p = atomic.write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    p.chmod(0o640)
    atomic.write_text(p, "y")
    assert p.stat().st_mode & 0o777 == 0o640


def failing_torch_save(obj, f, *args, **kwargs):
    """torch.save that writes part of the file, then hits a full disk."""
    with open(f, "wb") as fh:
        fh.write(b"PK\x03\x04 half a file")
    raise OSError(28, "No space left on device")


def test_export_and_checkpoint_writes_leave_no_temporary_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "export"
    check_export(out, "first", None, ("a",))
    weights = (out / "model_state_dict.pt").read_bytes()
    ckpt = tmp_path / "ckpt" / "trial.pt"
    torch_eval._save_checkpoint(ckpt, {"epoch": 1})
    monkeypatch.setattr(torch, "save", failing_torch_save)
    with pytest.raises(OSError, match="No space"):
        export_model(tiny_net(), "python", out, ModelInfo(input_shape=(4,), classes=("a",)))
    with pytest.raises(OSError, match="No space"):
        torch_eval._save_checkpoint(ckpt, {"epoch": 2})
    monkeypatch.undo()
    assert (out / "model_state_dict.pt").read_bytes() == weights and leftovers(out) == []
    assert torch.load(ckpt, weights_only=True) == {"epoch": 1} and leftovers(ckpt.parent) == []


def test_no_module_writes_through_a_fixed_temporary_name():
    """Every file write goes through nasforge.atomic (unique temporaries), not ``path + '.tmp'``."""
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py") if p.name != "atomic.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"""["']\.tmp["']""", line)]
    assert offenders == []


_FULL_DISK = r"""
import resource, signal, sys
import matplotlib.font_manager  # warm the font cache before the disk 'fills'
from nasforge.report import html
limit = int(sys.argv[2])
load = html.load
def load_then_fill(*a, **k):
    data = load(*a, **k)  # the database is read; from here on every file may grow to `limit` bytes only
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return data
html.load = load_then_fill
try:
    html.write_report(sys.argv[1])
except OSError as e:
    print("failed:", e)
    sys.exit(3)
"""


@pytest.mark.parametrize("fills_at", ["first figure", "page"])
def test_report_on_a_full_disk_keeps_the_previous_page_and_figures(hostile_report, tmp_path, fills_at):
    """A disk that fills while the report is written (RLIMIT_FSIZE): no half figure, no half page, no temporary."""
    db = tmp_path / "h.db"
    db.write_bytes((hostile_report.parent.parent / "h.db").read_bytes())
    folder = write_report(db).parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    pngs = [len(b) for n, b in before.items() if n.endswith(".png")]
    assert len(pngs) == len(FIGURES) and len(before["index.html"]) > max(pngs) + 4096
    limit = 200 if fills_at == "first figure" else max(pngs) + 4096  # figures fit, the page does not
    r = subprocess.run([sys.executable, "-c", _FULL_DISK, str(db), str(limit)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3 and "failed:" in r.stdout, r.stderr[-2000:]
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(after) == sorted(before)  # no temporary left behind
    assert after["index.html"] == before["index.html"]
    for name, data in after.items():  # each figure whole: the old one or a complete new one
        if name.endswith(".png"):
            assert data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82"), name

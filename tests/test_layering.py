"""core stays below trainer and the pages, and holds no training code: no core module imports `trainer`,
Streamlit, Keras, TensorFlow or the ONNX exporters, even lazily inside a function; importing every core
module and calling what once loaded them (activate, the run-name rules) loads none of them."""
import ast
import json
import subprocess
import sys

from tests.conftest import REPO

PROBE = r"""
import importlib, json, pkgutil, sys
import core
loaded = {}
for info in pkgutil.iter_modules(core.__path__):
    if info.name != "__main__":
        importlib.import_module(f"core.{info.name}")
forbidden = lambda: sorted(m for m in sys.modules if m.split(".")[0] in ("trainer", "streamlit", "tensorflow", "keras"))
loaded["after_imports"] = forbidden()
from core.model import ModelError
from core.registry import activate, safe_run_dir
for call in (lambda: activate("no-such-run"), lambda: safe_run_dir("../escape"), lambda: safe_run_dir("shipped")):
    try:
        call()
    except (ModelError, ValueError):
        pass
    else:
        raise SystemExit("a bad name was accepted")
loaded["after_calls"] = forbidden()
print(json.dumps(loaded))
"""


def test_core_imports_neither_trainer_streamlit_nor_tensorflow(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"FKS_RUNS_DIR": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"after_imports": [], "after_calls": []}


#: Packages core never imports: the trainer and the pages' framework, and the training stack (Keras,
#: TensorFlow, and the exporters that make ONNX twins: trainer.export's job).
NOT_IN_CORE = {"trainer", "pages", "streamlit", "streamlit_webrtc", "keras", "tensorflow", "tf2onnx", "onnx"}


def imported_packages(source: str) -> set[str]:
    """Top-level packages a module imports anywhere: at the top, inside functions, or under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_import_scan_sees_lazy_and_type_checking_imports():
    source = "import os\nif TYPE_CHECKING:\n    import keras\ndef f():\n    from tensorflow import nn\n"
    assert imported_packages(source) == {"os", "keras", "tensorflow"}


def test_no_core_module_imports_keras_tensorflow_trainer_or_streamlit():
    offenders = {path.name: sorted(imported_packages(path.read_text()) & NOT_IN_CORE)
                 for path in sorted((REPO / "core").glob("*.py"))}
    assert len(offenders) > 15  # every core module was read
    assert {name: found for name, found in offenders.items() if found} == {}


#: Packages the trainer never imports: the pages and what draws them (views live under pages/ui).
NOT_IN_TRAINER = {"pages", "streamlit", "streamlit_webrtc", "plotly"}


def test_no_trainer_module_imports_the_pages_or_their_drawing():
    offenders = {path.name: sorted(imported_packages(path.read_text()) & NOT_IN_TRAINER)
                 for path in sorted((REPO / "trainer").glob("*.py"))}
    assert len(offenders) > 20  # every trainer module was read
    assert {name: found for name, found in offenders.items() if found} == {}

"""core stays below trainer and the pages: importing any core module, and calling what used to import
`trainer` lazily (activate, the run-name rules), loads neither `trainer`, Streamlit nor TensorFlow."""
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
forbidden = lambda: sorted(m for m in sys.modules if m.split(".")[0] in ("trainer", "streamlit", "tensorflow"))
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

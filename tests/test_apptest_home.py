"""The home page headless (Streamlit's AppTest): a model trained from the Training page is described the
way a person names things (its run, the uploaded file's own name), with commands they can run here."""
import shutil

from tests.conftest import REPO


def test_a_trained_runs_card_names_the_run_the_upload_and_no_server_paths(tmp_path, monkeypatch, tiny_model_path):
    from streamlit.testing.v1 import AppTest

    from core.card import ModelCard
    from core.model import onnx_path_for

    run = tmp_path / "runs" / "my-run"
    run.mkdir(parents=True)
    model = run / "model.keras"
    shutil.copy(tiny_model_path, model)
    shutil.copy(onnx_path_for(tiny_model_path), onnx_path_for(model))
    config = run / "config.json"
    ModelCard.from_dict({
        "run": "my-run",
        "data": {"source": str(tmp_path / "data" / "uploads" / "0123456789ab-faces-of-friends.csv"), "rows": 30},
        "command": f"python -m trainer train --config {config} --run my-run",
        "reproduce": [f"python -m trainer train --config /tmp/elsewhere/my-run.json --run my-run --data "
                      f"{REPO / 'data' / 'mine.csv'}"],
    }).write(model)
    monkeypatch.setenv("FKS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FKS_MODEL", str(model))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    summary = at.table[0].value["value"]
    assert summary["file"] == "run 'my-run' (runs/my-run/model.keras)"
    assert summary["trained on"].startswith("30 rows of faces-of-friends.csv")
    shown = at.code[0].value
    assert shown == "python -m trainer train --config my-run.json --run my-run --data data/mine.csv"
    assert "/tmp" not in shown and str(REPO) not in shown
    assert any(h.value == "Start here" for h in at.subheader)

"""The training page's fields and tables as plain functions (pages.ui.form)."""
import numpy as np
import pandas as pd
import pytest

from pages.ui import form


def test_widths_and_held_out_rows_parse_or_say_what_is_wrong():
    assert form.parse_widths("32, 64,128") == (32, 64, 128)
    assert form.parse_test_size("500") == 500 and isinstance(form.parse_test_size("500"), int)
    assert form.parse_test_size("0.1") == 0.1
    for bad in ("", "abc", "-3", "0", "12.5", "nan", "inf"):
        with pytest.raises(ValueError):
            form.parse_test_size(bad)
    for bad in ("", "32,x", "0,32"):
        with pytest.raises(ValueError):
            form.parse_widths(bad)
    assert form.stage_grid([1e-4, 1e-3], [64, 32]) == ((1e-3, 1e-4), (32, 64))
    with pytest.raises(ValueError):
        form.stage_grid([], [32])


def test_registry_marks_the_active_run_and_shows_no_none(tmp_path, monkeypatch):
    runs = pd.DataFrame({"run": ["a", "b"], "status": ["finished", "cancelled"], "started": ["x", "y"],
                         "train rows": [120, None], "test RMSE px": [2.345, None], "NME": [None, np.nan],
                         "wall s": [61.2, None]})
    from core.registry import active_run

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "model.keras").write_bytes(b"")
    monkeypatch.setenv("FKS_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("FKS_MODEL", str(tmp_path / "a" / "model.keras"))
    assert active_run() == "a"
    table = form.registry_table(runs, active_run())
    assert list(table["active"]) == ["✔ active", ""]
    monkeypatch.setenv("FKS_MODEL", str(tmp_path / "elsewhere.keras"))
    assert active_run() is None and list(form.registry_table(runs, active_run())["active"]) == ["", ""]
    assert table.loc[0, "train rows"] == "120" and table.loc[0, "test RMSE px"] == "2.35"
    assert not table.isin(["None", "nan"]).any().any() and table.loc[1, "NME"] == form.MISSING
    with_problems = form.registry_table(runs.assign(problem=[None, "config.json is not JSON"]), "a")
    assert list(with_problems["problem"]) == ["", "config.json is not JSON"]


def test_the_held_out_default_leaves_a_small_file_rows_to_train_on():
    assert form.default_test_size(30) == "0.1" and form.default_test_size(4999) == "0.1"
    assert form.default_test_size(5000) == "500" and form.default_test_size(7049) == "500"


def test_loss_axes_fit_the_numbers():
    assert form.loss_axis(pd.Series([0.9, 0.6])) == {"type": "linear"}  # under a decade: no crowded log ticks
    assert form.loss_axis(pd.Series([1.0, 0.01]))["type"] == "log"
    assert form.loss_axis(pd.Series([0.2, 5.0])) == {"type": "log", "dtick": "D2"}  # 1.2 decades: 0.2, 0.5, 1, 2, 5
    assert form.loss_axis(pd.Series([1e-4, 1.0])) == {"type": "log", "dtick": 1}  # four decades: one tick each
    one = form.epoch_axis(1)
    assert one["range"] == [0.5, 1.5] and one["dtick"] == 1  # one epoch: one point in the middle, tick "1"
    assert form.epoch_axis(135)["dtick"] >= 10


def test_use_this_model_names_a_much_worse_model():
    from core.card import ModelCard

    def card(nme=None, rmse=None):
        metrics = ({"end_to_end": {"nme": nme}} if nme else {}) | ({"test_rmse_px": rmse} if rmse else {})
        return ModelCard.from_dict({"metrics": metrics})

    shipped = card(nme=0.0509, rmse=2.1)
    assert form.much_worse(card(nme=0.12, rmse=18.0), shipped) == "held-out NME 0.1200 against 0.0509 (2.4x)"
    assert form.much_worse(card(rmse=18.0), shipped) == "test error 18.00 px against 2.10 px (8.6x)"
    assert form.much_worse(card(nme=0.052, rmse=2.2), shipped) is None  # about as good
    assert form.much_worse(card(), shipped) is None and form.much_worse(card(nme=0.2), None) is None


def test_the_loss_axis_names_the_unit_of_the_loss_the_runs_trained_with():
    assert form.loss_axis_title(["wing"]) == "wing loss (crop px)"  # not MSE: the studio preset's loss
    assert form.loss_axis_title(["mse", "mse"]) == "MSE (normalised coordinates)"
    assert form.loss_axis_title(["wing", "mse"]) == "loss (mse / wing, each in its own unit)"

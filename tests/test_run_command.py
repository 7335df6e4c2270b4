"""A run started from the training page records a command that reproduces it (the page's config included)."""
import json
import shlex
import subprocess
import sys

import pytest

from trainer import jobs
from trainer.cards import command_line
from trainer.cli import _parser, config_from_args
from trainer.config import RecipeConfig, config_for


def test_a_page_run_records_a_command_that_trains_the_same_config(tmp_path, monkeypatch):
    launched, real_popen = [], subprocess.Popen

    def popen(argv, **kwargs):  # the page's launch, without spending minutes training
        launched.append(argv)
        return real_popen([sys.executable, "-c", "pass"])

    monkeypatch.setattr(jobs.subprocess, "Popen", popen)
    page_config = config_for("quick", {"max_rotation_deg": 5.0}, data="data/mine.csv.gz", widths=(8, 16, 16, 32, 32),
                             epochs_per_stage=2, test_size=0.2, seed=7).to_dict()
    run = jobs.start("from-page", page_config, tmp_path / "runs")
    argv = launched[0]
    assert argv[1:4] == ["-m", "trainer", "train"] and argv[-2:] == ["--run", "from-page"]

    # The training process records its own command line in the card (trainer.cards.run_card).
    monkeypatch.setattr(sys, "argv", [str(jobs.REPO_ROOT / "trainer" / "__main__.py"), *argv[3:]])
    command = command_line()
    config_file = run / "config.json"
    assert command == f"python -m trainer train --config {config_file} --run from-page"

    # That command, given a new run name (or run anywhere the file is), trains exactly the page's config.
    args = _parser().parse_args(shlex.split(command)[3:-2] + ["--run", "again"])
    assert config_from_args(args) == RecipeConfig.from_dict(json.loads(config_file.read_text()))
    assert config_from_args(args).to_dict() == RecipeConfig.from_dict(page_config).to_dict()


def test_options_given_beside_config_override_it_and_data_defaults_only_without_one(tmp_path):
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps({"data": "elsewhere.csv", "epochs_per_stage": 3}))
    args = _parser().parse_args(["train", "--config", str(config_file), "--epochs", "5"])
    config = config_from_args(args)
    assert config.data == "elsewhere.csv" and config.epochs_per_stage == 5
    assert config_from_args(_parser().parse_args(["train"])).data == "data/youtube68.csv.gz"


def test_a_model_card_as_config_trains_what_the_card_was_trained_by(tmp_path):
    from tests.conftest import REPO

    card = json.loads((REPO / "models" / "keypoints.json").read_text())
    config = config_from_args(_parser().parse_args(["train", "--config", str(REPO / "models" / "keypoints.json")]))
    assert config.to_dict() == RecipeConfig.from_dict(card["config"]).to_dict()
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    with pytest.raises(ValueError, match="no JSON object"):
        config_from_args(_parser().parse_args(["train", "--config", str(not_an_object)]))
    broken = tmp_path / "broken.json"
    broken.write_text("{bad")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        config_from_args(_parser().parse_args(["train", "--config", str(broken)]))

"""bfloat16 only where the CPU computes it natively: the choice per CPU, and what a run records of it."""
import json
import threading

import pytest

from tests.helpers import write_synthetic_csv
from trainer import events as ev
from trainer.config import RecipeConfig, config_for
from trainer.precision import choose_precision, cpu_flags, resolve
from trainer.recipe import Cancelled, train

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
EPYC_GENOA = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_bf16", "avx512_vnni"}
XEON_AMX = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize("flags, environ, compute", [
    (AVX2_ONLY, {}, "float32"),  # bf16 would be emulated
    (EPYC_GENOA, {}, "bfloat16"),
    (XEON_AMX, {}, "bfloat16"),
    (EPYC_GENOA, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32"),  # oneDNN capped below its bf16 kernels
    (EPYC_GENOA, {"ONEDNN_MAX_CPU_ISA": "avx512_core"}, "float32"),
    (EPYC_GENOA, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "bfloat16"),
    (XEON_AMX, {"ONEDNN_MAX_CPU_ISA": "ALL"}, "bfloat16"),
    (XEON_AMX, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "float32"),  # TensorFlow's own kernels emulate bf16
    (frozenset(), {}, "float32"),  # no cpuinfo (another OS): the safe choice
])
def test_bfloat16_only_where_the_cpu_computes_it(flags, environ, compute):
    choice = choose_precision(flags, environ)
    assert choice.compute == compute and choice.mixed_precision == (compute == "bfloat16")
    assert choice.reason.startswith(compute + ":")
    if environ and compute == "float32":
        assert "=".join(next(iter(environ.items()))) in choice.reason


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = "processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_a_forced_precision_says_what_auto_would_have_chosen():
    auto = choose_precision()
    for forced in (True, False):
        choice = resolve(forced)
        assert choice.mixed_precision is forced and f"auto would choose {auto.compute}" in choice.reason
    assert resolve("auto") == auto


def test_the_default_preset_decides_per_cpu_and_the_run_records_it(tmp_path, monkeypatch):
    assert config_for().mixed_precision == "auto"
    with pytest.raises(ValueError, match="mixed precision"):
        RecipeConfig(mixed_precision="sometimes")
    # as on a CPU without bf16 (flags, not the ONEDNN_MAX_CPU_ISA cap: oneDNN reads that once per process)
    monkeypatch.setattr("trainer.precision.cpu_flags", lambda: AVX2_ONLY)
    data = write_synthetic_csv(tmp_path / "d.csv", n=24, people=6)
    config = config_for("quick", data=str(data), widths=(4, 4, 4, 4, 4), test_size=4, pseudo_label=False,
                        mixed_precision="auto", epochs_per_stage=2)
    cancel = threading.Event()

    def stop_after_the_first_epoch(e: ev.Event) -> None:
        if isinstance(e, ev.EpochEnd):
            cancel.set()

    with pytest.raises(Cancelled):
        train(config, tmp_path / "run", ev.EventBus([stop_after_the_first_epoch]), cancel_event=cancel)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["mixed_precision"] == "auto" and recorded["precision"]["compute"] == "float32"
    assert "no bf16" in recorded["precision"]["reason"], recorded["precision"]
    from trainer.export import load_keras_model

    assert load_keras_model(tmp_path / "run" / "checkpoint.keras").get_layer("conv2").compute_dtype == "float32"
    # resumed on a CPU with bf16, the run keeps the choice it started with
    monkeypatch.setattr("trainer.precision.cpu_flags", lambda: EPYC_GENOA)
    card = train(config, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == recorded["precision"]
    assert card.config["precision"] == recorded["precision"]


def test_a_run_whose_config_was_written_first_records_its_precision_too(tmp_path):
    """The Training page writes config.json before the trainer starts (trainer.jobs): the choice is added to it."""
    data = write_synthetic_csv(tmp_path / "d.csv", n=24, people=6)
    config = config_for("quick", data=str(data), widths=(4, 4, 4, 4, 4), test_size=4, pseudo_label=False,
                        mixed_precision="auto")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(config.to_dict()))
    card = train(config, tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["precision"]
    assert recorded == choose_precision().to_dict() == card.config["precision"]


def test_workers_on_different_cpus_train_the_same_recipe():
    """Each machine of a multi-worker run chooses its own precision; that is not a different recipe."""
    from trainer.distributed import config_digest

    config = config_for().to_dict()
    bf16 = {**config, "precision": choose_precision(XEON_AMX, {}).to_dict()}
    fp32 = {**config, "precision": choose_precision(AVX2_ONLY, {}).to_dict()}
    assert config_digest(bf16) == config_digest(fp32)
    assert config_digest({**bf16, "mixed_precision": True}) != config_digest(bf16)

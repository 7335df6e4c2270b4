"""Which precision training computes in on this CPU: bfloat16 only where the CPU has bf16 instructions.

bfloat16 compute is faster only where the hardware does bf16 arithmetic (Intel AMX, AVX-512 BF16);
elsewhere TensorFlow emulates it, several times slower than float32. So RecipeConfig's
`mixed_precision="auto"` (the studio preset) decides per machine from the CPU flags, also honouring
ONEDNN_MAX_CPU_ISA (oneDNN capped below its bf16 kernels has no bf16 convolution at all) and
TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's own kernels emulate bf16). The decision and its reason go into
the run's config and card.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

#: CPU flags (as /proc/cpuinfo names them) that mean bf16 arithmetic in hardware.
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")
#: ONEDNN_MAX_CPU_ISA values that still allow oneDNN's bf16 kernels on such a CPU (oneDNN's ISA names).
BF16_ISAS: tuple[str, ...] = ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                              "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512",
                              "AVX10_2_512_AMX_2")
#: The flags worth printing beside a speed figure: what a figure was measured on.
SHOWN_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_flags(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first processor's `flags` line); empty where there is no cpuinfo."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class PrecisionChoice:
    """The compute precision chosen for training and why, as the run's config and card record it."""

    mixed_precision: bool
    compute: str  # "bfloat16" or "float32"
    reason: str
    cpu_flags: tuple[str, ...]  # SHOWN_FLAGS this CPU has
    onednn_max_cpu_isa: str | None

    def to_dict(self) -> dict:
        """As JSON keeps it (flags as a list), so a record read back from config.json compares equal."""
        return {**asdict(self), "cpu_flags": list(self.cpu_flags)}


def choose_precision(flags: frozenset[str] | None = None, environ: Mapping[str, str] | None = None) -> PrecisionChoice:
    """bfloat16 where the CPU computes it natively (BF16_FLAGS, and oneDNN not capped below them), else float32."""
    flags = cpu_flags() if flags is None else flags
    env: Mapping[str, str] = os.environ if environ is None else environ
    cap = env.get("ONEDNN_MAX_CPU_ISA") or env.get("DNNL_MAX_CPU_ISA") or None
    native = [f for f in BF16_FLAGS if f in flags]
    shown = tuple(f for f in SHOWN_FLAGS if f in flags)
    if not native:
        reason = ("float32: this CPU has no bf16 instructions (no amx_bf16 or avx512_bf16), so bfloat16 would be "
                  "emulated, several times slower")
        return PrecisionChoice(False, "float32", reason, shown, cap)
    if env.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("0", "false"):
        reason = (f"float32: the CPU has {native[0]}, but TF_ENABLE_ONEDNN_OPTS=0 leaves TensorFlow's own kernels, "
                  "which emulate bfloat16")
        return PrecisionChoice(False, "float32", reason, shown, cap)
    if cap is not None and cap.upper() not in BF16_ISAS:
        reason = (f"float32: the CPU has {native[0]}, but ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below its bf16 "
                  "kernels, where bfloat16 convolutions do not run")
        return PrecisionChoice(False, "float32", reason, shown, cap)
    reason = f"bfloat16: this CPU computes it natively ({', '.join(native)})"
    return PrecisionChoice(True, "bfloat16", reason, shown, cap)


def resolve(mixed_precision: bool | str) -> PrecisionChoice:
    """A RecipeConfig.mixed_precision value (True, False or "auto") as the choice a run trains with."""
    if mixed_precision == "auto":
        return choose_precision()
    forced = bool(mixed_precision)
    auto = choose_precision()
    reason = f"{'bfloat16' if forced else 'float32'}: chosen in the configuration (auto would choose {auto.compute})"
    return PrecisionChoice(forced, "bfloat16" if forced else "float32", reason, auto.cpu_flags, auto.onednn_max_cpu_isa)

"""Float or int8 keypoint twin for each batch size, whichever this CPU runs faster.

The int8 twin wins for one face on CPUs with VNNI, but on CPUs without it a large batch can run
slower than on the float twin; which one wins depends on the CPU and the batch, so it is measured
once (a few tenths of a second on an idle machine, when the webcam page first loads) instead of assumed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from core.model import KeypointPredictor
from core.schema import CROP_SIZE

#: Batch sizes measured: one to eight faces, each doubled by flip averaging.
MEASURED_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16)


@dataclass
class FasterTwin:
    """Serves `predict_crops` with the float or the int8 twin, by the batch size's measured winner.

    `timings_ms[n]` is (float, int8): the fastest of `calls` interleaved calls on n crops, so a burst
    of load from other processes slows both twins' slower calls rather than deciding the choice.
    A batch size that was not measured takes the choice of the nearest measured one (by ratio).
    """

    float_twin: KeypointPredictor
    int8_twin: KeypointPredictor
    sizes: tuple[int, ...] = MEASURED_SIZES
    calls: int = 3
    timings_ms: dict[int, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.timings_ms:
            self.timings_ms = {n: self._measure(n) for n in self.sizes}

    def _measure(self, n: int) -> tuple[float, float]:
        crops = np.random.default_rng(n).integers(0, 256, (n, CROP_SIZE, CROP_SIZE), dtype=np.uint8)
        best = [float("inf"), float("inf")]
        for twin in (self.float_twin, self.int8_twin):  # warm-up: first calls allocate for the shape
            twin.predict_crops(crops)
        for _ in range(self.calls):
            for i, twin in enumerate((self.float_twin, self.int8_twin)):
                started = time.perf_counter()
                twin.predict_crops(crops)
                best[i] = min(best[i], (time.perf_counter() - started) * 1000)
        return best[0], best[1]

    def choice(self, n: int) -> KeypointPredictor:
        """The twin that serves a batch of `n` crops."""
        nearest = min(self.timings_ms, key=lambda m: abs(np.log(max(n, 1) / m)))
        float_ms, int8_ms = self.timings_ms[nearest]
        return self.int8_twin if int8_ms < float_ms else self.float_twin

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """KeypointPredictor.predict_crops on the twin chosen for this many crops."""
        crops = np.asarray(crops)
        return self.choice(1 if crops.ndim == 2 else len(crops)).predict_crops(crops)

    def summary(self) -> str:
        """One line per measured size: both times and the choice (bench output, logs)."""
        return "; ".join(f"{n} crops: float {f:.2f} ms, int8 {i:.2f} ms -> {'int8' if i < f else 'float'}"
                         for n, (f, i) in sorted(self.timings_ms.items()))

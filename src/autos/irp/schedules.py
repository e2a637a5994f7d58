"""IRP density schedules: the density after each pruning round (pure functions).

``linear``: every round removes the same count, (1 - d_final)/P of the original weights, so the density after
round k is 1 - (1 - d_final) k / P. This is the AutoS reference's final ``num`` schedule
(docs/reference/autos.md §2.2).
``geometric``: every round keeps the same fraction of the survivors, d_final^(1/P), as lottery-ticket IMP
(open_lth prunes 20% of the remainder per round, i.e. geometric).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SCHEDULES = ("linear", "geometric")


def round_densities(schedule: str, num_rounds: int, final_density: float) -> list[float]:
    """Densities after rounds 1..num_rounds; the last equals ``final_density``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")
    if num_rounds < 1:
        raise ValueError(f"num_rounds must be >= 1, got {num_rounds}")
    if not 0.0 < final_density < 1.0:
        raise ValueError(f"final_density must be in (0, 1), got {final_density}")
    rounds = range(1, num_rounds + 1)
    if schedule == "linear":
        return [1.0 - (1.0 - final_density) * k / num_rounds for k in rounds]
    return [final_density ** (k / num_rounds) for k in rounds]


def through_densities(densities: Sequence[float], prune_fraction: float) -> list[float]:
    """Densities after each round of one IRP run that passes exactly through every density in ``densities``:
    between consecutive ones (from 1 down), the fewest rounds that each keep at least ``1 - prune_fraction`` of
    the survivors, all keeping the same fraction (open_lth's protocol: one run, every level evaluated on its way
    down, with the requested levels hit exactly instead of the 0.8^k grid)."""
    if not 0.0 < prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in (0, 1), got {prune_fraction}")
    out: list[float] = []
    current = 1.0
    for target in sorted({float(d) for d in densities}, reverse=True):
        if not 0.0 < target <= 1.0:
            raise ValueError(f"densities must be in (0, 1], got {target}")
        if target >= current:
            continue
        rounds = max(1, math.ceil(math.log(target / current) / math.log(1.0 - prune_fraction) - 1e-9))
        out += [current * (target / current) ** (k / rounds) for k in range(1, rounds)] + [target]
        current = target
    return out

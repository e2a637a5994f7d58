"""IRP density schedules: the density after each pruning round (pure functions).

``linear``: every round removes the same count, (1 - d_final)/P of the original weights, so the density after
round k is 1 - (1 - d_final) k / P. This is the AutoS reference's final ``num`` schedule
(docs/reference/autos.md §2.2).
``geometric``: every round keeps the same fraction of the survivors, d_final^(1/P), as lottery-ticket IMP
(open_lth prunes 20% of the remainder per round, i.e. geometric).
"""

from __future__ import annotations

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

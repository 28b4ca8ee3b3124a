"""Which planner the nightly job dispatches, and the sentence that says why.

Every configured planner is simulated on the same demand draws; each draw's declared objective
(:mod:`bicimad.sim.objective`) is computed per planner. With ``dispatch = "best"`` the planner
with the lowest mean objective is dispatched; otherwise the configured one. The sentence states
the dispatched planner's problem share against no trucks (no-op) and against the runner-up,
with paired differences over the draws (common random numbers make them precise even with few
draws) and their 95 % Student-t intervals.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bicimad.report.occupancy import mean_interval
from bicimad.sim.objective import objective

LABELS = {"noop": "no trucks", "greedy": "greedy", "ortools": "OR-Tools", "ppo": "PPO policy"}


@dataclasses.dataclass(frozen=True)
class Decision:
    """The dispatched planner, how it was chosen, the sentence, and the per-planner table."""

    planner: str
    rule: str
    sentence: str
    table: pd.DataFrame

    def to_json(self) -> dict:
        return {"planner": self.planner, "rule": self.rule, "sentence": self.sentence,
                "table": self.table.to_dict(orient="records")}


def _paired(per_seed: dict[str, list[dict]], a: str, b: str, key: str) -> tuple[float, float, float]:
    """Mean and interval of ``a - b`` in ``key`` over the shared draws."""
    return mean_interval([x[key] - y[key] for x, y in zip(per_seed[a], per_seed[b])])


def planner_table(per_seed: dict[str, list[dict]], weights) -> pd.DataFrame:
    """One row per planner: mean objective and problem share with intervals over draws."""
    rows = []
    for name, draws in per_seed.items():
        for row in draws:
            row["objective"] = objective(row, weights)
        obj, obj_lo, obj_hi = mean_interval([r["objective"] for r in draws])
        share, share_lo, share_hi = mean_interval([r["problem_share"] for r in draws])
        rows.append({"planner": name, "objective": obj, "objective_lo": obj_lo, "objective_hi": obj_hi,
                     "problem_share": share, "problem_share_lo": share_lo, "problem_share_hi": share_hi,
                     "lost_trips": float(np.mean([r["lost_trips"] for r in draws])),
                     "bikes_moved": float(np.nanmean([r["bikes_moved"] for r in draws])) if draws else np.nan,
                     "draws": len(draws)})
    return pd.DataFrame(rows)


def decide(per_seed: dict[str, list[dict]], weights, dispatch: str, visits: dict[str, int]) -> Decision:
    """The planner to dispatch (``dispatch``, or the lowest mean objective for ``"best"``)."""
    table = planner_table(per_seed, weights).sort_values("objective", kind="stable").reset_index(drop=True)
    chosen = table["planner"].iloc[0] if dispatch == "best" else dispatch
    row = table.set_index("planner").loc[chosen]
    head = f"{LABELS.get(chosen, chosen)}: {row['problem_share']:.1%} problem station-hours"
    draws = int(row["draws"])
    if "noop" in per_seed and chosen != "noop":
        noop = table.set_index("planner").loc["noop", "problem_share"]
        diff, lo, hi = _paired(per_seed, chosen, "noop", "problem_share")
        head += f" vs {noop:.1%} without trucks ({100 * diff:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}])"
    parts = [head]
    others = [p for p in table["planner"] if p != chosen and p != "noop"]
    if others:
        runner = others[0]
        diff, lo, hi = _paired(per_seed, chosen, runner, "objective")
        parts.append(f"runner-up {LABELS.get(runner, runner)} "
                     f"{table.set_index('planner').loc[runner, 'problem_share']:.1%}, objective {diff:+.1f} [{lo:+.1f}, {hi:+.1f}]")
    parts.append(f"{visits.get(chosen, 0)} visits, {row['bikes_moved']:.0f} bikes moved")
    rule = "lowest declared objective" if dispatch == "best" else "configured"
    sentence = ", ".join(parts) + f" (paired over {draws} demand draws; dispatched: {rule})."
    table["dispatched"] = table["planner"] == chosen
    return Decision(planner=chosen, rule=rule, sentence=sentence, table=table)

"""Station targets from the forecast: expected empty and full events per starting inventory.

A station with ``C`` docks and ``x`` bikes is a birth-death process on ``0..C``: returns
arrive at rate ``mu`` (one bike more, unless full: the return is diverted), pickups at rate
``lam`` (one bike fewer, unless empty: the pickup is lost). The rates change hour by hour as
the forecast says. For every starting inventory ``x`` we want

    V(x) = E[lost pickups + diverted returns over the next H hours | X_0 = x]

and the station's *target* is ``argmin_x V(x)``; ``V(x) - V(y)`` is what moving the station from
``x`` to ``y`` bikes is worth, which the OR-Tools planner uses as the penalty of a skipped visit.

Method (exact, no time discretisation): uniformisation. Within an hour with constant rates the
generator is ``Q = Lambda (P - I)`` with ``Lambda = lam + mu`` and ``P`` the jump chain (up with
``mu / Lambda``, down with ``lam / Lambda``, blocked moves stay). With ``N ~ Poisson(Lambda)``
jumps in the hour,

    V_h = sum_k  P(N >= k + 1) / Lambda * P^k r  +  P(N = k) * P^k V_{h+1}

where ``r(x) = lam [x = 0] + mu [x = C]`` is the event rate in state ``x``. The recursion runs
backwards over the hours, vectorised over stations (inventories padded to the largest
capacity), and truncates the sum where the Poisson tail falls below ``tail``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def expected_events(
    capacity: np.ndarray,
    pickup_rate: np.ndarray,
    return_rate: np.ndarray,
    tail: float = 1e-9,
) -> np.ndarray:
    """Expected lost pickups plus diverted returns, per station and starting inventory
    (:func:`expected_cost` with both weights 1 and no weight on problem hours)."""
    return expected_cost(capacity, pickup_rate, return_rate, tail=tail)


def expected_cost(
    capacity: np.ndarray,
    pickup_rate: np.ndarray,
    return_rate: np.ndarray,
    *,
    lost_weight: float = 1.0,
    diverted_weight: float = 1.0,
    problem_hour_weight: float = 0.0,
    hour_weights: np.ndarray | None = None,
    terminal: np.ndarray | None = None,
    unusable_bikes: float = 0.0,
    unusable_docks: float = 0.0,
    tail: float = 1e-9,
) -> np.ndarray:
    """Expected weighted cost per station and starting inventory over the forecast hours:
    ``lost_weight`` per lost pickup, ``diverted_weight`` per diverted return, and
    ``problem_hour_weight`` per hour in which the station touches 0 bikes or ``C`` (a problem
    station-hour, counted once per hour: the probability the chain reaches a boundary within
    the hour from the hour's starting inventory, by uniformisation on the chain killed at the
    boundaries).

    Args:
        capacity: (n,) docks per station.
        pickup_rate: (h, n) expected pickups per hour, first hour first.
        return_rate: (h, n) expected returns per hour.
        hour_weights: (h,) weight of the cost accrued in each hour (default all 1): e.g. a
            discount, so a later hour's events count less than this hour's.
        terminal: (n, max(capacity) + 1) cost charged at the end of the last hour for each
            inventory then (default none; entries beyond a station's capacity are ignored): e.g.
            the cost-to-go of later hours, so the first hours can be valued on their own.
        unusable_bikes, unusable_docks: ``q`` and ``r`` (the scenario's ``riders`` shares): a
            pickup at ``x`` bikes (a return at ``f`` free docks) finds none usable with chance
            ``q ** x`` (``r ** f``) and is lost (diverted), the inventory unchanged, as simulated.
        tail: Poisson tail mass left out of the uniformisation sum.

    Returns:
        (n, max(capacity) + 1) array; entry ``[s, x]`` is the expectation for station ``s``
        starting with ``x`` bikes, ``inf`` where ``x > capacity[s]``.
    """
    capacity, pickup_rate, return_rate, weights = _checked(capacity, pickup_rate, return_rate, hour_weights)
    n = capacity.shape[0]
    width = int(capacity.max(initial=0)) + 1
    inventory = np.arange(width)[None, :]
    valid = inventory <= capacity[:, None]                 # (n, width)
    at_empty = (inventory == 0) & valid
    at_full = (inventory == capacity[:, None]) & valid
    value = np.zeros((n, width)) if terminal is None else _checked_terminal(terminal, valid)
    no_bike, no_dock, moves_down, moves_up = _refusals(capacity, valid, at_empty, at_full, unusable_bikes, unusable_docks)
    for lam, mu, w in zip(pickup_rate[::-1], return_rate[::-1], weights[::-1]):
        total = lam + mu
        safe_total = np.where(total > 0, total, 1.0)
        p_up = (mu / safe_total)[:, None] * moves_up
        p_down = (lam / safe_total)[:, None] * moves_down
        rate = w * (lost_weight * lam[:, None] * no_bike + diverted_weight * mu[:, None] * no_dock)  # cost per hour
        k_max = int(stats.poisson.isf(tail, total.max(initial=0.0))) + 2 if total.max(initial=0.0) > 0 else 0
        ks = np.arange(k_max + 1)
        pmf = stats.poisson.pmf(ks[:, None], total[None, :])            # (k, n)
        survival = stats.poisson.sf(ks[:, None], total[None, :])        # P(N >= k + 1)

        # Accumulate sum_k c_k * P^k w for w = [r, V_next] without forming P: apply the jump
        # chain k times to both vectors at once (P^k acts on functions of the end state).
        new_value = np.zeros_like(value)
        pair = np.stack([rate, value])                                  # (2, n, width)
        interior = valid & ~at_empty & ~at_full
        alive = interior.astype(float)                                  # P(no boundary yet | k jumps)
        untouched = np.zeros_like(value)
        for k in ks:
            new_value += (survival[k] / safe_total)[:, None] * pair[0] + pmf[k][:, None] * pair[1]
            pair = _jump(pair, p_up, p_down, at_empty, at_full)
            if problem_hour_weight:
                untouched += pmf[k][:, None] * alive
                alive = _jump(alive[None], p_up, p_down, at_empty, at_full)[0] * interior
        if problem_hour_weight:
            untouched += stats.poisson.sf(ks[-1], total)[:, None] * alive  # the truncated tail
            new_value += w * problem_hour_weight * (1.0 - untouched)
        # A station with no demand in this hour keeps its state: it is a problem hour only at a boundary.
        still = value + w * problem_hour_weight * (at_empty | at_full)
        value = np.where((total > 0)[:, None], new_value, still)
    return np.where(valid, value, np.inf)


def _checked(capacity, pickup_rate, return_rate, hour_weights):
    """:func:`expected_cost`'s inputs as arrays, each checked; a ValueError says which is wrong."""
    capacity = np.asarray(capacity, dtype=np.int64)
    pickup_rate = np.atleast_2d(np.asarray(pickup_rate, dtype=np.float64))
    return_rate = np.atleast_2d(np.asarray(return_rate, dtype=np.float64))
    if pickup_rate.shape != return_rate.shape or pickup_rate.shape[1] != capacity.shape[0]:
        raise ValueError(
            f"rates must be (hours, {capacity.shape[0]}); got pickup {pickup_rate.shape}, return {return_rate.shape}"
        )
    if (pickup_rate < 0).any() or (return_rate < 0).any() or not np.isfinite(pickup_rate + return_rate).all():
        raise ValueError("rates must be finite and non-negative")
    if (capacity < 0).any():
        raise ValueError("capacity must be non-negative")
    weights = np.ones(pickup_rate.shape[0]) if hour_weights is None else np.asarray(hour_weights, dtype=np.float64)
    if weights.shape != (pickup_rate.shape[0],) or (weights < 0).any() or not np.isfinite(weights).all():
        raise ValueError(f"hour_weights must be {pickup_rate.shape[0]} finite non-negative numbers; got {weights!r}")
    return capacity, pickup_rate, return_rate, weights


def _checked_terminal(terminal, valid: np.ndarray) -> np.ndarray:
    terminal = np.asarray(terminal, dtype=np.float64)
    if terminal.shape != valid.shape:
        raise ValueError(f"terminal must be {valid.shape}; got {terminal.shape}")
    if not np.isfinite(terminal[valid]).all():
        raise ValueError("terminal must be finite within each station's capacity")
    return np.where(valid, terminal, 0.0)


def _jump(f, p_up, p_down, at_empty, at_full):
    """``(P f)(x)``: expected value of ``f`` after one jump of the uniformised chain from ``x``;
    ``p_up`` and ``p_down`` (per station, (n, 1), adding to 1; or per station and inventory) are
    the chances the jump moves it up or down; a blocked or failed move leaves it where it is."""
    up = np.concatenate([f[..., 1:], f[..., -1:]], axis=-1)
    down = np.concatenate([f[..., :1], f[..., :-1]], axis=-1)
    up = np.where(at_full, f, up)
    down = np.where(at_empty, f, down)
    if p_up.shape[-1] == 1:   # one chance per station: every jump moves it up or down (blocked at a boundary)
        return p_up * up + p_down * down
    return p_up * up + p_down * down + (1.0 - p_up - p_down) * f


def _refusals(capacity, valid, at_empty, at_full, unusable_bikes: float, unusable_docks: float):
    """Per station and inventory, the chance a pickup finds no usable bike and a return no usable
    dock (lost, diverted: the inventory stays), and the factors of a jump's chance to move down
    and up: 1 (a scalar, so :func:`_jump` keeps its one chance per station) where nothing is
    unusable and only the boundaries refuse."""
    if not (0 <= unusable_bikes < 1 and 0 <= unusable_docks < 1):
        raise ValueError(f"expected_cost: unusable_bikes {unusable_bikes} and unusable_docks {unusable_docks} "
                         "must be in [0, 1)")
    if not (unusable_bikes or unusable_docks):
        return at_empty, at_full, 1.0, 1.0
    inventory = np.arange(valid.shape[1])[None, :]
    no_bike = np.where(valid, _power(unusable_bikes, inventory), 0.0)
    no_dock = np.where(valid, _power(unusable_docks, np.maximum(capacity[:, None] - inventory, 0)), 0.0)
    return no_bike, no_dock, 1.0 - no_bike, 1.0 - no_dock


def _power(base: float, exponent: np.ndarray) -> np.ndarray:
    """``base ** exponent`` with ``0 ** 0 = 1`` (a station at the boundary always refuses)."""
    return np.where(exponent == 0, 1.0, float(base) ** np.maximum(exponent, 1))


def forecast_cost(view, horizon_hours: int, *, lost_weight: float, diverted_weight: float,
                  problem_hour_weight: float) -> np.ndarray:
    """:func:`expected_cost` of a planner's view (a :class:`bicimad.sim.interface.FleetView`)
    over its first ``horizon_hours`` forecast hours (at least one, at most those it has)."""
    hours = max(1, min(horizon_hours, view.pickup_rate.shape[0]))
    return expected_cost(view.capacity, view.pickup_rate[:hours], view.return_rate[:hours],
                         lost_weight=lost_weight, diverted_weight=diverted_weight,
                         problem_hour_weight=problem_hour_weight)


def station_targets(events: np.ndarray) -> np.ndarray:
    """The inventory minimising expected events, per station (ties: the one nearest half full).

    ``events`` is the output of :func:`expected_events`.
    """
    capacity = np.isfinite(events).sum(axis=1) - 1
    # Break ties (flat stretches, e.g. a station with no demand) towards half full, which
    # keeps slack on both sides for demand the forecast missed.
    half = capacity / 2.0
    distance = np.abs(np.arange(events.shape[1])[None, :] - half[:, None])
    best = events.min(axis=1, keepdims=True)
    near_best = events <= best + 1e-9 * np.maximum(1.0, np.abs(best))
    return np.where(near_best, distance, np.inf).argmin(axis=1)

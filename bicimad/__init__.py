"""BiciMAD rebalancing decision system.

Ingests EMT Madrid's open data, learns hourly demand per station, simulates the
network with a truck fleet, and compares rebalancing planners (no-op, greedy,
OR-Tools, PPO) on occupancy results.
"""

__version__ = "0.1.0"

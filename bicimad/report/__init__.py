"""Occupancy tables, plots and HTML comparison reports.

A *run folder* (what ``bicimad nightly`` and ``bicimad compare`` write, and what
``bicimad report`` reads) may hold:

- ``occupancy.csv``: the run-level summary, one row per planner with
  :data:`bicimad.opendata.schemas.OCCUPANCY_SUMMARY_COLUMNS` (extra columns such as
  interval bounds are kept);
- ``occupancy/<planner>.parquet``: per station-hour occupancy (the ``occupancy`` table);
- ``stations.parquet``: the ``stations`` table of the network (for the map);
- ``manifest.json``: what produced the run (shown in the report's header).

Only the summary is required; the hourly profile, the map and the worst stations appear
where the station-hour tables exist.
"""

"""The HTML report's text: number formats, the dataset and stale-input marks, the decision, the
route sheet links and the embedded map data."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from bicimad.report import html as report


def _cells(page: str, css: str) -> list[list[str]]:
    table = page[page.index(f'class="dataframe {css}"'):]
    table = table[:table.index("</table>")]
    body = table[table.index("<tbody>"):]
    return [re.findall(r"<td>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def test_numbers_are_counts_percentages_and_never_scientific(nightly_run, tmp_path):
    run = report.load_run(nightly_run, label="plan for 2018-09-05")
    page = report.build_report([run], tmp_path / "r.html").read_text(encoding="utf-8")
    assert not re.search(r"\de-\d", page.split("<script>")[0])  # no 2.27e-06 anywhere in the text
    header = page[page.index('class="dataframe summary"'):].split("</thead>")[0]
    assert "<th>run</th>" not in header  # one run: its label is the title's, not every row's
    rows = _cells(page, "summary")
    assert [r[0] for r in rows] == ["noop", "greedy", "ortools"]
    balanced = [r[1] for r in rows]
    assert all(re.fullmatch(r"[\d,]+", v) for v in balanced)  # a mean over draws, rounded
    assert "Counts are means over 3 demand draws, rounded" in page
    assert "decision ms per hour" in header and "0.002" in rows[0]  # 2.27e-06 s = 0.002 ms
    lo = re.findall(r"<th>(.*?)</th>", header).index("problem share lo")
    assert rows[0][lo] == "0.0 %"  # noop's negative bound, clipped
    assert "Lower bounds clipped at 0" in page and "problem_share_lo" in page


def test_format_number_has_no_scientific_notation():
    assert report.format_number(2.27e-06) == "< 0.001"
    assert report.format_number(0.0712) == "0.071"
    assert report.format_number(1234.5) == "1,234.50"
    assert report.format_number(3182.0) == "3,182"
    assert report.format_number(float("nan")) == ""


def test_dataset_title_and_stale_banner(nightly_run, tmp_path):
    run = report.load_run(nightly_run)
    plain = report.build_report([run], tmp_path / "a.html", title="BiciMAD nightly plan").read_text(encoding="utf-8")
    assert "Stale input" not in plain and "Dataset:" not in plain
    page = report.build_report([run], tmp_path / "b.html", title="BiciMAD nightly plan", dataset="synthetic city",
                               warnings=["start snapshot is 5 days old (limit 1 h)"]).read_text(encoding="utf-8")
    assert "<h1>BiciMAD nightly plan (synthetic city)</h1>" in page
    assert "<title>STALE INPUT: BiciMAD nightly plan (synthetic city)</title>" in page
    assert "<b>Stale input</b>" in page and "<li>start snapshot is 5 days old (limit 1 h)</li>" in page


def test_decision_sentence_and_table(nightly_run, tmp_path):
    table = pd.DataFrame({"planner": ["ortools", "greedy", "noop"], "problem_share": [0.14, 0.125, 0.226],
                          "problem_share_lo": [0.12, 0.11, 0.20], "problem_share_hi": [0.16, 0.14, 0.25],
                          "objective": [0.14, 0.125, 0.226], "dispatched": [True, False, False],
                          "diff_vs_noop_lo": [-0.1, -0.12, 0.0]})
    sentence = "OR-Tools: 14.0 % problem hours vs 22.6 % without trucks, 240 visits, 897 bikes moved"
    page = report.build_report([report.load_run(nightly_run)], tmp_path / "r.html", decision=sentence,
                               decision_table=table).read_text(encoding="utf-8")
    assert f"<p class='decision'>{sentence}</p>" in page
    assert page.index("<h2>Decision</h2>") < page.index("<h2>Occupancy</h2>")
    rows = _cells(page, "decision-table")
    assert rows[0][:5] == ["ortools", "14.0 %", "12.0 %", "16.0 %", "0.140"] and rows[0][5] == "yes"
    assert rows[1][5] == "" and rows[2][1] == "22.6 %"
    assert rows[0][6] == "-0.100"  # a difference may be negative: not clipped


def test_route_sheet_links_and_map_data(nightly_run, tmp_path):
    run = report.load_run(nightly_run)
    assert run.route_sheet is not None and str(run.route_sheet["arrival"].dt.tz) == "Europe/Madrid"
    out = nightly_run / "report.html"
    page = report.build_report([run], out).read_text(encoding="utf-8")
    assert "<a href='route_sheet.csv'>route_sheet.csv</a>" in page
    assert "<a href='route-truck-3.html'>truck 3</a>" in page
    assert all((nightly_run / f"route-truck-{t}.html").exists() for t in (1, 2, 3))
    rows = _cells(page, "routes")
    assert [r[0] for r in rows] == ["1", "2", "3"] and all(r[3] == "8" for r in rows)  # 4 hours x 2 stops
    assert "Leaflet 1.9.4" in page and "tile.openstreetmap.org" in page
    data = json.loads(re.search(r"var data = (\{.*?\}), id = \"route-map-0\"", page).group(1))
    assert len(data["stations"]) == 30 and data["planners"] == ["noop", "greedy", "ortools"]
    assert [r["truck"] for r in data["routes"]] == [1, 2, 3]
    assert sum(len(s["stops"]) for r in data["routes"] for s in r["shifts"]) == len(run.route_sheet)
    assert data["routes"][0]["base"]["name"] == "Plaza 1"
    bikes = dict(zip(run.start["station_id"], run.start["bikes"]))
    assert all(s["bikes"] == bikes[s["id"]] for s in data["stations"])
    risk = run.station_hours["noop"].assign(p=lambda f: f["state"] != "balanced").groupby("station_id")["p"].sum()
    assert all(s["risk"]["noop"] == risk[s["id"]] for s in data["stations"])


def test_comparison_without_plans_has_no_interactive_map(two_runs, tmp_path):
    page = report.build_report([report.load_run(p) for p in two_runs], tmp_path / "c.html").read_text(encoding="utf-8")
    assert "Leaflet" not in page and "<th>run</th>" in page


@pytest.mark.parametrize("frame, clipped", [
    (pd.DataFrame({"lost_trips_lo": [-1.0, 2.0], "problem_share_lo": [0.0, 1.0]}), ["lost_trips_lo"]),
    (pd.DataFrame({"truck_km_lo": [0.5]}), []),
])
def test_clip_lower_bounds(frame, clipped):
    out, names = report.clip_lower_bounds(frame)
    assert names == clipped and (out.filter(like="_lo") >= 0).all().all()


def test_clip_keeps_negative_differences():
    out, names = report.clip_lower_bounds(pd.DataFrame({"diff_vs_noop_lo": [-0.1], "objective_lo": [-3.0]}))
    assert names == [] and out["diff_vs_noop_lo"].iloc[0] == -0.1

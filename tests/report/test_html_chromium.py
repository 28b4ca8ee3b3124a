"""The HTML report rendered in headless Chromium: images load, tables render, a screenshot is kept."""

from __future__ import annotations

import subprocess
import sys


def test_report_cli_renders_in_chromium(two_runs, tmp_path, browser):
    out = tmp_path / "comparison.html"
    done = subprocess.run([sys.executable, "-m", "bicimad", "report", *map(str, two_runs), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert str(out.resolve()) in done.stdout

    browser.get(out.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);")
    # one hourly profile + one map per run and planner (2 runs x 2 planners)
    assert len(images) == 5
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt

    rows = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.summary tbody tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText));")
    assert [(r[0], r[1]) for r in rows] == [("2018-09-03", "noop"), ("2018-09-03", "greedy"),
                                            ("2018-09-04", "noop"), ("2018-09-04", "ortools")]
    assert all(r[6].endswith("%") for r in rows)  # problem share formatted as a percentage
    worst = browser.execute_script("return document.querySelectorAll('table.worst').length;")
    assert worst == 4
    captions = browser.execute_script(
        "return Array.from(document.querySelectorAll('figcaption')).map(c => c.innerText);")
    assert captions == ["2018-09-03 / noop", "2018-09-03 / greedy", "2018-09-04 / noop", "2018-09-04 / ortools"]
    height = browser.execute_script("return document.querySelector('table.summary').getBoundingClientRect().height;")
    assert height > 50  # laid out, not collapsed

    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_report_cli_rejects_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "bicimad", "report", str(tmp_path / "empty")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 66
    assert "not a run folder" in done.stderr and "Traceback" not in done.stderr

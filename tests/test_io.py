"""Shared I/O helpers: spreadsheet-safe CSV cells."""

import pandas as pd

from bicimad.io import csv_safe, write_csv


def test_formula_cells_are_quoted_and_numbers_kept(tmp_path):
    assert csv_safe("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)" and csv_safe("-4") == "-4" and csv_safe("Sol") == "Sol"
    path = write_csv(pd.DataFrame({"name": ["+cmd|' /C calc'!A0", "Puerta del Sol"], "bikes": [-3, 4]}), tmp_path / "x.csv")
    back = pd.read_csv(path)
    assert back["name"].tolist() == ["'+cmd|' /C calc'!A0", "Puerta del Sol"] and back["bikes"].tolist() == [-3, 4]


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    from bicimad.io import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644   # readable by others, like open() gives


def test_permissions_the_writer_chose_are_kept(tmp_path):
    from bicimad.io import atomic_path

    with atomic_path(tmp_path / "raw.json") as tmp:
        tmp.write_text("{}")
        tmp.chmod(0o444)
    assert (tmp_path / "raw.json").stat().st_mode & 0o777 == 0o444

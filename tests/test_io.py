"""Shared I/O helpers: spreadsheet-safe CSV cells."""

import pandas as pd

from bicimad.io import csv_safe, write_csv


def test_formula_cells_are_quoted_and_numbers_kept(tmp_path):
    assert csv_safe("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)" and csv_safe("-4") == "-4" and csv_safe("Sol") == "Sol"
    path = write_csv(pd.DataFrame({"name": ["+cmd|' /C calc'!A0", "Puerta del Sol"], "bikes": [-3, 4]}), tmp_path / "x.csv")
    back = pd.read_csv(path)
    assert back["name"].tolist() == ["'+cmd|' /C calc'!A0", "Puerta del Sol"] and back["bikes"].tolist() == [-3, 4]

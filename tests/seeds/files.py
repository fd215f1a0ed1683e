"""Reading and rewriting seed files in a test's private copy of seeds/."""

import yaml


def read_rows(path) -> list:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_rows(path, rows: list) -> None:
    path.write_text(yaml.safe_dump(rows, allow_unicode=True, sort_keys=False), encoding="utf-8")

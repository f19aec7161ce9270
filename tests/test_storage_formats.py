"""docs/storage.md's table of format versions names every stored-format constant with its current value."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "storage.md"


def table_rows():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Format versions", 1)[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[2].startswith("`erase_core."):
            yield cells[2].strip("`"), cells[3].strip("`")


def current(dotted: str):
    module, name = dotted.rsplit(".", 1)
    value = getattr(importlib.import_module(module), name)
    if isinstance(value, bytes):  # the image file's magic ends in its version: ERASE-IMAGE-<n>
        return re.search(rb"-(\d+)\n", value)[1].decode()
    if hasattr(value, "format"):  # a struct.Struct
        return value.format
    return str(value)


def test_the_documented_versions_are_the_code_s():
    rows = list(table_rows())
    assert len(rows) == 8
    assert {name: current(name) for name, _ in rows} == dict(rows)


def test_every_version_constant_of_the_storage_is_in_the_table():
    documented = {name for name, _ in table_rows()}
    found = set()
    for path in [*(ROOT / "erase_core" / "storage").glob("**/*.py"), *(ROOT / "erase_core" / "index").glob("*.py"),
                 ROOT / "erase_core" / "quantized_kmeans.py"]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for m in re.finditer(r"^(_?(?:SCHEMA_VERSION|FORMAT|FORMAT_VERSION|_FORMAT|STATE_FORMAT))\s*=", path.read_text(), re.M):
            found.add(f"{module}.{m[1]}")
    assert found and found <= documented


def test_a_layout_3_store_is_migrated_to_layout_4_with_a_records_table(tmp_path):
    """Layout 3 had no sealed records: it opens, gains the (empty) table, and then keeps
    records that a forget deletes with their rows."""
    import sqlite3

    import numpy as np

    from erase_core import ExampleIndex
    from erase_core.records import ExampleRecords

    path = tmp_path / "pool.sqlite"
    index = ExampleIndex(k=2, path=path, seed=3)
    index.add(np.eye(4)[:3] + 0.1, [{"t": i} for i in range(3)], ids=["a", "b", "c"])
    digest = index.digest()
    index.close()
    con = sqlite3.connect(path)
    con.execute("DROP TABLE records")
    con.execute("PRAGMA user_version = 3")
    con.commit()
    con.close()
    migrated = ExampleIndex.open(path)
    assert migrated.digest() == digest
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    con.close()
    records = ExampleRecords(migrated)
    records.put("ns", [("a", "hash-of-a", "a"), ("b", "hash-of-b", "b")])
    migrated.forget(["a"])
    assert records.get("ns") == {"b": "hash-of-b"}
    records.close()
    migrated.close()

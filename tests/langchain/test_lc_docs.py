"""The snippets of docs/langchain.md's "You use X today" section run as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lc_helpers import NGramEmbeddings  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "langchain.md"
SNIPPET = re.compile(r"<!-- snippet: (?P<name>[^>]+) -->\n```python\n(?P<code>.*?)```", re.S)


def snippets() -> list[tuple[str, str]]:
    return [(m["name"], m["code"]) for m in SNIPPET.finditer(DOC.read_text())]


def test_the_section_has_its_snippets():
    assert [name for name, _ in snippets()] == [
        "vector store", "stock selector over the store", "mmr selector", "erase selector", "retrievers", "upsert",
    ]


def test_snippets_run_in_order(tmp_path):
    namespace = {
        "embeddings": NGramEmbeddings(dim=64), "tmp": str(tmp_path),
        "examples": [{"input": f"{a} + {b}", "output": str(a + b)} for a in range(3) for b in range(3)],
    }
    for name, code in snippets():
        try:
            exec(compile(code, f"docs/langchain.md:{name}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the message names the snippet
            pytest.fail(f"snippet {name!r} failed: {exc!r}")

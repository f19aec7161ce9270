"""Every Python block of README.md and docs/*.md runs as written.

The rule, for whoever writes the docs:

* Every fenced block tagged ``python`` is extracted. The blocks of one file run **in order, in
  one namespace**, in a fresh empty working directory, with ``HF_HUB_OFFLINE=1`` (the bundled
  models only, no network). A block may use what an earlier block of the same file defined,
  nothing else: define the small data a block needs visibly (a few vectors, two documents).
* A block that cannot run on its own (a signature overview, code that needs the reader's own
  objects) says so on its first line, visible in the rendered page::

      # fragment: <why it does not run>

  It is then only compiled (a syntax check), not run, and defines nothing for later blocks.
  Keep fragments rare.
* No top-level ``await`` (use ``asyncio.run``): a block must be a valid module.
* Blocks tagged anything else (``bash``, plain text) are not Python; ``py``, ``python3``,
  ``pycon`` and ``ipython`` tags are refused so that no Python block escapes this test.

Files whose blocks load MiniLM or SmolLM2 are marked ``slow``.
"""

from __future__ import annotations

import re
import sys
import textwrap
import types
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FRAGMENT = "# fragment:"
# files whose blocks load the real local models (MiniLM, SmolLM2)
SLOW = {"langchain.md", "llamaindex.md"}

FENCE = re.compile(r"^(?P<indent> *)```(?P<tag>[^\n`]*)\n(?P<code>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first code line in the markdown file
    code: str

    @property
    def fragment(self) -> bool:
        return self.code.lstrip().startswith(FRAGMENT)

    def compiled(self):
        # pad with blank lines so that tracebacks name the markdown file's own line numbers
        return compile("\n" * (self.line - 1) + self.code, str(self.path.relative_to(ROOT)), "exec")


def fenced(path: Path) -> list[tuple[str, int, str]]:
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start("code")) + 1
        out.append((m["tag"].strip().lower(), line, textwrap.dedent(m["code"])))
    return out


def blocks(path: Path) -> list[Block]:
    return [Block(path, line, code) for tag, line, code in fenced(path) if tag == "python"]


def params():
    for path in DOCS:
        if not blocks(path):
            continue
        marks = [pytest.mark.slow, pytest.mark.models] if path.name in SLOW else []
        yield pytest.param(path, id=str(path.relative_to(ROOT)), marks=marks)


def test_every_python_block_is_tagged_python():
    """A block tagged ``py``/``python3``/``pycon`` would be skipped below: there are none."""
    odd = [(str(p.relative_to(ROOT)), line, tag) for p in DOCS for tag, line, _ in fenced(p)
           if tag in {"py", "python3", "py3", "pycon", "ipython", "pyi"}]
    assert odd == []


def test_fragments_are_rare():
    every = [b for p in DOCS for b in blocks(p)]
    fragments = [f"{b.path.name}:{b.line}" for b in every if b.fragment]
    assert len(every) > 20
    assert len(fragments) * 4 <= len(every), fragments


def test_every_block_compiles():
    for path in DOCS:
        for block in blocks(path):
            block.compiled()  # a SyntaxError names the file and line


@pytest.mark.parametrize("path", list(params()))
def test_blocks_run_as_written(path: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    ran = 0
    try:
        for block in blocks(path):
            code = block.compiled()
            if block.fragment:
                continue
            try:
                exec(code, namespace)  # noqa: S102
            except BaseException as exc:  # noqa: BLE001 - the failure names the file and line
                pytest.fail(f"{path.relative_to(ROOT)}:{block.line}: {exc!r}\n{traceback.format_exc()}", pytrace=False)
            ran += 1
    finally:
        # a block may set LangChain's process-wide LLM cache (set_llm_cache): later tests must not see it
        if "langchain_core.globals" in sys.modules:
            sys.modules["langchain_core.globals"].set_llm_cache(None)
        for value in namespace.values():  # close what the blocks opened (stores, retrievers)
            close = getattr(value, "close", None)
            if callable(close) and not isinstance(value, (type, types.ModuleType)):
                try:
                    close()
                except Exception:  # noqa: BLE001, S110 - best effort; the test's outcome is decided above
                    pass
    assert ran, f"{path.name}: every block is a fragment"


def test_markdown_tables_are_whole():
    """Every row of a table has the header's number of cells (no section pasted into a cell)."""
    bad = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        # blocks are not tables
        text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if i + 1 < len(lines) and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[i + 1]):
                width, closed = cells(line), line.rstrip().endswith("|")
                j = i + 2
                while j < len(lines) and lines[j].strip().startswith("|"):
                    if cells(lines[j]) != width or lines[j].rstrip().endswith("|") != closed:
                        bad.append(f"{path.name}:{j + 1}")
                    j += 1
                if j < len(lines) and lines[j].strip() and not lines[j].strip().startswith("|"):
                    bad.append(f"{path.name}:{j + 1} (text right after a table)")
    assert bad == []


def cells(row: str) -> int:
    row = re.sub(r"`[^`]*`", "code", row.strip())  # a | inside inline code is not a cell border
    row = row.replace("\\|", "")
    return len(row.strip("|").split("|"))


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
RESULTS_PATH = re.compile(r"benchmarks/results/[A-Za-z0-9_.*-]*[A-Za-z0-9_*]")


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a markdown file (lower case, punctuation dropped, spaces to -)."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m[1])  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_links_and_results_paths_resolve():
    """Every relative link (file and #anchor) and every benchmarks/results/ path named in the docs exists.

    Written results paths that a command creates (``--out``) count too: a results file the docs
    name must be in the repository, or the doc must not name it.
    """
    bad = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for m in LINK.finditer(text):
            target = m[1]
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                bad.append(f"{path.relative_to(ROOT)}: link {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"{path.relative_to(ROOT)}: anchor {target}")
        for m in RESULTS_PATH.finditer(text):
            if not any(ROOT.glob(m[0])):  # a pattern (tune_defaults*.json) names at least one file
                bad.append(f"{path.relative_to(ROOT)}: {m[0]}")
    assert bad == []

"""The `erase` command on a persisted index."""

from __future__ import annotations

import json

import pytest

from erase_core import ExampleIndex
from erase_core.cli import main
from conftest import REPO_ROOT, clustered


def make_store(path):
    index = ExampleIndex(k=3, seed=1, path=path)
    index.add(clustered(30, d=6, seed=4), [{"input": f"q{i}"} for i in range(30)], ids=[f"c{i}" for i in range(30)])
    selected = [s.id for s in index.select()]
    index.close()
    return selected


def test_info_select_forget_verify(tmp_path, capsys):
    path = tmp_path / "pool.sqlite"
    selected = make_store(path)
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["examples"] == 30 and info["selected"] == selected
    assert main(["select", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["id"] for line in lines] == selected
    assert main(["forget", str(path), selected[0]]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["ids"] == [selected[0]] and receipt["selected_changed"]
    assert main(["verify", str(path)]) == 0
    assert capsys.readouterr().out.startswith("OK: 29 examples")
    assert selected[0] not in ExampleIndex.open(path)


def test_errors_exit_2_and_change_nothing(tmp_path, capsys):
    path = tmp_path / "pool.sqlite"
    make_store(path)
    digest = ExampleIndex.open(path).digest()
    assert main(["forget", str(path), "c1", "nobody"]) == 2
    assert "unknown id 'nobody'" in capsys.readouterr().err
    assert ExampleIndex.open(path).digest() == digest
    assert main(["info", str(tmp_path / "absent.sqlite")]) == 2


def test_subcommands_of_other_packages_come_from_entry_points():
    """erase_core names no framework: `erase demo` is an entry point of erase_langchain."""
    import ast

    from erase_core import cli

    source = (REPO_ROOT / "erase_core" / "cli.py").read_text()
    imported = {n.module or "" for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith(("erase_langchain", "erase_llamaindex", "langchain", "llama_index")) for m in imported)
    assert cli.plugin_commands()["demo"].value == "erase_langchain.demo:main"


@pytest.mark.processes
def test_select_into_a_closed_pipe_prints_no_traceback(tmp_path):
    """`erase select STORE | head`: the reader leaves early; erase exits quietly."""
    import subprocess
    import sys

    path = tmp_path / "pool.sqlite"
    index = ExampleIndex(k=8, seed=0, path=path)
    index.add(clustered(200, d=8), [{"text": "x" * 20000} for _ in range(200)], ids=[f"e{i}" for i in range(200)])
    index.close()
    proc = subprocess.Popen([sys.executable, "-m", "erase_core.cli", "select", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1`: 8 payloads of 20 KB overflow the pipe, the writer gets EPIPE
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


def test_wrong_width_query_names_the_width(tmp_path):
    import pytest

    from erase_core import ERASEError

    index = ExampleIndex(k=2, seed=0, strategy="similarity")
    index.add(clustered(20, d=8), [None] * 20)
    with pytest.raises(ERASEError, match="dimension 5, expected 8"):
        index.select([1.0] * 5)

"""The ``erase`` command: inspect, verify and forget from a persisted example index."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._validation import ERASEError
from .example_index import ExampleIndex


def _info(args) -> int:
    with ExampleIndex.open(args.path) as index:
        out = {"path": args.path, "examples": len(index), "config": index.config(), "digest": index.digest()}
        if index.strategy == "erase" and len(index) >= index.k:
            out["selected"] = [s.id for s in index.select()]
            out["fingerprint"] = index.fingerprint()
        print(json.dumps(out, indent=2))
    return 0


def _verify(args) -> int:
    with ExampleIndex.open(args.path) as index:
        ok = index.verify()
        print(f"{'OK' if ok else 'MISMATCH'}: {len(index)} examples, digest {index.digest()}")
        return 0 if ok else 1


def _forget(args) -> int:
    given = [bool(args.ids), args.subject is not None, args.where is not None]
    if sum(given) != 1:
        print("erase forget: give ids, or --subject, or --where (exactly one)", file=sys.stderr)
        return 2
    with ExampleIndex.open(args.path) as index:
        if args.subject is not None:
            receipt = index.forget_subject(args.subject)
        elif args.where is not None:
            try:
                where = json.loads(args.where)
            except ValueError as exc:
                raise ERASEError(f"--where must be a JSON object: {exc}") from None
            receipt = index.forget_where(where)
        else:
            receipt = index.forget(args.ids, missing=args.missing)
        print(json.dumps(receipt.to_dict(), indent=2))
    return 0


def _audit(args) -> int:
    """Print the deletion audit log and check its hash chain (exit 1 if it is broken)."""
    with ExampleIndex.open(args.path) as index:
        check = index.check_audit()
        if args.id is not None or args.subject is not None:
            entries = index.forgotten(example_id=args.id, subject=args.subject)
        else:
            entries = index.audit()
        for entry in entries:
            print(json.dumps(entry, sort_keys=True))
        status = "OK" if check.ok else f"BROKEN at entry {check.first_bad}"
        print(f"chain {status}: {check.entries} entries, head {check.head}", file=sys.stderr)
        if args.id is not None or args.subject is not None:
            print(f"forgotten: {'yes' if entries else 'no'}", file=sys.stderr)
        return 0 if check.ok else 1


def _select(args) -> int:
    with ExampleIndex.open(args.path) as index:
        for s in index.select():
            print(json.dumps({"id": s.id, "score": s.score, "payload": s.payload}, ensure_ascii=False))
    return 0


#: Subcommands other packages add (``[project.entry-points."erase.commands"]``): each entry point
#: is a ``main(argv) -> int`` that parses its own options. ``erase demo`` comes from erase_langchain,
#: so this package never imports a framework.
COMMAND_GROUP = "erase.commands"


def plugin_commands() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def _run_plugin(name: str, argv: list[str]) -> int:
    entry = plugin_commands().get(name)
    if entry is None:
        hint = " (erase demo needs the langchain and hf extras: pip install 'erase-icl[langchain,hf]')" if name == "demo" else ""
        print(f"erase: no command {name!r} is installed{hint}", file=sys.stderr)
        return 2
    try:
        command = entry.load()
    except ImportError as exc:
        print(f"erase {name}: cannot load {entry.value}: {exc}", file=sys.stderr)
        return 2
    return command(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="erase", description="Exactly unlearnable few-shot example pools.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in [
        ("info", _info, "show an index's size, parameters, digest and selected set"),
        ("verify", _verify, "rebuild from scratch and compare digests (exit 1 on mismatch)"),
        ("select", _select, "print the erase strategy's selected examples as JSON lines"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("path", help="SQLite file of an ExampleIndex")
        p.set_defaults(func=func)
    sub.add_parser("bench", help="reproduce the paper on BIG-bench (see erase bench --help)", add_help=False)
    sub.add_parser("unlearn", help="exact (ERASE) vs gradient-ascent unlearning (see erase unlearn --help)", add_help=False)
    for name in sorted(plugin_commands()):
        p = sub.add_parser(name, help=f"(from {plugin_commands()[name].value.split(':')[0]}; see erase {name} --help)", add_help=False)
        p.set_defaults(func=lambda args, name=name: _run_plugin(name, []))
    p = sub.add_parser("forget", help="forget examples (by id, subject or metadata filter) and print the receipt")
    p.add_argument("path")
    p.add_argument("ids", nargs="*")
    p.add_argument("--subject", help="forget every example of this subject")
    p.add_argument("--where", help='forget every example whose metadata match this JSON filter, e.g. \'{"tenant": "acme"}\'')
    p.add_argument("--missing", choices=["raise", "ignore"], default="raise")
    p.set_defaults(func=_forget)
    p = sub.add_parser("audit", help="print the deletion audit log and check its hash chain (exit 1 if broken)")
    p.add_argument("path")
    p.add_argument("--id", help="only the entries that forgot this example id")
    p.add_argument("--subject", help="only the entries that forgot examples of this subject")
    p.set_defaults(func=_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # parses its own options; imported only when used
        from .evaluation.command import main as bench_main

        return bench_main(argv[1:])
    if argv[:1] == ["unlearn"]:  # likewise
        from .evaluation.unlearning import main as unlearn_main

        return unlearn_main(argv[1:])
    if argv[:1] and argv[0] in plugin_commands():  # plugin commands parse their own options
        return _run_plugin(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ERASEError as exc:
        print(f"erase: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `erase select STORE | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

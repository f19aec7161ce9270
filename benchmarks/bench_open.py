"""``ExampleIndex.open`` from the open image against the long way (row-by-row decrypt + refit).

For each pool size and payload size: build a persisted store (d = 384, k = 4, erase), open it
once the long way (which writes the image; its write time and size are recorded), then time
``open`` alternating A, B, A, B, ...: A = the long way (the image is hidden from the store),
B = from the image. Every open's digest is compared with the store's. The image open is split
into reading + decrypting the image, and building memory (maps, hashes, the k-means fit).

    python benchmarks/bench_open.py                      # n = 10k, 100k; payloads 200 B, 4 KB
    python benchmarks/bench_open.py --sizes 2000 --repeats 2 --out /tmp/open.json   # smoke

Writes ``benchmarks/results/open.json`` and ``open.png`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_store import machine_info, make_ids, make_payloads  # noqa: E402

from erase_core import ExampleIndex  # noqa: E402
from erase_core.storage import ExampleStore  # noqa: E402
from erase_core.storage.image import image_path  # noqa: E402

DIM = 384


def timed_open(path: Path, *, image: bool) -> tuple[float, dict, str]:
    """Seconds of one ``ExampleIndex.open``, its split, and the digest."""
    split: dict = {}
    real_read = ExampleStore.read_image

    def read_image(store):
        if not image:
            return None
        t = time.perf_counter()
        try:
            return real_read(store)
        finally:
            split["read_image_s"] = time.perf_counter() - t

    ExampleStore.read_image = read_image
    os.environ["ERASE_IMAGE_MIN_ROWS"] = str(10**12)  # the long way must not rewrite the image
    gc.collect()
    timings: dict = {}
    try:
        t0 = time.perf_counter()
        index = ExampleIndex.open(path, timings=timings)
        seconds = time.perf_counter() - t0
    finally:
        ExampleStore.read_image = real_read
        os.environ.pop("ERASE_IMAGE_MIN_ROWS", None)
    if "build_memory_s" in timings:
        split["build_memory_s"] = timings["build_memory_s"]
    if image and "build_memory_s" not in split:
        raise RuntimeError("the image open did not use the image")
    digest = index.digest()
    index.close()
    del index
    gc.collect()
    return seconds, split, digest


def run_case(n: int, payload: int, repeats: int, workdir: Path) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    path = workdir / f"s{n}_{payload}.db"
    t0 = time.perf_counter()
    with ExampleIndex(4, seed=0, path=path) as index:
        index.add(X, make_payloads(n, payload, 0), ids=make_ids(n))
        digest = index.digest()
    build_s = time.perf_counter() - t0
    os.environ["ERASE_IMAGE_MIN_ROWS"] = "1"
    real_write, spent = ExampleStore.write_image, {}

    def timed_write(store, version, dim, rows, model=None):
        spent["has_fit"] = model is not None
        t = time.perf_counter()
        try:
            return real_write(store, version, dim, rows, model)
        finally:
            spent["write"] = time.perf_counter() - t

    ExampleStore.write_image = timed_write
    try:
        t0 = time.perf_counter()
        ExampleIndex.open(path).close()  # the long way, writing the image (rows and fit)
        first_open_s = time.perf_counter() - t0
    finally:
        ExampleStore.write_image = real_write
        os.environ.pop("ERASE_IMAGE_MIN_ROWS", None)
    write_s, has_fit = spent["write"], spent["has_fit"]
    sizes = {"db": path.stat().st_size, "image": image_path(path).stat().st_size}
    long_s, image_s, splits, same = [], [], [], True
    for _ in tqdm(range(repeats), desc=f"open n={n} p={payload}", leave=False):
        for use_image, sink in ((False, long_s), (True, image_s)):
            s, split, d = timed_open(path, image=use_image)
            sink.append(s)
            same &= d == digest
            if use_image:
                splits.append(split)
    for p in workdir.glob(f"s{n}_{payload}.db*"):
        p.unlink()
    return {
        "n": n, "payload_bytes": payload, "build_s": build_s, "first_open_with_image_write_s": first_open_s,
        "image_write_s": write_s, "image_has_fit": has_fit, "bytes": sizes, "long_open_s": long_s, "image_open_s": image_s,
        "long_open_p50_s": statistics.median(long_s), "image_open_p50_s": statistics.median(image_s),
        "image_read_p50_s": statistics.median(x["read_image_s"] for x in splits),
        "image_build_memory_p50_s": statistics.median(x["build_memory_s"] for x in splits),
        "same_digest": same,
    }


def table(rows: list[dict]) -> str:
    out = ["| n | payload | long open p50 | image open p50 | of which: read + decrypt image | build memory (maps, fit) "
           "| image / long | image file | image write | same digest |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(
            f"| {r['n']:,} | {r['payload_bytes']} B | {r['long_open_p50_s']:.2f} s | **{r['image_open_p50_s']:.2f} s** | "
            f"{r['image_read_p50_s']:.2f} s | {r['image_build_memory_p50_s']:.2f} s | "
            f"{r['image_open_p50_s'] / r['long_open_p50_s']:.2f} | {r['bytes']['image'] / 2**20:.0f} MiB "
            f"(db {r['bytes']['db'] / 2**20:.0f} MiB) | {r['image_write_s']:.2f} s | {r['same_digest']} |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['n'] // 1000}k, {r['payload_bytes']} B" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.bar(x - 0.2, [r["long_open_p50_s"] for r in rows], 0.4, label="long way (decrypt every row, refit)")
    ax.bar(x + 0.2, [r["image_open_p50_s"] for r in rows], 0.4, label="from the open image")
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="target at 100k: 1 s")
    ax.set_xticks(x, labels)
    ax.set_ylabel("ExampleIndex.open, p50 (s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--payloads", type=int, nargs="+", default=[200, 4096])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "open.json")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="erase-open-"))
    try:
        rows = [run_case(n, pl, args.repeats, workdir) for n in args.sizes for pl in args.payloads]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info = {**machine_info(workdir), "load_avg_end": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    plot(rows, args.out.with_suffix(".png"))
    print(table(rows))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0 if all(r["same_digest"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

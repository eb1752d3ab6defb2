"""Peak memory of resolving 1,000,000 cell ids from a 1,000,000 x 64 float32 embedding store.

Writes the store in chunks-free fashion from a memmap (so the writer's own memory is not the
measure), then, in a fresh child process, measures the baseline RSS (imports done, store opened),
resolves every id once through ``MMContextProcessor`` in training-sized batches, and prints the
peak RSS increase as a ratio of the store's size. The target is a ratio under 2.

Run: ``PYTHONPATH=src python benchmarks/store_memory.py [n_cells] [dim] [batch]``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
from mmcontext.models import MMContextProcessor, open_store

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

path, batch = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
store = open_store(path)  # hashes every file (streamed)
t_open = time.perf_counter() - t
proc = MMContextProcessor()
proc.add_store(store, remember=False)
ids = [f"cell{i:07d}" for i in range(store.n_cells)]
rng = np.random.default_rng(0)
order = rng.permutation(store.n_cells)
base = rss_mb()
peak_hwm0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak = base
t = time.perf_counter()
total = 0.0
for s in range(0, store.n_cells, batch):
    refs = ["bench:" + ids[k] for k in order[s:s + batch]]
    total += float(proc(refs, store.dim).sum())
    peak = max(peak, rss_mb())
t_resolve = time.perf_counter() - t
peak = max(peak, rss_mb())
print(json.dumps({"baseline_mb": base, "peak_mb": peak, "hwm_before_mb": peak_hwm0,
                  "open_s": t_open, "resolve_s": t_resolve, "checksum": total}))
"""


def main() -> None:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mmcontext.models import write_store

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    d = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    with tempfile.TemporaryDirectory() as tmp:
        src = np.lib.format.open_memmap(f"{tmp}/src.npy", mode="w+", dtype=np.float32, shape=(n, d))
        rng = np.random.default_rng(0)
        for s in range(0, n, 100_000):
            src[s : s + 100_000] = rng.normal(size=(min(100_000, n - s), d))
        t = time.perf_counter()
        store = write_store(src, f"{tmp}/bench", ids=[f"cell{i:07d}" for i in range(n)], name="bench")
        t_write = time.perf_counter() - t
        size_mb = (store.path / "vectors.npy").stat().st_size / 2**20
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(store.path), str(batch)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PATH": "/usr/bin:/bin"},
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
    # baseline: imports done, store opened, the 1M id strings built; peak: VmRSS sampled after every batch
    peak_increase = res["peak_mb"] - res["baseline_mb"]
    print(f"store: {n:,} x {d} float32 = {size_mb:.1f} MiB (write {t_write:.1f} s, open+verify {res['open_s']:.2f} s)")
    print(f"resolved {n:,} ids in batches of {batch} in {res['resolve_s']:.1f} s ({n / res['resolve_s']:,.0f} ids/s)")
    print(
        f"RSS baseline {res['baseline_mb']:.1f} MiB (high-water before {res['hwm_before_mb']:.1f}), "
        f"peak {res['peak_mb']:.1f} MiB"
    )
    print(f"peak increase / store size = {peak_increase / size_mb:.2f} (target < 2)")


if __name__ == "__main__":
    main()

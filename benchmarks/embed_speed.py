"""Cell embedding throughput: ``MMContextEncoder.encode_cells`` vs the same MLP in plain torch.

Both run in this process on the same random matrix; the ratio (mmcontext / plain torch) is what
matters, not the absolute cells/s of this machine.

Run: ``PYTHONPATH=src python benchmarks/embed_speed.py [n_cells] [n_features]``
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

import mmcontext as mmc
from mmcontext.models import MMContextEncoder


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(n_cells: int = 200_000, n_features: int = 765) -> None:
    mmc.settings.progress = False
    X = np.random.default_rng(0).normal(size=(n_cells, n_features)).astype(np.float32)
    model = MMContextEncoder.build(n_features, device="cpu").eval()  # no dropout in either path
    omics = model.omics_encoder

    @torch.inference_mode()
    def plain(batch: int = 1024) -> np.ndarray:
        out = np.empty((n_cells, omics.output_dim), dtype=np.float32)
        for s in range(0, n_cells, batch):
            x = torch.from_numpy(X[s : s + batch])
            y = omics.net((x - omics.input_mean) / omics.input_scale)
            out[s : s + batch] = torch.nn.functional.normalize(y, dim=1).numpy()
        return out

    t_plain = best_of(plain)
    t_mmc = best_of(lambda: model.encode_cells(X))
    diff = float(np.abs(plain() - model.encode_cells(X)).max())
    print(f"{n_cells} cells x {n_features} features, torch threads {torch.get_num_threads()}")
    print(f"plain torch MLP        {n_cells / t_plain:>12,.0f} cells/s")
    print(f"mmc encode_cells       {n_cells / t_mmc:>12,.0f} cells/s")
    print(f"ratio mmcontext/plain  {t_plain / t_mmc:>12.2f}  (1.0 = no overhead)")
    print(f"max |difference|       {diff:>12.2e}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

"""Atlas-scale speed and memory: each step against its plain bound, measured in the same process, A/B interleaved.

Generates an AnnData of ``--n-cells`` cells (``--input-dim``-d initial embedding, 40 cell types with distinct
centres, 8 donors) and a small model trained on 20,000 of its cells, then runs every step in its own child
process (so each step's peak RSS is its own: the kernel's high-water mark reset at the step's start,
``benchmarks/_rss.py``, reported as the peak and as the increase over the RSS the step started from). In each
child the step and its plain bound alternate ``--repeats`` times; the best time of each is kept. Steps:

- ``embed``: ``tl.embed`` from ``obsm`` vs the same MLP in plain torch (batches of 1024, normalised rows) into a
  new array (as ``tl.embed`` returns one).
- ``embed_stream``: ``tl.embed(backed, out=)`` over a backed CSR h5ad (``--csr-cells`` x 2,000 genes) vs a chunked
  read + densify + the same plain torch MLP, the result saved as ``.npy`` (as ``out=`` writes it).
- ``query_1``, ``query_100``: ``tl.query`` (1 / 100 queries) vs encoding the queries + one matrix product.
- ``search_exact``: ``tl.search`` (100 queries, k=100) vs encoding + one matrix product + ``np.argpartition``.
- ``index_<method>``: ``tl.build_index`` (saved, reloaded) and ``tl.search`` with it: recall@100 against
  the exact top 100, ms per query in a batch of 100 (``--index-methods``, default faiss).

Other steps plug in the same way: a function ``step_<name>(ctx) -> dict`` (see ``Ctx``), registered in ``STEPS``.

Run (the 1M run needs several GB; serialise heavy runs):
``flock /tmp/mmc-bench.lock env PYTHONPATH=src python benchmarks/perf.py --n-cells 1000000``
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _rss import Peak  # benchmarks/_rss.py (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent / "src")
TYPES = [
    "B cell", "naive T cell", "CD4 T cell", "CD8 T cell", "regulatory T cell", "NK cell", "monocyte",
    "classical monocyte", "dendritic cell", "plasmacytoid dendritic cell", "platelet", "erythrocyte",
    "plasma cell", "macrophage", "neutrophil", "basophil", "eosinophil", "mast cell", "hepatocyte",
    "endothelial cell", "fibroblast", "keratinocyte", "epithelial cell", "alveolar macrophage",
    "type II pneumocyte", "smooth muscle cell", "cardiac muscle cell", "astrocyte", "oligodendrocyte",
    "microglial cell", "neuron", "pericyte", "adipocyte", "chondrocyte", "osteoblast", "enterocyte",
    "goblet cell", "Paneth cell", "hematopoietic stem cell", "megakaryocyte",
]  # fmt: skip
K = 100


# -- measuring ------------------------------------------------------------------------------------
def ab(step: Callable[[], object], bound: Callable[[], object], repeats: int) -> dict:
    """Alternate bound and step ``repeats`` times; best time and largest peak of each."""
    out = {"seconds": float("inf"), "bound_seconds": float("inf"), "peak_mb": 0.0, "bound_peak_mb": 0.0}
    for _ in range(repeats):
        for name, fn in (("bound_", bound), ("", step)):
            with Peak() as p:
                fn()
            out[f"{name}seconds"] = min(out[f"{name}seconds"], p.seconds)
            out[f"{name}peak_mb"] = max(out[f"{name}peak_mb"], p.peak)
            out[f"{name}increase_mb"] = max(out.get(f"{name}increase_mb", 0.0), p.peak - p.start)
    out["ratio"] = out["seconds"] / out["bound_seconds"]
    return out


# -- the data ---------------------------------------------------------------------------------------
@dataclass
class Ctx:
    """What every step gets: the work folder (data, models), the settings, and loaders."""

    work: Path
    n_cells: int
    input_dim: int
    device: str
    repeats: int
    csr_cells: int

    def adata(self, *, embedded: bool = False):
        import anndata as ad
        import pandas as pd

        obs = pd.read_parquet(self.work / "obs.parquet")
        obsm = {"X_mmc_init": np.load(self.work / "init.npy")}
        adata = ad.AnnData(obs=obs, obsm=obsm)
        if embedded:
            adata.obsm["X_mmc"] = np.load(self.work / "emb.npy")
            adata.uns["mmcontext"] = json.loads((self.work / "embed_record.json").read_text())
        return adata

    def model(self, name: str = "model"):
        import mmcontext as mmc

        return mmc.models.load(str(self.work / name), device=self.device)

    def queries(self, n: int) -> list[str]:
        tissues = ["blood", "lung", "liver", "brain", "gut"]
        texts = [f"{t}s" for t in TYPES] + [f"a {t} from the {s}" for t in TYPES for s in tissues]
        return texts[:n]


def generate(ctx: Ctx) -> None:
    """obs.parquet, init.npy (cells x input_dim), model/ (trained on 20k cells), emb.npy, the CSR model and h5ad."""
    import anndata as ad
    import pandas as pd

    import mmcontext as mmc

    rng = np.random.default_rng(0)
    n, d = ctx.n_cells, ctx.input_dim
    types = rng.integers(0, len(TYPES), size=n)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical.from_codes(types, categories=TYPES),
            "donor": pd.Categorical.from_codes(rng.integers(0, 8, size=n), categories=[f"d{i}" for i in range(8)]),
        },
        index=[f"cell{i:08d}" for i in range(n)],
    )
    obs.to_parquet(ctx.work / "obs.parquet")
    centres = rng.normal(0, 2.0, size=(len(TYPES), d)).astype(np.float32)
    init = np.lib.format.open_memmap(ctx.work / "init.npy", mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        init[s:e] = centres[types[s:e]] + rng.normal(size=(e - s, d)).astype(np.float32)
    init.flush()
    del init
    train = ad.AnnData(obs=obs.iloc[:20_000].copy(), obsm={"X_mmc_init": np.load(ctx.work / "init.npy")[:20_000]})
    model = mmc.tl.train(
        train, caption_key="cell_type", epochs=2, batch_size=128, validation_split=0.05, seed=0, device=ctx.device
    )
    mmc.models.save_model(model, ctx.work / "model")
    adata = ctx.adata()
    mmc.tl.embed(adata, model)
    np.save(ctx.work / "emb.npy", adata.obsm["X_mmc"])
    (ctx.work / "embed_record.json").write_text(json.dumps({"embed": _jsonable(adata.uns["mmcontext"]["embed"])}))
    # the streamed step: a backed CSR atlas and a gene-panel model over its genes
    sys.path.insert(0, str(HERE))
    from atlas_embed import write_h5ad

    write_h5ad(ctx.work / "atlas.h5ad", ctx.csr_cells, 2_000)
    backed = ad.read_h5ad(ctx.work / "atlas.h5ad", backed="r")
    csr = mmc.models.MMContextEncoder.build(2_000, hidden_dim=256, seed=0, device=ctx.device)
    csr.omics_encoder.set_input_arrays(genes=np.asarray(backed.var_names))
    csr.omics_encoder.fit_scaler(backed.X[:5_000].toarray())
    mmc.models.save_model(csr, ctx.work / "csr_model")


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- the steps -------------------------------------------------------------------------------------
def plain_mlp(omics, X, out, batch_size: int = 1024) -> None:
    """The omics tower's forward in plain torch: batches, unit rows, into a preallocated float32 array."""
    import torch

    omics.eval()
    with torch.inference_mode():
        for s in range(0, len(X), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(X[s : s + batch_size], dtype=np.float32)).to(
                omics.input_mean.device
            )
            emb = omics({"input_values": x})["sentence_embedding"]
            out[s : s + len(x)] = torch.nn.functional.normalize(emb, dim=1).cpu().numpy()


def step_embed(ctx: Ctx) -> dict:
    import mmcontext as mmc

    adata, model = ctx.adata(), ctx.model()
    omics = model.omics_encoder.eval()
    X = adata.obsm["X_mmc_init"]
    got = {}

    def bound() -> None:  # a new result array each call, as tl.embed returns one (its pages are touched anew)
        got["out"] = np.empty((adata.n_obs, omics.output_dim), np.float32)
        plain_mlp(omics, X, got["out"])

    res = ab(lambda: mmc.tl.embed(adata, model), bound, ctx.repeats)
    res["max_abs_diff"] = float(np.abs(adata.obsm["X_mmc"] - got["out"]).max())
    res["cells_per_s"] = adata.n_obs / res["seconds"]
    return res


def step_embed_stream(ctx: Ctx) -> dict:
    import anndata as ad

    import mmcontext as mmc

    backed, model = ad.read_h5ad(ctx.work / "atlas.h5ad", backed="r"), ctx.model("csr_model")
    omics = model.omics_encoder.eval()
    out = np.empty((backed.n_obs, omics.output_dim), np.float32)
    target = ctx.work / "stream.npy"

    def bound() -> None:  # the same result: read, densify, MLP, and the embedding written to a .npy file
        for s in range(0, backed.n_obs, 10_000):
            rows = backed.X[s : s + 10_000].toarray()
            plain_mlp(omics, rows, out[s : s + len(rows)])
        np.save(ctx.work / "stream_plain.npy", out)

    res = ab(lambda: mmc.tl.embed(backed, model, out=target), bound, ctx.repeats)
    res["max_abs_diff"] = float(np.abs(np.load(target) - out).max())
    res["cells_per_s"] = backed.n_obs / res["seconds"]
    return res


def _query(ctx: Ctx, n: int) -> dict:
    import mmcontext as mmc

    adata, model = ctx.adata(embedded=True), ctx.model()
    queries = ctx.queries(n)
    E = adata.obsm["X_mmc"]
    res = ab(
        lambda: mmc.tl.query(adata, model, queries, expand=None),
        lambda: E @ model.encode_text(queries).T,
        ctx.repeats,
    )
    res["n_queries"] = n
    return res


def step_query_1(ctx: Ctx) -> dict:
    return _query(ctx, 1)


def step_query_100(ctx: Ctx) -> dict:
    return _query(ctx, 100)


def numpy_top_k(E: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    """The plain bound: one matrix product, ``np.argpartition``, then sort the k."""
    S = Q @ E.T
    part = np.argpartition(S, S.shape[1] - k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def step_search_exact(ctx: Ctx) -> dict:
    import mmcontext as mmc

    adata, model = ctx.adata(embedded=True), ctx.model()
    queries = ctx.queries(100)
    E = adata.obsm["X_mmc"]
    got = {}
    res = ab(
        lambda: got.setdefault("hits", mmc.tl.search(adata, model, queries, k=K, expand=None)),
        lambda: got.setdefault("ref", numpy_top_k(E, model.encode_text(queries), K)),
        ctx.repeats,
    )
    names = np.asarray(adata.obs_names)[got["ref"]]
    hits = got["hits"]
    res["same_as_numpy"] = bool(
        all(set(hits.loc[hits["query"] == q, "obs_name"]) == set(names[j]) for j, q in enumerate(queries))
    )
    return res


def _index(ctx: Ctx, method: str) -> dict:
    import mmcontext as mmc

    adata, model = ctx.adata(embedded=True), ctx.model()
    queries = ctx.queries(100)
    Q = model.encode_text(queries)
    truth = numpy_top_k(adata.obsm["X_mmc"], Q, K)
    path = ctx.work / f"{method}.index"
    with Peak() as build:
        mmc.tl.build_index(adata, method=method, path=path)
    index = mmc.tl.load_index(path)
    index.check(adata, key="X_mmc", model_fingerprint=mmc.models.model_fingerprint(model))
    index.search(Q[:5], K)  # warm up
    best = float("inf")
    for _ in range(max(3, ctx.repeats)):
        t = time.perf_counter()
        pos, _ = index.search(Q, K)
        best = min(best, time.perf_counter() - t)
    with Peak() as via_api:
        hits = mmc.tl.search(adata, model, queries, k=K, index=index, expand=None)
    recall = float(np.mean([len(set(pos[j]) & set(truth[j])) / K for j in range(len(Q))]))
    stale = adata[1:].copy()
    try:
        mmc.tl.search(stale, model, queries[:1], index=index)
        refused = False
    except ValueError:
        refused = True
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    return {
        "build_seconds": build.seconds,
        "build_peak_mb": build.peak,
        "build_increase_mb": build.peak - build.start,
        "ms_per_query": 1000 * best / len(Q),
        "recall_at_100": recall,
        "search_api_seconds": via_api.seconds,
        "api_hits": len(hits),
        "index_mb": size,
        "stale_refused": refused,
        "params": index.params,
    }


STEPS: dict[str, Callable[[Ctx], dict]] = {
    "embed": step_embed,
    "embed_stream": step_embed_stream,
    "query_1": step_query_1,
    "query_100": step_query_100,
    "search_exact": step_search_exact,
}
for _m in ("faiss", "usearch", "hnswlib", "exact"):
    STEPS[f"index_{_m}"] = lambda ctx, _m=_m: _index(ctx, _m)


# -- running ---------------------------------------------------------------------------------------
def run_child(step: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--work", str(args.work)]
    cmd += ["--n-cells", str(args.n_cells), "--input-dim", str(args.input_dim), "--device", args.device]
    cmd += ["--repeats", str(args.repeats), "--csr-cells", str(args.csr_cells)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC})
    if res.returncode:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def report(results: dict, args: argparse.Namespace, machine: str) -> str:
    lines = [f"n_cells={args.n_cells:,} input_dim={args.input_dim} device={args.device} ({machine})", ""]
    lines += ["| step | seconds | bound s | ratio | peak RSS MB | increase MB | bound increase MB | other |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error | | | | | | {r['error'].splitlines()[-1][:120]} |")
            continue
        other = {
            k: v
            for k, v in r.items()
            if k
            not in {"seconds", "bound_seconds", "ratio", "peak_mb", "increase_mb", "bound_increase_mb", "bound_peak_mb"}
        }
        other_s = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in other.items())
        if "seconds" in r:
            lines.append(
                f"| {name} | {r['seconds']:.3f} | {r['bound_seconds']:.3f} | {r['ratio']:.2f} | {r['peak_mb']:,.0f} "
                f"| {r['increase_mb']:,.0f} | {r['bound_increase_mb']:,.0f} | {other_s} |"
            )
        else:
            lines.append(f"| {name} | | | | {r.get('build_peak_mb', 0):,.0f} | | | {other_s} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-cells", type=int, default=100_000)
    p.add_argument("--input-dim", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--csr-cells", type=int, default=200_000)
    p.add_argument("--steps", default="embed,embed_stream,query_1,query_100,search_exact,index")
    p.add_argument("--index-methods", default="faiss")
    p.add_argument("--work", type=Path, default=None, help="keep the generated data here (default: a temporary dir)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.csr_cells = min(args.csr_cells, args.n_cells)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device on this machine.")
    sys.path.insert(0, SRC)
    import mmcontext as mmc

    mmc.settings.progress = False
    if args.child:
        ctx = Ctx(args.work, args.n_cells, args.input_dim, args.device, args.repeats, args.csr_cells)
        print(json.dumps(_jsonable(STEPS[args.child](ctx))))
        return
    keep = args.work is not None
    args.work = args.work or Path(tempfile.mkdtemp(prefix="mmc_perf_", dir="/tmp"))
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        ctx = Ctx(args.work, args.n_cells, args.input_dim, args.device, args.repeats, args.csr_cells)
        if not (args.work / "emb.npy").is_file():
            t = time.perf_counter()
            generate(ctx)
            print(f"generated the data in {time.perf_counter() - t:.0f} s", flush=True)
        steps = []
        for s in args.steps.split(","):
            steps += [f"index_{m}" for m in args.index_methods.split(",")] if s == "index" else [s]
        results = {}
        for s in steps:
            results[s] = run_child(s, args)
            print(s, json.dumps(results[s]), flush=True)
        import torch

        machine = f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
        print(report(results, args, machine))
        if args.out:
            args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}))
    finally:
        if not keep:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Command line: ``mmcontext quickstart | train | embed | query``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path


def _write_h5ad(adata, path: Path) -> None:
    """Write atomically: an interrupted write never leaves half a file."""
    from ._io import atomic_file

    with atomic_file(path) as tmp:
        adata.write_h5ad(tmp)


def _save_fig(fig_or_axes, path: Path) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    first = np.ravel(fig_or_axes)[0] if isinstance(fig_or_axes, (list, np.ndarray)) else fig_or_axes
    fig = getattr(first, "figure", first)
    from ._io import atomic_file

    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def quickstart(out: Path, *, epochs: int = 10, seed: int = 0) -> dict[str, float]:
    """Train on the bundled PBMC training cells, evaluate on held-out cells, then query and plot all cells."""
    import matplotlib

    matplotlib.use("Agg")
    import mmcontext as mmc
    from mmcontext.datasets import PBMC_LABEL_KEY, PBMC_QUERIES

    t0 = time.perf_counter()
    adata = mmc.datasets.pbmc68k_reduced()
    mmc.pp.prepare(adata, caption_keys={"cell_type": PBMC_LABEL_KEY})
    train_idx, test_idx = mmc.datasets.pbmc_split(adata, seed=seed)
    train, test = adata[train_idx].copy(), adata[test_idx].copy()
    model = mmc.tl.train(train, epochs=epochs, seed=seed, output_dir=out / "model")

    labels = list(adata.obs[PBMC_LABEL_KEY].cat.categories)
    mmc.tl.annotate(test, model, labels)
    mmc.tl.query(test, model, list(PBMC_QUERIES))
    res = mmc.tl.evaluate(test, label_key=PBMC_LABEL_KEY, queries=PBMC_QUERIES)
    metrics = {f"{m}:{s}" if m in ("auroc", "label_auroc") else m: float(v) for m, s, v in res.itertuples(index=False)}
    res.to_csv(out / "heldout_metrics.csv", index=False)

    mmc.tl.embed(adata, model)
    mmc.tl.query(adata, model, ["natural killer cells", "monocytes", "B lymphocytes", "antibody-secreting cells"])
    mmc.tl.annotate(adata, model, labels)
    _save_fig(mmc.pl.query(adata, show=False, return_fig=True), out / "query_umap.png")
    _save_fig(
        mmc.pl.embedding(adata, color=[PBMC_LABEL_KEY, "mmc_label"], show=False, return_fig=True),
        out / "joint_umap.png",
    )
    _save_fig(mmc.pl.training(model, show=False, return_fig=True), out / "training.png")
    _write_h5ad(adata, out / "pbmc68k_mmc.h5ad")
    metrics["seconds"] = time.perf_counter() - t0
    return metrics


def _load_h5ad(path: str):
    import anndata as ad

    if not os.path.isfile(path):
        raise SystemExit(f"error: input file {path!r} does not exist")
    return ad.read_h5ad(path)


def build_parser() -> argparse.ArgumentParser:
    """The ``mmcontext`` argument parser (the docs' CLI reference is generated from it)."""
    parser = argparse.ArgumentParser(prog="mmcontext", description=__doc__)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("quickstart", help="train on the bundled PBMC data, print held-out metrics, write h5ad + plots")
    p.add_argument("--out", default="mmcontext_quickstart", help="output folder (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="prepare (if needed) and train on an .h5ad, save the model")
    p.add_argument("input", help=".h5ad file")
    p.add_argument("--model-out", required=True, help="folder to save the trained model")
    p.add_argument("--caption-key", help="obs column of captions (default: built by prepare)")
    p.add_argument("--cell-type-key", help="obs column of cell types for captions (default: detected)")
    p.add_argument("--use-rep", help="existing obsm key to use as the initial embedding")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)

    for name, text in (("embed", "write the joint embedding (obsm['X_mmc'])"), ("query", "score cells against texts")):
        p = sub.add_parser(name, help=text)
        p.add_argument("input", help=".h5ad file (prepared in the model's input space, or with --use-rep)")
        p.add_argument("--model", required=True, help="saved model folder or Hub id")
        p.add_argument("--out", required=True, help="output .h5ad")
        p.add_argument("--use-rep", help="obsm key of the initial embedding")
        if name == "query":
            p.add_argument("--text", action="append", required=True, help="query text (repeatable)")
            p.add_argument("--plot", help="PNG file for the scores on the UMAP")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmcontext`` command."""
    args = build_parser().parse_args(argv)
    import mmcontext as mmc

    mmc.settings.progress = not args.quiet
    if not args.quiet:  # the package's own log lines only; other libraries keep their defaults
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log = logging.getLogger("mmcontext")
        log.addHandler(handler)
        log.setLevel(logging.INFO)

    if args.command == "quickstart":
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        metrics = quickstart(out, epochs=args.epochs, seed=args.seed)
        print("held-out zero-shot metrics (pbmc68k_reduced, 140 test cells):")
        for key, value in metrics.items():
            print(f"  {key:55s} {value:.3f}")
        print(f"wrote {out}/pbmc68k_mmc.h5ad, {out}/model/, query_umap.png, joint_umap.png, training.png")
        return 0

    adata = _load_h5ad(args.input)
    if args.command == "train":
        if args.caption_key is None and args.use_rep is None:
            keys = {"cell_type": args.cell_type_key} if args.cell_type_key else None
            mmc.pp.prepare(adata, caption_keys=keys)
        elif args.caption_key is None:
            mmc.pp.captions(adata, keys={"cell_type": args.cell_type_key} if args.cell_type_key else None)
        mmc.tl.train(
            adata,
            caption_key=args.caption_key,
            use_rep=args.use_rep,
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=args.seed,
            output_dir=args.model_out,
        )
        print(f"saved model to {args.model_out}")
        return 0

    model = mmc.models.load(args.model)
    if args.command == "embed":
        mmc.tl.embed(adata, model, use_rep=args.use_rep)
    else:
        mmc.tl.query(adata, model, args.text, use_rep=args.use_rep)
        if args.plot:
            _save_fig(mmc.pl.query(adata, args.text, show=False, return_fig=True), Path(args.plot))
    _write_h5ad(adata, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

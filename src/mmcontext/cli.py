"""mmcontext command line: quickstart, train, embed, query.

Errors in the input (a missing file, key or column, a bad option) are printed as one line on stderr with a
non-zero exit status; pass --traceback to see where they came from.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

#: Exceptions that mean "the input is wrong" (mmcontext's documented contract); shown as one line, exit status 1.
USER_ERRORS = (ValueError, KeyError, TypeError, OSError, ImportError)


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
    from ._io import atomic_file

    with atomic_file(out / "heldout_metrics.csv") as tmp:
        res.to_csv(tmp, index=False)

    mmc.tl.embed(adata, model)
    mmc.tl.query(adata, model, ["natural killer cells", "monocytes", "B lymphocytes", "antibody-secreting cells"])
    mmc.tl.annotate(adata, model, labels)
    _save_fig(mmc.pl.query(adata, show=False, return_fig=True), out / "query_umap.png")
    _save_fig(
        mmc.pl.embedding(adata, color=[PBMC_LABEL_KEY, "mmc_label", "mmc_split"], show=False, return_fig=True),
        out / "joint_umap.png",
    )
    _save_fig(mmc.pl.training(model, show=False, return_fig=True), out / "training.png")
    _write_h5ad(adata, out / "pbmc68k_mmc.h5ad")
    metrics["seconds"] = time.perf_counter() - t0
    return metrics


#: Python option names whose command-line flag has another name.
_ALIASES = {"keys": "caption_keys", "caption_keys": "caption_keys", "queries": "text"}

#: What ``mmcontext quickstart`` writes into its output folder.
QUICKSTART_FILES = (
    "pbmc68k_mmc.h5ad",
    "model/",
    "heldout_metrics.csv",
    "query_umap.png",
    "joint_umap.png",
    "training.png",
)


def _load_h5ad(path: str):
    import anndata as ad

    if not os.path.isfile(path):
        raise FileNotFoundError(f"input file {path!r} does not exist")
    return ad.read_h5ad(path)


def build_parser() -> argparse.ArgumentParser:
    """The ``mmcontext`` argument parser (subcommands in ``parser.subcommands``; the docs read it)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="mmcontext", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"mmcontext {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.subcommands = sub.choices

    p = sub.add_parser("quickstart", help="train on the bundled PBMC data, print held-out metrics, write h5ad + plots")
    p.add_argument("--out", default="mmcontext_quickstart", help="output folder (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="prepare (if needed) and train on an .h5ad, save the model")
    p.add_argument("input", help=".h5ad file")
    p.add_argument("--model-out", required=True, help="folder to save the trained model")
    p.add_argument("--caption-key", help="obs column of captions (default: built by prepare)")
    p.add_argument("--cell-type-key", help="obs column of cell types for captions (default: detected)")
    p.add_argument(
        "--caption-keys",
        action="append",
        metavar="FIELD=COLUMN",
        help="caption field from an obs column, e.g. cell_type=bulk_labels (repeatable; default: detected)",
    )
    p.add_argument("--use-rep", help="existing obsm key to use as the initial embedding")
    p.add_argument("--method", choices=("genes", "pca"), default="genes", help="initial embedding (default: genes)")
    p.add_argument("--n-components", type=int, default=50, help="principal components for --method pca")
    p.add_argument("--layer", help="layer holding log-normalised expression (default: X)")
    p.add_argument("--normalize", action="store_true", help="the expression holds raw counts: log-normalise them")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--validation-split", type=float, default=0.1, help="share of cells held out (default: 0.1)")
    p.add_argument("--seed", type=int, default=0)

    for name, text in (("embed", "write the joint embedding (obsm['X_mmc'])"), ("query", "score cells against texts")):
        p = sub.add_parser(name, help=text)
        p.add_argument("input", help=".h5ad file (prepared in the model's input space, or with --use-rep)")
        p.add_argument("--model", required=True, help="saved model folder or Hub id")
        p.add_argument("--out", required=True, help="output .h5ad")
        p.add_argument(
            "--use-rep", help="obsm key of the initial embedding (default: the one the model was trained on)"
        )
        p.add_argument("--layer", help="layer of log-normalised expression to project by gene name (default: X)")
        p.add_argument("--normalize", action="store_true", help="the expression holds raw counts: log-normalise them")
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace obs / obsm entries of the same names mmcontext did not write",
        )
        if name == "embed":
            p.add_argument(
                "--key-added", default="X_mmc", help="obsm key of the joint embedding (default: %(default)s)"
            )
        if name == "query":
            p.add_argument("--text", action="append", required=True, help="query text (repeatable)")
            p.add_argument(
                "--expand",
                choices=("ontology", "none"),
                default="ontology",
                help="phrase queries naming a Cell Ontology term as captions (default), or use every query as typed",
            )
            p.add_argument("--plot", help="PNG file for the scores on the UMAP")
    return parser


def cli_words(text: str, parser: argparse.ArgumentParser, command: str | None) -> str:
    """``text`` with Python options the command line has (```use_rep=`` ``) written as its flags (``--use-rep``)."""
    sub = parser.subcommands.get(command) if command else None
    flags = {a.dest: a.option_strings[-1] for a in (sub or parser)._actions if a.option_strings}

    def flag(m: re.Match) -> str:
        name, value = m.group(1), m.group(2).strip()
        name = name if name in flags else _ALIASES.get(name, name)
        if name not in flags:
            return m.group(0)
        pairs = re.findall(r"'([^']*)'\s*:\s*'([^']*)'", value)  # a dict such as {'cell_type': '<column>'}
        value = " ".join(f"{k}={v}" for k, v in pairs) if pairs else value.strip("'\"")
        return f"`{flags[name]}{' ' + value if value and value != 'True' else ''}`"

    return re.sub(r"`([a-z_]+)=([^`]*)`", flag, text)


def _caption_keys(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    bad = [i for i in items if "=" not in i]
    if bad:
        raise ValueError(f"--caption-keys takes FIELD=COLUMN (e.g. cell_type=bulk_labels), got {bad!r}")
    return dict(i.split("=", 1) for i in items)


class _CliFormatter(logging.Formatter):
    def __init__(self, parser: argparse.ArgumentParser, command: str) -> None:
        super().__init__("%(message)s")
        self.parser, self.command = parser, command

    def format(self, record: logging.LogRecord) -> str:
        return cli_words(super().format(record), self.parser, self.command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmcontext`` command: 0 on success, 1 on an input error (one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except KeyboardInterrupt:
        print("mmcontext: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.traceback:
            raise
        text = " ".join((str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)).split())
        name = type(err).__name__
        print(f"mmcontext {args.command}: error: {cli_words(text, parser, args.command)} ({name})", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import mmcontext as mmc

    mmc.settings.progress = not args.quiet
    if not args.quiet:  # the package's own log lines only; other libraries keep their defaults
        handler = logging.StreamHandler()
        handler.setFormatter(_CliFormatter(parser, args.command))
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
        print(f"wrote to {out}/: {', '.join(QUICKSTART_FILES)}")
        return 0

    adata = _load_h5ad(args.input)
    if args.command == "train":
        keys = _caption_keys(args.caption_keys)
        if args.cell_type_key:
            keys = {**(keys if isinstance(keys, dict) else {}), "cell_type": args.cell_type_key}
        if args.caption_key is None and args.use_rep is None:
            mmc.pp.prepare(
                adata,
                method=args.method,
                n_components=args.n_components,
                layer=args.layer,
                normalize=args.normalize,
                caption_keys=keys,
            )
        elif args.caption_key is None:
            mmc.pp.captions(adata, keys=keys)
        mmc.tl.train(
            adata,
            caption_key=args.caption_key,
            use_rep=args.use_rep,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            validation_split=args.validation_split,
            seed=args.seed,
            output_dir=args.model_out,
        )
        print(f"saved model to {args.model_out}")
        return 0

    model = mmc.models.load(args.model)
    embed = {"use_rep": args.use_rep, "layer": args.layer, "normalize": args.normalize, "overwrite": args.overwrite}
    if args.command == "embed":
        mmc.tl.embed(adata, model, key_added=args.key_added, **embed)
    else:
        if args.layer is not None or args.normalize:
            mmc.tl.embed(adata, model, **embed)
        expand = None if args.expand == "none" else args.expand
        mmc.tl.query(adata, model, args.text, use_rep=args.use_rep, expand=expand, overwrite=args.overwrite)
        if args.plot:
            _save_fig(mmc.pl.query(adata, args.text, show=False, return_fig=True), Path(args.plot))
    _write_h5ad(adata, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Training curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._utils import finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def training(
    model_or_history: Any,
    *,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
):
    """Plot training and validation loss per epoch.

    Parameters
    ----------
    model_or_history
        A model returned by :func:`mmcontext.tl.train` (``model.mmc_history``), a list of log entries,
        or the path of a ``training_history.json`` written with the saved model.
    ax, show, return_fig
        As in :func:`mmcontext.pl.query`.

    Returns
    -------
    Axes, or the figure with ``return_fig=True``; ``None`` when shown.

    """
    import json
    import os

    history = model_or_history
    if isinstance(history, (str, os.PathLike)):
        path = os.fspath(history)
        if os.path.isdir(path):
            path = os.path.join(path, "training_history.json")
        with open(path) as fh:
            history = json.load(fh)
    elif hasattr(history, "mmc_history"):
        history = history.mmc_history
    train = [(e["epoch"], e["loss"]) for e in history if "loss" in e and "epoch" in e]
    val = [(e["epoch"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if not train and not val:
        raise ValueError("The training history has no loss entries.")
    ax = new_axes(ax)
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", color="tab:blue")
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", color="tab:orange")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax, show=show, return_fig=return_fig)

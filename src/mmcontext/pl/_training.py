"""Training curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _model_attrs
from .._docs import doc_params
from ._utils import finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@doc_params("pl_common")
def training(
    model_or_history: Any,
    *,
    ax: Axes | None = None,
    show: bool | None = None,
    return_fig: bool = False,
):
    """Plot training and validation loss per epoch, and the validation cell -> caption accuracy when logged.

    Parameters
    ----------
    model_or_history
        A model returned by :func:`mmcontext.tl.train` (``model.mmc_history``), a list of log entries,
        or the path of a ``training_history.json`` written with the saved model.
    ax, show, return_fig
        {pl_common}

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
    elif _model_attrs.history(history) is not None:
        history = _model_attrs.history(history)
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
    handles, labels = ax.get_legend_handles_labels()
    acc = [(e["epoch"], e["eval_validation_accuracy"]) for e in history if "eval_validation_accuracy" in e]
    if acc:  # cell -> caption retrieval on the validation cells, on its own axis
        ax2 = ax.twinx()
        (line,) = ax2.plot(*zip(*acc, strict=True), "s--", color="tab:green", label="validation accuracy")
        ax2.set_ylabel("validation accuracy")
        ax2.set_ylim(0, 1.02)
        ax2.spines[["top"]].set_visible(False)
        handles, labels = [*handles, line], [*labels, line.get_label()]
    ax.legend(handles, labels, frameon=False, loc="center right")
    ax.spines[["top", "right"]].set_visible(False)
    return finish(ax, show=show, return_fig=return_fig)

"""What mmcontext attaches to a model object, in one place (core layer: plain attributes, no torch).

``mmc.tl.train`` sets the training log (``model.mmc_history``, public: :func:`mmcontext.pl.training` reads it),
the training parameters (``mmc_training``) and the model card's data section (``mmc_card``); ``mmc.models.load``
sets where the model came from (``mmc_source``). Everything else reads them through these helpers.
"""

from __future__ import annotations

from typing import Any

HISTORY = "mmc_history"
TRAINING = "mmc_training"
CARD = "mmc_card"
SOURCE = "mmc_source"


def set_trained(model: Any, *, history: list[dict], params: dict[str, Any]) -> None:
    """Attach the training log and parameters after ``tl.train``."""
    setattr(model, HISTORY, history)
    setattr(model, TRAINING, params)


def set_card(model: Any, info: dict[str, Any]) -> None:
    """Attach what the saved model's README.md says about its data (see ``models/_card.py``)."""
    setattr(model, CARD, info)


def set_source(model: Any, source: str) -> None:
    """Record the path or Hub id a model was loaded from."""
    setattr(model, SOURCE, source)


def history(model: Any) -> list[dict] | None:
    """The training log, or ``None`` for a model that ``tl.train`` did not train in this session."""
    return getattr(model, HISTORY, None)


def card(model: Any) -> dict[str, Any] | None:
    """The model card's data section, or ``None``."""
    return getattr(model, CARD, None)


def source(model: Any) -> str:
    """Path or Hub id the model was loaded from; ``"in-memory"`` for one built or trained here."""
    return str(getattr(model, SOURCE, "in-memory"))

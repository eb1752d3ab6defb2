"""Saving models so that an interrupted save never replaces a good copy with a broken one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._encoder import MMContextEncoder


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``; an existing ``target`` is swapped out, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_model(model: MMContextEncoder, path: str | os.PathLike, **kwargs) -> Path:
    """``save_pretrained`` into a temporary sibling folder, then move it into place.

    A process killed mid-save leaves the previous folder at ``path`` intact.
    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(str(tmp), **kwargs)
        history = getattr(model, "mmc_history", None)
        if history is not None:
            (tmp / "training_history.json").write_text(json.dumps(history, indent=1))
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

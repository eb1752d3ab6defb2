"""Atomic writes: files and folders are written to a temporary sibling, then moved into place.

A process killed mid-write leaves the previous version at the target path intact (or, for a
folder killed in the instant between the two renames of :func:`replace_dir`, a ``.<name>.old-*``
sibling that :func:`recover_dir` moves back).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._logging import logger


@functools.cache
def _umask() -> int:
    umask = os.umask(0o022)  # read once: os.umask can only be read by setting it
    os.umask(umask)
    return umask


def default_mode(path: str | os.PathLike, *, directory: bool) -> None:
    """Give a mkstemp/mkdtemp path (created 0600/0700) the permissions a plain open/mkdir would."""
    Path(path).chmod((0o777 if directory else 0o666) & ~_umask())


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``target``; an existing ``target`` is swapped out, then removed."""
    tmp, target = Path(tmp), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: str | os.PathLike) -> bool:
    """If ``target`` is missing but a swapped-out previous version is next to it, move that back.

    Returns whether a previous version was restored.
    """
    target = Path(target)
    if target.exists() or not target.parent.is_dir():
        return False
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    os.replace(olds[-1], target)
    logger.warning("restored %s from an interrupted save (%s)", target, olds[-1].name)
    return True


def tmp_dir_beside(target: Path) -> Path:
    """A new hidden folder next to ``target`` (same filesystem, so renaming it is atomic), usual permissions."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    default_mode(tmp, directory=True)
    return tmp


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``, on error it is removed.

    Examples
    --------
    >>> with atomic_dir("out/index") as tmp:  # doctest: +SKIP
    ...     (tmp / "vectors.npy").write_bytes(data)

    """
    target = Path(path).resolve()
    tmp = tmp_dir_beside(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on success it replaces ``path`` (``os.replace``).

    Examples
    --------
    >>> with atomic_file("out/adata.h5ad") as tmp:  # doctest: +SKIP
    ...     adata.write_h5ad(tmp)

    """
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    default_mode(tmp, directory=False)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_save_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_dir`, but never removes files at ``path`` that this save does not write.

    When ``path`` holds only files this save rewrites (or does not exist), the whole folder is swapped
    atomically; otherwise (a folder shared with other files) each written file replaces its old
    version with ``os.replace``, and the other files are kept.
    """
    target = Path(path).resolve()
    tmp = tmp_dir_beside(target)
    try:
        yield tmp
        written = {p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file()}
        existing = {p.relative_to(target) for p in target.rglob("*") if p.is_file()} if target.is_dir() else set()
        if existing <= written:
            replace_dir(tmp, target)
        else:
            for rel in sorted(written):
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / rel, target / rel)
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

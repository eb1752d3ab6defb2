"""Atomic writes: files and folders are written to a temporary sibling, then moved into place.

A process killed mid-write leaves the previous version at the target path intact (or, for a
folder killed in the instant between the two renames of :func:`replace_dir`, a ``.<name>.old-*``
sibling that :func:`recover_dir` moves back). Temporaries are named after the host and process that
made them (``.<name>.tmp-<host>-<pid>-*``); the next write to the same target removes those whose
process is gone, so a kill leaves nothing behind for long.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import socket
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


def _owner() -> str:
    """``<host>-<pid>``: which process made a temporary (host names with '-' or '.' are kept readable)."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def _dead(owner: str) -> bool:
    """Whether the process named by an ``<host>-<pid>`` tag is gone (only decidable on this host)."""
    host, _, pid = owner.rpartition("-")
    if host != _owner().rpartition("-")[0] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def clean_leftovers(target: str | os.PathLike) -> list[str]:
    """Remove temporaries an interrupted write to ``target`` left beside it (their process is gone).

    Only ``.<name>.tmp-<host>-<pid>-*`` and ``.<name>.old-<host>-<pid>`` siblings of a dead process on this
    host are removed; an ``.old-`` copy is kept while ``target`` itself is missing (:func:`recover_dir` needs it).
    Returns the names removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    for kind in ("tmp", "old"):
        if kind == "old" and not target.exists():
            continue
        prefix = f".{target.name}.{kind}-"
        for p in target.parent.glob(f"{glob.escape(prefix)}*"):
            rest = p.name[len(prefix) :]
            owner = "-".join(rest.split("-")[:2]) if kind == "tmp" else rest
            if not _dead(owner):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p.name)
    if removed:
        logger.info("removed %d temporaries an interrupted write to %s left: %s", len(removed), target, removed)
    return removed


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``target``; an existing ``target`` is swapped out, then removed."""
    tmp, target = Path(tmp), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{_owner()}")
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
    olds = sorted(target.parent.glob(f"{glob.escape(f'.{target.name}.old-')}*"), key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    os.replace(olds[-1], target)
    logger.warning("restored %s from an interrupted save (%s)", target, olds[-1].name)
    return True


def tmp_prefix(target: Path) -> str:
    """Name prefix of this process's temporaries for ``target``."""
    return f".{target.name}.tmp-{_owner()}-"


def refuse_file(target: Path) -> None:
    """Raise if ``target`` is an existing file (or a link to one) where a folder is to be written."""
    if target.exists() and not target.is_dir():
        raise FileExistsError(
            f"{str(target)!r} is a file, not a folder; writing a folder there would delete it. "
            "Pass another path, or remove the file first."
        )


def tmp_dir_beside(target: Path) -> Path:
    """A new hidden folder next to ``target`` (same filesystem, so renaming it is atomic), usual permissions.

    Leftovers of earlier interrupted writes to ``target`` are removed first (:func:`clean_leftovers`).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(target), dir=target.parent))
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
    refuse_file(target)
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
    if target.is_dir():
        raise IsADirectoryError(f"{str(target)!r} is a folder; pass a file path.")
    clean_leftovers(target)
    fd, name = tempfile.mkstemp(prefix=tmp_prefix(target), suffix=target.suffix, dir=target.parent)
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

    Files already at ``path`` that this save does not write (a folder shared with other files) are
    hard-linked (or copied) into the new version first, then the whole folder is swapped at once: a kill
    at any point leaves either the complete old folder or the complete new one.
    """
    target = Path(path).resolve()
    refuse_file(target)
    tmp = tmp_dir_beside(target)
    try:
        yield tmp
        if target.is_dir():
            _carry_over(target, tmp)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _carry_over(old: Path, new: Path) -> None:
    """Link (or copy) every file and link under ``old`` that ``new`` does not have into ``new``."""
    for root, dirs, files in os.walk(old):
        rel = Path(root).relative_to(old)
        for name in list(dirs):
            src = Path(root) / name
            if src.is_symlink():  # os.walk does not descend into links; keep the link itself
                files.append(name)
                dirs.remove(name)
        for name in files:
            src, dst = Path(root) / name, new / rel / name
            if dst.exists() or dst.is_symlink():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
                continue
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

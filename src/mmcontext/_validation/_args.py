"""Checks of plain arguments: numbers, texts, names, ``key_added``, dimensions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd


def _closest(key: str, options: Iterable[str]) -> str:
    options = [str(o) for o in options]
    close = difflib.get_close_matches(key, options, n=3, cutoff=0.5)
    if close:
        return f" Did you mean {', '.join(repr(c) for c in close)}?"
    return f" Available: {options[:20]!r}." if options else " There are none."


def check_unique_names(names: Any, *, what: str, why: str = "") -> None:
    """Raise if ``names`` (obs or var names) repeat, also once converted to strings (``1`` and ``"1"``).

    Names are compared as the strings they become in an h5ad file, an embedding store or a gene lookup.
    """
    given = names if isinstance(names, pd.Index) else None
    if given is not None and given.inferred_type in ("string", "empty") and given.is_unique:
        return  # all strings already, and pandas caches both answers on the index: O(1) when called again
    index = pd.Index(np.asarray(names).astype(str))
    if index.is_unique:
        return
    dup = index[index.duplicated()][:3].tolist()
    fix = "obs_names_make_unique" if "obs" in what else "var_names_make_unique"
    clash = "" if pd.Index(names).is_unique is False else " once converted to strings"
    reason = f"; {why}" if why else ""
    raise ValueError(f"{what} are not unique{clash} (e.g. {dup!r}){reason}. Run `adata.{fix}()` first.")


def check_number(
    value: Any,
    *,
    what: str,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    none: bool = False,
) -> float | int | None:
    """Return ``value`` as a float (or int) after checking its type and range, naming the argument.

    Strings, booleans and (for ``integer=True``) non-integral numbers such as ``1.5`` raise ``TypeError``;
    values outside ``[low, high]`` (``(low, high]`` with ``low_open``) or NaN raise ``ValueError``.
    """
    import numbers

    if value is None and none:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be {kind}, got {type(value).__name__} {value!r}.")
    if integer and float(value) != int(value):
        raise TypeError(f"{what} must be {kind}, got {value!r}.")
    number = int(value) if integer else float(value)
    if number != number:
        raise ValueError(f"{what} must be {kind}, got NaN.")
    below = low is not None and (number <= low if low_open else number < low)
    if below or (high is not None and number > high):
        if low is not None and high is not None:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            bound = f"{'>' if low_open else '>='} {low:g}"
        else:
            bound = f"<= {high:g}"
        raise ValueError(f"{what} must be {bound}, got {value!r}.")
    return number


def check_texts(texts: Any, *, what: str) -> list[str]:
    """Return ``texts`` as a non-empty list of non-empty strings (a single string becomes a list).

    A number, a mapping or anything else that is not a string or a sequence of strings raises ``TypeError``.
    """
    from collections.abc import Mapping

    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, (Mapping, bytes)) or not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a string or a list of strings, got {type(texts).__name__} {texts!r}.")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{what} is empty; pass at least one text.")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what} must be non-empty strings, got {type(t).__name__} {t!r}.")
    return texts


def check_query_labels(queries: Any, *, what: str = "queries") -> dict[str, list[str]]:
    """Return ``{query text: [labels]}`` checked: a mapping of texts to one label or a list of labels.

    A single label string stays one label (never split into its characters).
    """
    from collections.abc import Mapping

    if queries is None:
        return {}
    if not isinstance(queries, Mapping):
        raise TypeError(
            f"{what} must be a dict {{query text: [true labels]}}, got {type(queries).__name__}; "
            'e.g. `queries={"NK cells": ["CD56+ NK"]}`.'
        )
    out = {}
    for text, labels in queries.items():
        check_texts(text, what=f"{what} keys")
        out[text] = check_texts(labels, what=f"{what}[{text!r}]")
    return out


def check_dim(n_features: int, expected: int, *, what: str, fix: str) -> None:
    """Raise if an input has ``n_features`` columns where the model expects ``expected``."""
    if n_features != expected:
        raise ValueError(f"{what} has {n_features} features but the model expects {expected}. {fix}")


def check_key_added(key_added: Any, *, what: str = "key_added") -> str:
    """Return ``key_added`` if it is a non-empty string, else raise ``TypeError``/``ValueError``."""
    if not isinstance(key_added, str):
        raise TypeError(f"{what} must be a string, got {type(key_added).__name__}.")
    if not key_added.strip():
        raise ValueError(f"{what} must be a non-empty string.")
    return key_added

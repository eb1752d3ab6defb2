"""The exceptions mmcontext raises for bad input (core layer: imports nothing of mmcontext)."""

from __future__ import annotations


class MMContextKeyError(KeyError, ValueError):
    """A key, column or layer the user named does not exist.

    Subclasses both :class:`KeyError` (what scanpy raises for a missing key, so ``except KeyError``
    keeps working) and :class:`ValueError` (the documented contract of every public function: bad
    input raises ``ValueError`` or ``TypeError``). Its message is shown without ``KeyError``'s quotes.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

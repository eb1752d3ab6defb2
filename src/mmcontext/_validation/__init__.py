"""Input checks shared by every public function.

Each check raises before anything is written, with a message naming the key, column or shape
that is wrong and how to fix it. One module per kind of input:

- ``_args``: plain arguments (numbers, texts, names, ``key_added``, dimensions);
- ``_anndata``: an AnnData and what is read from or written into it (``obs`` / ``obsm`` / layers, writability,
  output names, a content digest);
- ``_values``: matrix values (finite, floats, raw counts vs log-normalised vs scaled expression);
- ``_objects``: model objects and saved model folders, by class name (no import of the torch layer).

Import the checks from here: ``from mmcontext._validation import check_adata``.
"""

from .._errors import MMContextKeyError  # also importable from here, where the docs name it
from ._anndata import (
    MMContextOverwriteError,
    _recorded_key,
    adata_digest,
    check_adata,
    check_outputs,
    check_text_column,
    check_writable,
    get_layer,
    get_obs_column,
    get_obsm,
)
from ._args import (
    _closest,
    check_dim,
    check_key_added,
    check_number,
    check_query_labels,
    check_texts,
    check_unique_names,
)
from ._objects import check_model, check_model_folder, check_trained
from ._values import (
    as_float_matrix,
    check_counts,
    check_expression_values,
    check_finite,
    check_log_normalised,
    looks_like_counts,
    looks_scaled,
    warn_if_scaled,
)

__all__ = [
    "MMContextKeyError",
    "MMContextOverwriteError",
    "_closest",
    "_recorded_key",
    "adata_digest",
    "as_float_matrix",
    "check_adata",
    "check_counts",
    "check_dim",
    "check_expression_values",
    "check_finite",
    "check_key_added",
    "check_log_normalised",
    "check_model",
    "check_model_folder",
    "check_number",
    "check_outputs",
    "check_query_labels",
    "check_text_column",
    "check_texts",
    "check_trained",
    "check_unique_names",
    "check_writable",
    "get_layer",
    "get_obs_column",
    "get_obsm",
    "looks_like_counts",
    "looks_scaled",
    "warn_if_scaled",
]

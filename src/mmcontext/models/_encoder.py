"""MMContextEncoder: a stock SentenceTransformer with a text route and an omics route."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Router

from .. import _model_attrs
from ._omics import OmicsEncoder
from ._processor import MMContextProcessor
from ._text import DEFAULT_TEXT_MODEL, text_modules

logger = logging.getLogger("mmcontext")

TEXT = "text"
OMICS = "omics"


def unfrozen_text_layers(layers: int | str | bool) -> int | None:
    """How :meth:`MMContextEncoder.set_text_trainable` reads ``layers``: None = all train, else the top n (0 = none)."""
    if layers is True or layers == "all":
        return None
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool) and layers > 0:
        return int(layers)
    return 0


class MMContextEncoder(SentenceTransformer):
    """Cells and texts in one normalised embedding space.

    The model is ``Router({"text": [text tower...], "omics": [OmicsEncoder]}) -> Normalize`` built
    from stock sentence-transformers modules, so ``encode``, ``similarity``, ``save_pretrained`` and
    ``push_to_hub`` work as for any ``SentenceTransformer``. Create a new one with :meth:`build`; load
    a saved one with ``MMContextEncoder(path)`` or :func:`mmcontext.models.load` (plain
    ``SentenceTransformer(path, trust_remote_code=True)`` works too, with mmcontext installed).
    Loading never runs code a model folder ships: mmcontext's own classes are resolved to the installed
    package, and any other class outside sentence-transformers is refused unless ``trust_remote_code=True``.

    Texts go to the text route by default; cells need ``task="omics"`` in ``encode`` or the
    :meth:`encode_cells` shortcut, which takes a matrix of initial embeddings.
    """

    def __init__(self, model_name_or_path: str | None = None, *args, trust_remote_code: bool = False, **kwargs) -> None:
        # mmcontext's own module classes (named by import path in modules.json) resolve to the installed classes
        # without trusting remote code; every other non-sentence-transformers type still needs
        # trust_remote_code=True, so a downloaded model cannot run code it ships.
        from .._compat import resolve_module_classes

        resolve_module_classes(self, own_module_classes())
        try:
            super().__init__(model_name_or_path, *args, trust_remote_code=trust_remote_code, **kwargs)
        except ValueError as err:
            if trust_remote_code or "Importing it executes third-party code" not in str(err):
                raise
            ref = re.search(r"module class '([^']+)'", str(err))
            raise UntrustedModelError(
                f"{model_name_or_path!r} names the module class {ref.group(1) if ref else '?'!r} in its modules.json, "
                "which is neither part of sentence-transformers nor of mmcontext; loading it would run code the "
                "model ships. Inspect the folder, and only if you trust it pass `trust_remote_code=True` "
                "(`mmc.models.load(path, trust_remote_code=True)`)."
            ) from err
        if model_name_or_path is not None:
            self.eval()  # a loaded model is ready to embed (as transformers' from_pretrained): no dropout

    @classmethod
    def build(
        cls,
        input_dim: int,
        *,
        text_model: str | None = None,
        hidden_dim: int = 512,
        n_layers: int = 2,
        dropout: float = 0.1,
        text_adapter: bool = False,
        embedding_dim: int | None = None,
        input_space: dict[str, Any] | None = None,
        device: str | None = None,
        seed: int | None = 0,
        prompts: dict[str, str] | None = None,
    ) -> MMContextEncoder:
        """Create an untrained model.

        Parameters
        ----------
        input_dim
            Length of the cells' initial embedding vectors.
        text_model
            Any sentence-transformers model name or path; default: the bundled all-MiniLM-L6-v2.
        hidden_dim, n_layers, dropout
            Shape of the omics adapter MLP (see :class:`~mmcontext.models.OmicsEncoder`).
        text_adapter
            Add a trainable linear layer after the text tower. Without it (default) cells are mapped
            into the text model's own space, which keeps what the text model knows about language.
        embedding_dim
            Dimension of the joint space; only with ``text_adapter=True`` may it differ from the
            text model's dimension.
        input_space
            Description of the initial embedding, stored with the model.
        device
            Torch device; default from :attr:`mmcontext.settings.device`.
        seed
            Seed for the initial weights of the new layers (``None``: not seeded).
        prompts
            Text prompts by name, e.g. ``{"query": "a cell that is ", "document": ""}``; stored in
            ``config_sentence_transformers.json`` and prepended to texts by ``encode(..., prompt_name="query")``,
            ``encode_query`` and ``encode_document`` (never to cells).

        """
        if seed is not None:
            torch.manual_seed(seed)
        text = text_modules(text_model)
        text_dim = next(m for m in reversed(text) if hasattr(m, "get_embedding_dimension")).get_embedding_dimension()
        if embedding_dim is not None and embedding_dim != text_dim and not text_adapter:
            raise ValueError(
                f"embedding_dim={embedding_dim} differs from the text model's dimension {text_dim}; "
                "pass text_adapter=True to project text into a space of another size."
            )
        dim = embedding_dim or text_dim
        if text_adapter:
            text.append(Dense(text_dim, dim, activation_function=torch.nn.Identity()))
        omics = OmicsEncoder(
            input_dim, dim, hidden_dim=hidden_dim, n_layers=n_layers, dropout=dropout, input_space=input_space
        )
        router = Router({TEXT: text, OMICS: [omics]}, default_route=TEXT)
        model = cls(modules=[router, Normalize()], device=_device(device), prompts=prompts)
        model.model_card_data.base_model = text_model or DEFAULT_TEXT_MODEL
        return model

    # -- parts ---------------------------------------------------------------------------------
    @property
    def router(self) -> Router:
        """The Router holding the text and omics routes."""
        return self[0]

    @property
    def omics_encoder(self) -> OmicsEncoder:
        """The omics tower."""
        return self.router.sub_modules[OMICS][0]

    @property
    def text_modules(self) -> list[torch.nn.Module]:
        """The modules of the text route, in order."""
        return list(self.router.sub_modules[TEXT])

    @property
    def processor(self) -> MMContextProcessor:
        """The processor that resolves cell references to vectors."""
        return self.omics_encoder.processor

    @property
    def calibration(self) -> dict[str, Any]:
        """Label-probability calibration fitted on the validation cells by :func:`mmcontext.tl.train` (``{}``: none).

        ``scale`` (softmax scale of the cosine scores), ``weight`` (how much of a label's probability comes from
        the cell rather than from how often its caption was trained on), ``prior`` (``{caption: training cells}``)
        and the fit's validation numbers; used by :func:`mmcontext.tl.annotate`, saved with the model.
        """
        return self.omics_encoder.calibration

    @calibration.setter
    def calibration(self, value: dict[str, Any]) -> None:
        self.omics_encoder.calibration = dict(value or {})

    @property
    def input_dim(self) -> int:
        """Length of the initial embedding vectors the omics tower expects."""
        return self.omics_encoder.input_dim

    def set_text_trainable(self, layers: int | str | bool = False) -> None:
        """Freeze the text tower, or let all (``True``/``"all"``) or its top ``layers`` layers train.

        Adapter layers after the text encoder (``text_adapter=True``) always train.
        """
        encoder = self.text_modules[0]
        params = list(encoder.parameters())
        n_top = unfrozen_text_layers(layers)
        for p in params:
            p.requires_grad = n_top is None
        if n_top:
            blocks = _transformer_blocks(encoder)
            if not blocks:
                raise ValueError(f"Cannot find transformer layers in {type(encoder).__name__} to unfreeze.")
            for block in blocks[-n_top:]:
                for p in block.parameters():
                    p.requires_grad = True
        self._frozen = [encoder] if not any(p.requires_grad for p in params) else []

    def train(self, mode: bool = True) -> MMContextEncoder:
        """Set training mode; a frozen text tower stays in eval mode (no dropout) so its outputs are stable."""
        super().train(mode)
        for module in getattr(self, "_frozen", []):
            if module.training:  # not when it is out of the walk (the caption table): no per-step walk of it
                module.eval()
        return self

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, inputs=None, *args, task: str | None = None, **kwargs):
        """``SentenceTransformer.encode``; with ``task="omics"`` a matrix of vectors is accepted as is.

        sentence-transformers would read numpy rows as audio; they are passed on as lists instead.
        """
        if task == OMICS and inputs is not None and not isinstance(inputs, (str, dict)):
            if isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 2:
                inputs = inputs.tolist()
            elif isinstance(inputs, (list, tuple)):
                inputs = [x.tolist() if isinstance(x, (np.ndarray, torch.Tensor)) else x for x in inputs]
        return super().encode(inputs, *args, task=task, **kwargs)

    @torch.inference_mode()
    def encode_cells(
        self,
        X: Any,
        *,
        batch_size: int = 1024,
        show_progress_bar: bool | None = None,
        normalize: bool = True,
    ) -> np.ndarray:
        """Embed cells given as a matrix of initial embeddings (cells x :attr:`input_dim`).

        Equivalent to ``model.encode(list(X), task="omics")`` without the per-row Python overhead.
        Each cell's embedding depends only on its own vector, never on the batch.

        Returns
        -------
        float32 array of shape ``(n_cells, embedding_dim)``; rows are unit length when ``normalize``.

        """
        from .._settings import settings
        from .._validation import as_float_matrix, check_dim

        X = as_float_matrix(X, what="Cell matrix")
        check_dim(X.shape[1], self.input_dim, what="Cell matrix", fix=_dim_fix(self))
        was_training = self.training
        self.eval()
        try:
            show = settings.progress if show_progress_bar is None else show_progress_bar
            return encode_omics(self.omics_encoder, X, batch_size=batch_size, normalize=normalize, progress=show)
        finally:
            self.train(was_training)

    def save(self, path: str, *args, **kwargs) -> None:
        """``SentenceTransformer.save`` (and so ``save_pretrained``), written atomically.

        The model is written into a temporary folder beside ``path`` that then replaces ``path`` in one
        rename, so a save killed halfway leaves the previous model at ``path`` loadable. Files at ``path`` that
        the save does not write (e.g. a ``training_history.json``) are kept.
        """
        if path is None:
            return
        from .._io import atomic_save_dir
        from ._write import write_model

        with atomic_save_dir(path) as tmp:
            write_model(self, tmp, *args, **kwargs)
        if getattr(self.model_card_data, "save_dir", None):
            self.model_card_data.save_dir = os.fspath(path)  # not the temporary folder, which is gone

    def _create_model_card(self, path: str, *args, **kwargs) -> None:
        """Write the stock README.md, then add what the model was trained on (``mmc_card``, set by ``tl.train``)."""
        from ._card import HEADING, card_section

        super()._create_model_card(path, *args, **kwargs)
        info = _model_attrs.card(self)
        readme = os.path.join(path, "README.md")
        if not info or not os.path.isfile(readme):
            return
        with open(readme, encoding="utf8") as fh:
            text = fh.read()
        if HEADING not in text:
            if info.get("data"):  # the stock card knows no AnnData: name it instead of "Training Dataset: Unknown"
                text = text.replace(
                    "<!-- - **Training Dataset:** Unknown -->", f"- **Training Dataset:** {info['data']} (see below)"
                )
            with open(readme, "w", encoding="utf8") as fh:
                fh.write(text.rstrip() + "\n\n" + card_section(info))

    def encode_text(
        self, texts: list[str], *, batch_size: int = 64, show_progress_bar: bool | None = None, **kwargs
    ) -> np.ndarray:
        """Embed texts (unit-length rows); keyword arguments go to :meth:`encode`."""
        from .._settings import settings

        show = settings.progress if show_progress_bar is None else show_progress_bar
        return self.encode(
            list(texts),
            task=TEXT,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=show and len(texts) > batch_size,
            **kwargs,
        ).astype(np.float32)


@torch.inference_mode()
def encode_omics(
    omics: OmicsEncoder, X: np.ndarray, *, batch_size: int = 1024, normalize: bool = True, progress: bool = False
) -> np.ndarray:
    """The omics tower's forward over a float32 matrix of initial embeddings, in batches (``omics`` in eval mode).

    What :meth:`MMContextEncoder.encode_cells` runs, and what each block of a dask array runs on a worker (only
    the omics tower travels there). Every batch is padded to a multiple of 64 rows: matrix kernels then treat each
    row alike, so a cell's embedding is bit-identical whatever the batch size or the other cells in its batch.
    """
    from tqdm.auto import tqdm

    X = np.asarray(X, dtype=np.float32)
    out = np.empty((X.shape[0], omics.output_dim), dtype=np.float32)
    starts = range(0, X.shape[0], batch_size)
    device = next(omics.parameters()).device
    for start in tqdm(starts, desc="Embedding cells", disable=not progress or len(starts) < 2):
        rows = X[start : start + batch_size]
        if len(rows) % 64 == 0:  # already a whole number of 64-row blocks
            padded = np.ascontiguousarray(rows)
        else:
            padded = np.zeros((-(-len(rows) // 64) * 64, X.shape[1]), dtype=np.float32)
            padded[: len(rows)] = rows
        emb = omics({"input_values": torch.from_numpy(padded).to(device)})["sentence_embedding"][: len(rows)]
        if normalize:
            emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        out[start : start + len(rows)] = emb.float().cpu().numpy()
    return out


class UntrustedModelError(ValueError):
    """A model folder names a module class outside sentence-transformers and mmcontext, and code was not trusted."""


def own_module_classes() -> dict[str, type]:
    """``modules.json`` types that resolve to mmcontext's installed classes.

    Current and earlier import paths, and the name a saved model gives them through its loader file (never run).
    """
    from ._loader_file import LOADER_MODULE

    classes = {}
    for cls in (OmicsEncoder,):
        for module in (cls.__module__, "mmcontext.models._omics", "mmcontext.models", LOADER_MODULE):
            classes[f"{module}.{cls.__qualname__}"] = cls
    return classes


def _transformer_blocks(encoder: torch.nn.Module) -> list[torch.nn.Module]:
    for name, module in encoder.named_modules():
        is_stack = isinstance(module, torch.nn.ModuleList)
        if is_stack and name.endswith(("encoder.layer", "layers", "encoder.layers", "h")):
            return list(module)
    return []


def _dim_fix(model: MMContextEncoder) -> str:
    space = model.omics_encoder.input_space
    where = f" (trained on {space})" if space else ""
    return f"Use the same initial embedding as the model{where}, e.g. `mmc.pp.prepare(adata, reference=model)`."


def _device(device: str | None) -> str | None:
    from .._settings import settings

    device = device or settings.device
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load(name_or_path: str, *, device: str | None = None, **kwargs) -> MMContextEncoder:
    """Load a saved mmcontext model from a local folder or a Hugging Face Hub repository.

    Parameters
    ----------
    name_or_path
        A folder written by ``model.save_pretrained`` or a Hub repository id. A name that looks like a path (a
        separator, a leading ``.`` or ``~``, or close to an existing folder's name), and any name not in the local
        Hub cache while the Hub is offline (``HF_HUB_OFFLINE``) or unreachable, raises
        :class:`~mmcontext.models.ModelNotFoundError` at once, naming the nearest existing folder; nothing is
        downloaded or retried.
    device
        Torch device; default from :attr:`mmcontext.settings.device`.
    **kwargs
        Passed to :class:`~sentence_transformers.SentenceTransformer` (``revision``, ``token``,
        ``cache_folder``, ``local_files_only``, ...).

    Examples
    --------
    >>> model = mmc.models.load("my_model")  # doctest: +SKIP

    """
    import json

    from .._io import recover_dir
    from .._settings import hf_progress
    from .._validation import check_model_folder
    from ._locate import locate_model

    name_or_path = os.fspath(name_or_path)
    recover_dir(name_or_path)  # a save killed between its two renames left the previous version aside
    if os.path.isdir(name_or_path):
        check_model_folder(name_or_path)  # missing / corrupted files: a clear error naming the file
    elif os.path.exists(name_or_path):
        raise FileNotFoundError(f"{name_or_path!r} is a file, not a model folder; pass the folder `save_model` wrote.")
    else:
        locate_model(name_or_path)  # a mistyped folder, or the Hub offline: fail now, not after a minute of retries
    try:
        with hf_progress():
            model = MMContextEncoder(name_or_path, device=_device(device), **kwargs)
    except (OSError, RuntimeError, KeyError, json.JSONDecodeError) as err:
        if not os.path.isdir(name_or_path):
            raise
        raise ValueError(
            f"Could not load the model in {name_or_path!r}: {err}. The folder may be corrupted; "
            "save the model again or load an intact copy."
        ) from err
    if not isinstance(model[0], Router) or OMICS not in model[0].sub_modules:
        raise ValueError(
            f"{name_or_path!r} is a sentence-transformers model without an omics route; not an mmcontext model."
        )
    _model_attrs.set_source(model, os.path.abspath(name_or_path) if os.path.isdir(name_or_path) else name_or_path)
    return model

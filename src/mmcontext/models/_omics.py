"""The omics tower: a sentence-transformers input module from initial embeddings to the joint space."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers.sentence_transformer.modules import InputModule

from ._layers import fit_standardiser, mlp, register_standardiser, standardise
from ._persist import read_module, write_module
from ._processor import MMContextProcessor

#: File in the omics module folder holding the input space arrays (gene names, PCA loadings and mean).
INPUT_SPACE_FILE = "input_space.npz"


class OmicsEncoder(InputModule):
    """Adapter MLP from a cell's initial embedding to the joint embedding space.

    Inputs are standardised with a per-feature mean and scale fitted on the training cells
    (:meth:`fit_scaler`, saved with the weights), then passed through ``n_layers`` linear layers
    with GELU and dropout between them. Cell references are resolved to vectors by
    :attr:`processor` (an :class:`~mmcontext.models.MMContextProcessor`).

    Parameters
    ----------
    input_dim
        Length of the initial embedding vectors.
    output_dim
        Dimension of the joint space (the text tower's output dimension).
    hidden_dim
        Width of the hidden layers.
    n_layers
        Number of linear layers (1 = a linear projection).
    dropout
        Dropout probability between layers during training.
    input_space
        JSON-serialisable description of the initial embedding the model was trained on
        (e.g. ``{"method": "pca", "obsm_key": "X_pca"}``), checked when new data is embedded.
    stores
        File-backed embedding stores the processor re-opens on first use, by name:
        ``{"pbmc": {"source": path or URL, "sha256": hash}}`` (saved with the model).
    calibration
        How cell-text scores turn into label probabilities, fitted on validation cells by
        :func:`mmcontext.tl.train` (see :attr:`MMContextEncoder.calibration`); saved with the model.

    """

    config_keys: typing.ClassVar[list[str]] = [
        "input_dim",
        "output_dim",
        "hidden_dim",
        "n_layers",
        "dropout",
        "input_space",
        "stores",
        "calibration",
    ]
    save_in_root = False

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_dim: int = 512,
        n_layers: int = 2,
        dropout: float = 0.1,
        input_space: dict[str, Any] | None = None,
        stores: dict[str, dict[str, str]] | None = None,
        calibration: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if input_dim < 1 or output_dim < 1 or n_layers < 1:
            raise ValueError(
                f"input_dim, output_dim and n_layers must be >= 1, got {input_dim}, {output_dim}, {n_layers}."
            )
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.hidden_dim = int(hidden_dim)
        self.n_layers = int(n_layers)
        self.dropout = float(dropout)
        self.input_space = dict(input_space or {})
        self.calibration = dict(calibration or {})
        register_standardiser(self, self.input_dim)
        self.net = mlp([self.input_dim] + [self.hidden_dim] * (self.n_layers - 1) + [self.output_dim], self.dropout)
        self.processor = MMContextProcessor(sources=stores)
        #: Arrays that rebuild the initial embedding from expression by gene name (see :meth:`set_input_arrays`).
        self.input_arrays: dict[str, np.ndarray] = {}

    def set_input_arrays(
        self, *, genes: Sequence[str], loadings: np.ndarray | None = None, mean: np.ndarray | None = None
    ) -> None:
        """Store how the initial embedding is computed from expression, so new data can be projected by gene name.

        Parameters
        ----------
        genes
            Gene names: the panel (one per input feature), or the genes the PCA was fitted on.
        loadings
            PCA loadings, genes x ``input_dim`` (``None`` for a gene panel).
        mean
            Per-gene mean subtracted before the PCA projection.

        """
        genes = np.asarray([str(g) for g in genes], dtype=str)
        n_feat = len(genes) if loadings is None else np.asarray(loadings).shape[1]
        if n_feat != self.input_dim:
            raise ValueError(f"The input space has {n_feat} features but the omics tower reads {self.input_dim}.")
        arrays = {"genes": genes}
        if loadings is not None:
            loadings = np.asarray(loadings, dtype=np.float32)
            mean = np.zeros(len(genes), np.float32) if mean is None else np.asarray(mean, dtype=np.float32)
            if loadings.shape[0] != len(genes) or mean.shape != (len(genes),):
                raise ValueError(
                    f"PCA loadings {loadings.shape} and mean {mean.shape} do not match {len(genes)} genes."
                )
            arrays.update(loadings=loadings, mean=mean)
        self.input_arrays = arrays

    @property
    def stores(self) -> dict[str, dict[str, str]]:
        """Remembered file-backed stores (name -> source and sha256), saved in the module config."""
        return {k: dict(v) for k, v in self.processor.sources.items()}

    @property
    def modalities(self) -> list[str]:
        return ["omics"]

    def fit_scaler(self, X: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Set the input standardisation from the training matrix ``X`` (cells x ``input_dim``) or its ``rows``."""
        fit_standardiser(self, X, rows)

    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Resolve cell references or vectors to ``{"input_values": (n, input_dim) tensor}``."""
        return {"input_values": self.processor(inputs, self.input_dim)}

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        """Write ``sentence_embedding`` from ``input_values``."""
        x = features["input_values"].to(device=self.input_mean.device, dtype=self.input_mean.dtype)
        features["sentence_embedding"] = self.net(standardise(self, x))
        return features

    def get_embedding_dimension(self) -> int:
        return self.output_dim

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        write_module(self, output_path, safe_serialization=safe_serialization)
        if self.input_arrays:
            import os

            np.savez(os.path.join(output_path, INPUT_SPACE_FILE), **self.input_arrays)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs,
    ) -> OmicsEncoder:
        """Load the module (config and weights) from a local folder or a Hub repository."""
        hub = {
            "subfolder": subfolder,
            "token": token,
            "cache_folder": cache_folder,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        missing = f"No {cls.config_file_name} for the omics tower in {model_name_or_path!r}/{subfolder}."
        model = read_module(cls, model_name_or_path, missing=missing, **hub)
        path = cls.load_file_path(model_name_or_path, INPUT_SPACE_FILE, **hub)
        if path is not None:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            model.set_input_arrays(**arrays)
        return model

    def __repr__(self) -> str:
        return f"OmicsEncoder(input_dim={self.input_dim}, output_dim={self.output_dim}, n_layers={self.n_layers})"


# The class is saved by import path in router_config.json: keep that path public and stable.
OmicsEncoder.__module__ = "mmcontext.models"

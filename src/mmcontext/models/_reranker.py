"""CellTextReranker: a small cross-encoder over (cell, text) pairs that reranks the bi-encoder's top hits."""

from __future__ import annotations

import logging
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._layers import mlp, register_standardiser, standardise
from ._persist import SavedModule
from ._threads import torch_threads

logger = logging.getLogger("mmcontext")

CONFIG_NAME = "reranker_config.json"
WEIGHTS_NAME = "reranker.safetensors"


class CellTextReranker(SavedModule):
    """Cross-encoder: cell tokens and text tokens attend to each other; a head scores the match.

    The cell's initial embedding (standardised) is projected into ``n_cell_tokens`` tokens; the text
    enters as the token states of a frozen sentence-transformers model (last hidden layer), projected
    to the same width. A ``[CLS]`` token, the cell tokens and the text tokens go through a small
    transformer encoder; a linear head on ``[CLS]`` gives the match logit. Unlike the bi-encoder, each
    score needs one forward pass per (cell, text) pair, so it is used on the bi-encoder's top-k only
    (``rerank=`` of :func:`mmcontext.tl.query` and :func:`mmcontext.tl.annotate`).

    Parameters
    ----------
    input_dim
        Length of the cells' initial embedding vectors.
    text_model
        Sentence-transformers model for the text token states (default: the bundled all-MiniLM-L6-v2).
    n_cell_tokens
        Number of tokens a cell is split into.
    d_model, n_layers, n_heads, dropout
        Shape of the transformer.
    max_text_tokens
        Text token states kept per text (longer texts are truncated).
    input_space
        Description of the initial embedding (e.g. ``{"obsm_key": "X_mmc_init"}``), stored with the model.
    seed
        Seed for the initial weights.

    """

    config_keys: typing.ClassVar[list[str]] = [
        "input_dim",
        "text_model",
        "n_cell_tokens",
        "d_model",
        "n_layers",
        "n_heads",
        "dropout",
        "max_text_tokens",
        "text_dim",
        "input_space",
    ]
    config_file_name = CONFIG_NAME
    weights_file_name = WEIGHTS_NAME
    state_keys: typing.ClassVar[list[str]] = ["history", "train_seconds"]
    load_init: typing.ClassVar[dict[str, Any]] = {"seed": None}  # the saved weights replace the initial ones

    def __init__(
        self,
        input_dim: int,
        *,
        text_model: str | None = None,
        n_cell_tokens: int = 4,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        dropout: float = 0.1,
        max_text_tokens: int = 32,
        text_dim: int = 384,
        input_space: dict[str, Any] | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        if input_dim < 1 or n_cell_tokens < 1 or d_model % n_heads:
            raise ValueError(
                f"Need input_dim >= 1, n_cell_tokens >= 1 and d_model divisible by n_heads; got "
                f"{input_dim}, {n_cell_tokens}, {d_model}/{n_heads}."
            )
        if seed is not None:
            torch.manual_seed(seed)
        from ._text import DEFAULT_TEXT_MODEL

        self.input_dim = int(input_dim)
        self.text_model = text_model or DEFAULT_TEXT_MODEL
        self.n_cell_tokens = int(n_cell_tokens)
        self.d_model = int(d_model)
        self.n_layers = int(n_layers)
        self.n_heads = int(n_heads)
        self.dropout = float(dropout)
        self.max_text_tokens = int(max_text_tokens)
        self.text_dim = int(text_dim)
        self.input_space = dict(input_space or {})
        self.train_seconds = 0.0
        self.history: list[dict[str, float]] = []
        d = self.d_model
        register_standardiser(self, self.input_dim)
        self.cell_net = mlp([self.input_dim, 2 * d, self.n_cell_tokens * d], self.dropout)
        self.text_proj = nn.Linear(self.text_dim, d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.cell_pos = nn.Parameter(torch.randn(1, self.n_cell_tokens, d) * 0.02)
        self.text_pos = nn.Parameter(torch.randn(1, self.max_text_tokens, d) * 0.02)
        self.type_emb = nn.Parameter(torch.randn(2, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, self.n_heads, 4 * d, self.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, self.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
        self._text_cache: dict[str, torch.Tensor] = {}
        self.__dict__["_text_st"] = None  # the frozen text model, loaded lazily, never saved

    # -- text token states ---------------------------------------------------------------------
    def _text_encoder(self):
        if self.__dict__.get("_text_st") is None:
            from sentence_transformers import SentenceTransformer

            from ._text import resolve_text_model

            st = SentenceTransformer(resolve_text_model(self.text_model), device="cpu")
            st.eval()
            self.__dict__["_text_st"] = st
        return self.__dict__["_text_st"]

    def text_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded token states ``(n, L, text_dim)`` and a validity mask ``(n, L)`` for ``texts`` (cached)."""
        texts = [str(t) for t in texts]
        missing = [t for t in dict.fromkeys(texts) if t not in self._text_cache]
        if missing:
            states = self._text_encoder().encode(
                missing, output_value="token_embeddings", batch_size=64, show_progress_bar=False
            )
            for t, s in zip(missing, states, strict=True):
                if s.shape[-1] != self.text_dim:
                    raise ValueError(
                        f"The text model gives {s.shape[-1]}-d token states; the reranker expects {self.text_dim}."
                    )
                self._text_cache[t] = s[: self.max_text_tokens].detach().float().cpu()
        seqs = [self._text_cache[t] for t in texts]
        L = max(len(s) for s in seqs)
        out = torch.zeros(len(seqs), L, self.text_dim)
        mask = torch.zeros(len(seqs), L, dtype=torch.bool)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
            mask[i, : len(s)] = True
        return out, mask

    # -- model ---------------------------------------------------------------------------------
    def forward(self, cells: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Match logits ``(B,)`` for cells ``(B, input_dim)`` and text token states ``(B, L, text_dim)``."""
        B, L = tokens.shape[:2]
        d = self.d_model
        c = self.cell_net(standardise(self, cells)).view(B, self.n_cell_tokens, d)
        c = c + self.cell_pos + self.type_emb[0]
        t = self.text_proj(tokens) + self.text_pos[:, :L] + self.type_emb[1]
        seq = torch.cat([self.cls.expand(B, 1, d), c, t], dim=1)
        pad = torch.cat([torch.zeros(B, 1 + self.n_cell_tokens, dtype=torch.bool, device=mask.device), ~mask], dim=1)
        h = self.encoder(seq, src_key_padding_mask=pad)
        return self.head(h[:, 0]).squeeze(-1)

    def _check_cells(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.input_dim:
            space = f" (trained on {self.input_space})" if self.input_space else ""
            raise ValueError(
                f"Cell matrix has shape {X.shape}; the reranker expects (n_cells, {self.input_dim}){space}."
            )
        return X

    @torch.inference_mode()
    def score_pairs(
        self,
        X: np.ndarray,
        texts: Sequence[str],
        cell_idx: np.ndarray,
        text_idx: np.ndarray,
        *,
        batch_size: int = 512,
        num_threads: int | None = 1,
    ) -> np.ndarray:
        """Match logits for the pairs ``(X[cell_idx[i]], texts[text_idx[i]])``; higher = better match.

        ``num_threads`` torch threads are used (restored afterwards; ``None`` leaves torch's setting).
        """
        X = self._check_cells(X)
        cell_idx, text_idx = np.asarray(cell_idx, dtype=np.int64), np.asarray(text_idx, dtype=np.int64)
        tok, mask = self.text_tokens(texts)
        was = self.training
        self.eval()
        out = np.empty(len(cell_idx), dtype=np.float32)
        with torch_threads(num_threads):
            for s in range(0, len(cell_idx), batch_size):
                ci, ti = cell_idx[s : s + batch_size], torch.from_numpy(text_idx[s : s + batch_size])
                m = mask[ti]
                L = int(m.sum(1).max()) if len(m) else 1
                out[s : s + len(ci)] = self(torch.from_numpy(X[ci]), tok[ti, :L], m[:, :L]).float().numpy()
        self.train(was)
        return out

    def rerank(
        self, X: np.ndarray, texts: Sequence[str], scores: np.ndarray, *, top_k: int, axis: int, weight: float = 0.5
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reorder the bi-encoder's ``top_k`` hits by the cross-encoder.

        Parameters
        ----------
        X
            Initial embeddings of the cells (cells x :attr:`input_dim`).
        texts
            The texts (queries or label texts); ``scores`` has one column per text.
        scores
            Bi-encoder scores, cells x texts.
        top_k
            How many hits per text (``axis=0``: cells per query) or per cell (``axis=1``: labels per cell)
            are rescored.
        axis
            0 to rerank cells within each text's column (query), 1 to rerank texts within each cell's row
            (annotation).
        weight
            1 orders the top-k by the cross-encoder alone; between 0 and 1 it blends the standardised
            cross-encoder and bi-encoder scores.

        Returns
        -------
        ``(scores, probs)``: ``scores`` is a copy of the input in which each top-k set holds the same values,
        reassigned in the reranked order (so values stay comparable cosines and only the order within the
        top-k changes); ``probs`` holds the cross-encoder's match probability for the rescored pairs, NaN elsewhere.

        """
        scores = np.asarray(scores, dtype=np.float32)
        n_cells, n_texts = scores.shape
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 or 1, got {axis}.")
        if len(texts) != n_texts or len(X) != n_cells:
            raise ValueError(f"scores has shape {scores.shape} for {len(X)} cells and {len(texts)} texts.")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}.")
        S = scores if axis == 0 else scores.T  # groups are columns of S
        k = min(top_k, S.shape[0])
        top = np.argsort(-S, axis=0, kind="stable")[:k]  # (k, n_groups) indices along the reranked axis
        groups = np.broadcast_to(np.arange(S.shape[1]), top.shape)
        cell_idx, text_idx = (top, groups) if axis == 0 else (groups, top)
        logits = self.score_pairs(X, texts, cell_idx.ravel(), text_idx.ravel()).reshape(top.shape)
        bi = np.take_along_axis(S, top, axis=0)
        key = logits
        if weight < 1.0:
            z = lambda a: (a - a.mean(0)) / (a.std(0) + 1e-6)  # noqa: E731
            key = weight * z(logits) + (1 - weight) * z(bi)
        order = np.argsort(-key, axis=0, kind="stable")
        new = S.copy()
        np.put_along_axis(new, np.take_along_axis(top, order, axis=0), bi, axis=0)  # bi is sorted descending
        probs = np.full(S.shape, np.nan, dtype=np.float32)
        np.put_along_axis(probs, top, 1.0 / (1.0 + np.exp(-logits)), axis=0)
        return (new, probs) if axis == 0 else (new.T.copy(), probs.T.copy())

    # -- persistence (models/_persist.py) -------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``reranker_config.json`` and ``reranker.safetensors`` into the folder ``path`` (atomic)."""
        return super().save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "cpu") -> CellTextReranker:
        """Load a reranker written by :meth:`save` (the text model is loaded when first needed)."""
        return super().load(path, device=device)

    def __repr__(self) -> str:
        return (
            f"CellTextReranker(input_dim={self.input_dim}, n_cell_tokens={self.n_cell_tokens}, "
            f"d_model={self.d_model}, n_layers={self.n_layers}, text_model={self.text_model!r})"
        )


CellTextReranker.__module__ = "mmcontext.models"

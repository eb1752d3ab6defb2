"""One persistence path for mmcontext's torch modules: sentence-transformers' ``Module`` pattern.

A module lists its constructor arguments in ``config_keys``. :func:`write_module` saves them with
``Module.save_config`` and the weights with ``Module.save_torch_weights`` (safetensors); :func:`read_module`
reads them back with ``Module.load_config`` and ``Module.load_torch_weights``. The omics tower goes through the
two inside the encoder's folder (sentence-transformers calls its ``save`` / ``load``). The classifier head and the
reranker, saved on their own, derive from :class:`SavedModule`, which adds

- config and weights files named after the module (``config_file_name``, ``weights_file_name``), so a head and a
  reranker can share a folder;
- attributes that training sets after construction (``state_keys``: the history, ...), kept in the config file;
- an atomic ``save(path)`` and a ``load(path, device=...)`` of a local folder.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from sentence_transformers.base.modules import Module

M = TypeVar("M", bound=Module)

#: The weights file of ``Module.save_torch_weights``.
DEFAULT_WEIGHTS = "model.safetensors"


def write_module(module: Module, folder: str | os.PathLike, *, safe_serialization: bool = True) -> None:
    """Write ``module``'s config and weights into the existing folder ``folder``."""
    module.save_config(str(folder))
    module.save_torch_weights(str(folder), safe_serialization=safe_serialization)


def read_module(
    cls: type[M], path: str | os.PathLike, *, missing: str | None = None, init: dict[str, Any] | None = None, **hub
) -> M:
    """Build ``cls`` from the config at ``path`` and load its weights; ``hub`` are ``Module.load_config``'s options.

    ``init`` adds constructor arguments that are not saved; keys of ``cls.state_keys`` found in the config are set
    on the module after construction. Raises ``FileNotFoundError`` (message ``missing``) without a config.
    """
    config = cls.load_config(str(path), **hub)
    if not config:
        raise FileNotFoundError(missing or f"{str(path)!r} has no {cls.config_file_name}.")
    state = {k: config.pop(k) for k in getattr(cls, "state_keys", ()) if k in config}
    module = cls(**config, **(init or {}))
    cls.load_torch_weights(str(path), model=module, **hub)
    for key, value in state.items():
        setattr(module, key, value)
    return module


class SavedModule(Module):
    """A module saved on its own into a folder: ``save(path)`` and ``load(path)`` through :func:`write_module`.

    Subclasses set ``config_keys`` (constructor arguments), ``config_file_name``, ``weights_file_name`` and
    ``state_keys`` (attributes set by training, saved in the config file and restored after construction).
    """

    weights_file_name: typing.ClassVar[str] = DEFAULT_WEIGHTS
    state_keys: typing.ClassVar[list[str]] = []
    #: Constructor arguments when loading that are not saved (e.g. ``{"seed": None}``: no re-seeding).
    load_init: typing.ClassVar[dict[str, Any]] = {}

    def get_config_dict(self) -> dict[str, Any]:
        """What the config file holds: the constructor arguments (``config_keys``) and the training state."""
        return {key: getattr(self, key) for key in (*self.config_keys, *self.state_keys)}

    def save_torch_weights(self, output_path: str, safe_serialization: bool = True) -> None:
        """``Module.save_torch_weights`` under this module's ``weights_file_name`` (always safetensors)."""
        if self.weights_file_name == DEFAULT_WEIGHTS:
            return super().save_torch_weights(output_path, safe_serialization=True)
        from safetensors.torch import save_model

        save_model(self, os.path.join(output_path, self.weights_file_name))

    @classmethod
    def load_torch_weights(cls, model_name_or_path: str, subfolder: str = "", model: M | None = None, **hub):
        """``Module.load_torch_weights`` from this module's ``weights_file_name`` (every key must match)."""
        if cls.weights_file_name == DEFAULT_WEIGHTS:
            return super().load_torch_weights(model_name_or_path, subfolder=subfolder, model=model, **hub)
        from safetensors.torch import load_file, load_model

        path = cls.load_file_path(model_name_or_path, cls.weights_file_name, subfolder=subfolder, **hub)
        if path is None:
            raise FileNotFoundError(f"{str(model_name_or_path)!r} has no {cls.weights_file_name}.")
        if model is None:
            return load_file(path)
        load_model(model, path, strict=True)
        return model

    def save(self, path: str | os.PathLike, *args, **kwargs) -> Path:
        """Write the config and weights into the folder ``path`` (atomic; other files there are kept)."""
        from .._io import atomic_save_dir

        path = Path(path)
        with atomic_save_dir(path) as tmp:  # a kill mid-save leaves the previous version
            write_module(self, tmp)
        return path

    @classmethod
    def load(cls: type[M], path: str | os.PathLike, *, device: str = "cpu", **kwargs) -> M:
        """Load a module written by :meth:`save` from the local folder ``path`` onto ``device``."""
        path = Path(path)
        missing = f"{str(path)!r} has no {cls.config_file_name}; it is not a saved {cls.__name__}."
        if not (path / cls.config_file_name).is_file():
            raise FileNotFoundError(missing)
        module = read_module(cls, path, missing=missing, init=cls.load_init, local_files_only=True)
        return module.to(device).eval()

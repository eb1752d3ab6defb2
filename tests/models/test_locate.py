"""A mistyped model folder, or any name while the Hub is offline, fails at once: no network call, a useful message."""

from __future__ import annotations

import socket

import pytest

import mmcontext as mmc
from mmcontext.models import _locate
from mmcontext.models._locate import ModelNotFoundError


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything opens a socket or asks the Hub."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"network call made: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return calls


def test_mistyped_relative_folder_names_the_nearest_folder(tmp_path, monkeypatch, no_network):
    (tmp_path / "my_model").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as err:
        mmc.models.load("my_modle")
    msg = str(err.value)
    assert "'my_modle'" in msg and str(tmp_path / "my_modle") in msg
    assert str(tmp_path / "my_model") in msg  # the nearest existing folder, as a suggestion
    assert "Hugging Face Hub" in msg and "HF_HUB_OFFLINE" in msg
    assert isinstance(err.value, FileNotFoundError)
    assert no_network == []


@pytest.mark.parametrize("name", ["./models/m1", "~/nowhere_mmc_model", "runs/a/b/model", "out\\model"])
def test_path_like_names_never_reach_the_hub(tmp_path, monkeypatch, no_network, name):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_locate, "hub_offline", lambda: False)  # even with the Hub on
    with pytest.raises(ModelNotFoundError, match="looks like a path") as err:
        mmc.models.load(name)
    assert "nearest existing folder" in str(err.value)
    assert no_network == []


def test_any_name_while_offline_fails_without_a_network_call(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set") as err:
        mmc.models.load("someone/some-mmcontext-model")
    assert str(tmp_path) in str(err.value)
    assert no_network == []


def test_hub_unreachable_fails_after_one_probe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_locate, "hub_offline", lambda: False)
    probes = []

    def unreachable(address, timeout=None, *args, **kwargs):
        probes.append((address, timeout))
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(ModelNotFoundError, match="cannot be reached"):
        mmc.models.load("someone/some-mmcontext-model")
    assert len(probes) == 1 and probes[0][0][0] == "huggingface.co" and probes[0][1] <= 2


def test_cached_hub_model_is_not_refused_offline(monkeypatch):
    monkeypatch.setattr(_locate, "_cached_on_hub", lambda name: True)
    assert _locate.locate_model("someone/cached-model") == "someone/cached-model"

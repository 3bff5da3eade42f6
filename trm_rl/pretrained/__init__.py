"""Pretrained policies shipped with the package: ``trm_rl.load_agent("pretrained:<name>")``.

Each ``<name>/`` folder here holds ``config.json`` (the agent's settings, the ``"command"``
and ``"commit"`` that trained it, and its held-out result when measured) and ``policy.pt``
(its weights as a state dict, read with ``weights_only=True``). ``python -m
trm_rl.pretrained.package RUN_DIR NAME --commit SHA`` adds one from an agent directory.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
"""The folder searched for pretrained names (tests point it elsewhere)."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "policy.pt"


def available() -> list[str]:
    """The pretrained names, sorted."""
    return sorted(
        entry.name
        for entry in ROOT.iterdir()
        if entry.is_dir() and (entry / CONFIG_FILE).is_file() and (entry / WEIGHTS_FILE).is_file()
    )


def path(name: str) -> Path:
    """The folder of pretrained policy ``name``.

    Raises:
        ValueError: an unknown name; the message lists the available ones.
    """
    names = available()
    if name not in names:
        listed = ", ".join(names) if names else "none are installed"
        raise ValueError(f"unknown pretrained policy {name!r}; available: {listed}")
    return ROOT / name


__all__ = ["CONFIG_FILE", "ROOT", "WEIGHTS_FILE", "available", "path"]

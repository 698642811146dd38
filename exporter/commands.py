"""CLI commands of aksnap.exporter (registered by aksnap.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this layer's commands to the aksnap app."""

"""Exporter: reads an ArmoniK control plane over gRPC and writes a bundle.

Never imports duckdb, rustworkx or the analyzer. The public API is :func:`export`, :func:`update`
(``export --update``) and :func:`list_sessions` (``aksnap sessions --endpoint``); it is
loaded lazily so that ``aksnap --help`` does not pay for gRPC and ptars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["export", "update", "list_sessions", "ExportSummary", "ExportError", "SelectionError", "TlsFiles",
           "RetryPolicy", "ConnectionOptions", "resolve_connection"]

if TYPE_CHECKING:  # pragma: no cover
    from aksnap.exporter.api import ExportSummary, export
    from aksnap.exporter.incremental import update
    from aksnap.exporter.listing import list_sessions
    from aksnap.exporter.client import (ConnectionOptions, ExportError, RetryPolicy,
                                        SelectionError, TlsFiles, resolve_connection)


def __getattr__(name: str) -> Any:
    if name in ("export", "ExportSummary"):
        from aksnap.exporter import api

        return getattr(api, name)
    if name == "update":
        from aksnap.exporter import incremental

        return incremental.update
    if name == "list_sessions":
        from aksnap.exporter import listing

        return listing.list_sessions
    if name in ("ExportError", "SelectionError", "TlsFiles", "RetryPolicy", "ConnectionOptions",
                "resolve_connection"):
        from aksnap.exporter import client

        return getattr(client, name)
    raise AttributeError(f"module 'aksnap.exporter' has no attribute {name!r}")

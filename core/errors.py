"""The one error path: every mistake a user can see is an :class:`AksnapError`.

A lower layer raises it, or one of its subclasses (:class:`aksnap.bundle.BundleError`,
:class:`aksnap.analyzer.snapshot.AnalysisError`, :class:`aksnap.exporter.client.ExportError`,
:class:`aksnap.output.FormatError`, ...); the CLI entry (``aksnap.cli.AksnapGroup.main``, the
composition floor) catches it once, prints ``aksnap: error: <sentence>`` on stderr (control
characters escaped) and exits with its :attr:`~AksnapError.exit_code`. No module below the
composition floor prints an error or exits: a notebook calling the Python API gets the
exception, with the same sentence.
"""

from __future__ import annotations


class AksnapError(Exception):
    """A request aksnap cannot carry out; ``str(e)`` is one sentence a user can act on (what
    failed, the value, what to try).

    ``exit_code`` is the command's exit status: 2 (the default) for a mistake in what was asked
    (an option, a path, a bundle), 1 for a run that failed (a cluster that went away), 130 for
    an interruption. A subclass sets its own default; ``exit_code=`` overrides it per error.
    """

    exit_code: int = 2

    def __init__(self, *args: object, exit_code: int | None = None) -> None:
        super().__init__(*args)
        if exit_code is not None:
            self.exit_code = exit_code


class BundleError(AksnapError):
    """A bundle is missing, unreadable, hostile, of another format version, or fails its
    checksums; or one cannot be written. The message is one sentence a user can act on.
    (Importable from :mod:`aksnap.bundle`, its usual place.)"""


class OptionError(AksnapError):
    """An option's value, or a combination of options, the command refuses (before any work);
    the sentence names the option and what to give instead."""


class Interrupted(AksnapError):
    """Ctrl-C or SIGTERM stopped a command; the sentence says what was (or was not) written."""

    exit_code = 130


__all__ = ["AksnapError", "BundleError", "Interrupted", "OptionError"]

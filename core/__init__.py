"""armonik-snapshot: export ArmoniK sessions into versioned Parquet bundles, analyze them offline.

Subpackages: ``aksnap.exporter`` (gRPC -> bundle), ``aksnap.analyzer`` (bundle -> answers),
``aksnap.fixtures`` (the simulated ArmoniK control plane), ``aksnap.queries`` (SQL files).
This folder (``core/``) is the format floor: the bundle format (:mod:`aksnap.bundle_format`;
:mod:`aksnap.bundle` reads bundles and re-exports it), the writer, packed files, redaction,
errors (:mod:`aksnap.errors`) and output formatting. It imports no other floor; the CLI entry,
``aksnap demo`` and ``aksnap watch`` are the composition floor, :mod:`aksnap.cli` (``cli/``).
"""

__version__ = "0.1.0"

"""armonik-snapshot: export ArmoniK sessions into versioned Parquet bundles, analyze them offline.

Subpackages: ``aksnap.exporter`` (gRPC -> bundle), ``aksnap.analyzer`` (bundle -> answers),
``aksnap.fixtures`` (the simulated ArmoniK control plane), ``aksnap.queries`` (SQL files).
The bundle format lives in :mod:`aksnap.bundle`.
"""

__version__ = "0.1.0"

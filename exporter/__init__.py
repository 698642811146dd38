"""Exporter: reads an ArmoniK control plane over gRPC and writes a bundle. Never imports duckdb, rustworkx or the analyzer."""

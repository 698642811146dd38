"""Analyzer: reads a bundle offline (DuckDB, rustworkx). Never imports grpc or armonik."""

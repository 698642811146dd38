"""Shared pytest configuration. Layer-specific fixtures live in the test modules that use them."""

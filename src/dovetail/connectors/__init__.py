"""Connectors: one package per technology (file, http, sql, ...), files named by role."""

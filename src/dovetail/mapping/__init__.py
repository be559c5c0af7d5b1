"""Mapping: JSONata expressions and mapping sheets, both compiled once per flow start."""

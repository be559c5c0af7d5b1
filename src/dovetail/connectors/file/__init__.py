"""The ``file`` connector: read records from files in a folder, write messages to files.

``source.py`` streams CSV, JSON, JSON Lines, XML and fixed-width files with per-file
checkpoints; ``sink.py`` appends to one file or writes one file per message atomically.
"""

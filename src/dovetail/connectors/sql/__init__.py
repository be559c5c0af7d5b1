"""SQL databases (SQLite, PostgreSQL) through SQLAlchemy's asyncio Core.

``sink.py`` is the ``sql`` sink; ``engine.py`` turns URLs into engines and driver exceptions
into our errors; ``rows.py`` turns payloads into typed rows; ``writer.py`` writes them (bulk,
or row by row to isolate bad rows); ``copy.py`` is PostgreSQL's ``COPY`` fast path.
SQLAlchemy is imported only when a component is opened, not when the registry loads.
"""

"""SQL databases (SQLite, PostgreSQL).

``sink.py`` is the ``sql`` sink; ``engine.py`` turns URLs into engines and driver exceptions
into our errors; ``rows.py`` turns payloads into typed rows; ``writer.py`` writes them through
SQLAlchemy's asyncio Core (bulk, or row by row to isolate bad rows), with ``copy.py`` as
PostgreSQL's ``COPY`` fast path. SQLite is written by ``sqlite.py`` instead: one thread owning a
stdlib ``sqlite3`` connection, each batch one call into it.
SQLAlchemy is imported only when a component is opened, not when the registry loads.
"""

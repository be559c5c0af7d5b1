"""Reconcile two CSV files in an embedded analytical engine (DuckDB) that spills to disk.

DuckDB reads both files itself (strict CSV, every value as text), groups each side by key
and joins the two with a memory limit and a spill folder, so a million rows per side take
seconds at bounded memory and ten million spill instead of growing. Counts of missing,
extra, duplicate and matched keys come from the join. Field rules are not re-expressed in
SQL: a matched pair (key unique on both sides) whose raw values are identical is equal under
every rule (unless a rule has a ``map``), ASCII text under a rule of only ``strip``, ``lower``
and ``upper`` and plain numbers under a rule of only ``tolerance`` are compared in SQL (where
it gives Python's answer), and the other pairs whose raw values differ are fetched and judged
by the same ``FieldComparer`` as the sort-merge, so every rule answers the same on both paths.

The engine takes a run only when both sides are UTF-8 CSV files with a plain header and the
key fields have no rules; a file it cannot parse strictly (a malformed row, a line over the
record limit) is handed back, and the sort-merge reads it and reports each rejected row.
Without the ``reconcile`` extra (``duckdb`` not installed) the sort-merge does every run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dovetail.reconcile.compare import Merger
from dovetail.reconcile.config import ReconcileConfig
from dovetail.reconcile.csv_layout import CsvSide, csv_side
from dovetail.reconcile.fields import SeenFields
from dovetail.reconcile.report import ReconcileReport, masked
from dovetail.reconcile.staging import Side
from dovetail.safety.limits import DEFAULT_MAX_RECORD_BYTES

if TYPE_CHECKING:
    import duckdb

MEMORY_LIMIT = "112MB"
"""DuckDB's working memory; beyond it joins, groupings and sorts spill to the work folder."""
PARTITION_BYTES = 128 * 1024 * 1024
"""Both files' size per partition of the record join (more partitions if it runs short)."""
MAX_PARTITIONS = 4096
FETCH_ROWS = 5000
_PY_WHITESPACE = " || ".join(f"chr({code})" for code in range(128) if chr(code).isspace())
"""The ASCII characters ``str.strip`` removes, as a SQL string."""
_ASCII_SQL = {
    "strip": "trim({}, " + _PY_WHITESPACE + ")",
    "lower": "lower({})",
    "upper": "upper({})",
}
"""Normalisations SQL applies exactly as Python's ``str`` methods do, on ASCII text."""


def engine_installed() -> bool:
    """True when DuckDB (the ``reconcile`` extra) can be imported."""
    return importlib.util.find_spec("duckdb") is not None


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_engine(config: ReconcileConfig, root: Path, folder: Path) -> ColumnarReconciler | None:
    """An engine for this reconciliation, or None when the sort-merge must run it."""
    if not engine_installed() or any(name in config.fields for name in config.key):
        return None
    rename = {
        rule.target_field: name
        for name, rule in config.fields.items()
        if rule.target_field is not None and rule.target_field != name
    }
    source = csv_side(config.source, root, {})
    target = csv_side(config.target, root, rename)
    if source is None or target is None:
        return None
    if not all(name in source.names and name in target.names for name in config.key):
        return None
    return ColumnarReconciler(config, source, target, folder)


_PLAIN_NUMBER = "'^-?[0-9]{1,18}([.][0-9]{1,18})?$'"
"""Numbers SQL reads exactly as DECIMAL(38, 18): no sign but minus, no exponent, 18+18 digits."""


def _within_tolerance(left: str, right: str, tolerance: float | None) -> str | None:
    """SQL true only when both texts are plain numbers within ``tolerance`` of each other.

    Python's ``to_decimal`` reads every such text as the same number, so SQL's answer is
    Python's; any other text (signs, exponents, spaces, long numbers) makes it false, and the
    pair goes to Python. None when the tolerance itself is not exact in DECIMAL(38, 18).
    """
    if tolerance is None:
        return None
    limit = Decimal(repr(tolerance))
    exponent = limit.as_tuple().exponent
    if not isinstance(exponent, int) or exponent < -18 or limit >= 10**19:
        return None
    exact = "DECIMAL(38, 18)"
    numbers = " AND ".join(f"regexp_full_match({v}, {_PLAIN_NUMBER})" for v in (left, right))
    gap = f"abs(TRY_CAST({left} AS {exact}) - TRY_CAST({right} AS {exact}))"
    return f"coalesce({numbers} AND {gap} <= CAST('{format(limit, 'f')}' AS {exact}), false)"


class ColumnarReconciler:
    """Stages both CSV files in DuckDB, then fills a report from joins of keys and records.

    Each side becomes a table of its records (key columns ``k0``.., compared fields ``fN`` by
    header position); one grouping of both keeps the keys that are not held once on each side
    (``unpaired``, with the record counts ``sn`` and ``tn``), and one join finds the pairs whose
    raw values differ.
    """

    def __init__(
        self, config: ReconcileConfig, source: CsvSide, target: CsvSide, folder: Path
    ) -> None:
        self._config = config
        self._sides: dict[Side, CsvSide] = {"source": source, "target": target}
        self._folder = folder
        self._db: duckdb.DuckDBPyConnection | None = None
        excluded = {*config.key, *config.ignore}
        self._fields: dict[Side, list[str]] = {}
        for role, side in self._sides.items():
            if config.compare == "listed":
                self._fields[role] = [name for name in config.fields if name not in excluded]
            else:
                self._fields[role] = [name for name in side.names if name not in excluded]
        self._names = list(self._fields["source"])
        self._names.extend(n for n in self._fields["target"] if n not in self._fields["source"])
        self._width = len(config.key)
        self._on = " AND ".join(f"s.k{i} = t.k{i}" for i in range(self._width))

    def _value(self, role: Side, name: str, alias: str) -> str:
        """The grouped column of field ``name`` as ``alias.fN``, or NULL when ``role`` lacks it."""
        names = self._sides[role].names
        return f"{alias}.f{names.index(name)}" if name in names else "NULL"

    def _values(self, role: Side, alias: str) -> list[str]:
        return [self._value(role, name, alias) for name in self._fields[role]]

    def _keys(self, alias: str) -> list[str]:
        return [f"{alias}.k{i}" for i in range(self._width)]

    def _key_order(self, alias: str) -> str:
        """The key's bytes as the sort-merge orders them: a JSON array of text."""
        return f"to_json(list_value({', '.join(self._keys(alias))}))"

    def _scan(self, role: Side) -> str:
        """``read_csv`` of ``role``: strict, every column text, named ``c0``, ``c1``..."""
        side = self._sides[role]
        columns = ", ".join(f"{_sql_name(f'c{i}')}: 'VARCHAR'" for i in range(len(side.header)))
        return (
            f"read_csv({_sql_text(str(side.path))}, delim = {_sql_text(side.delimiter)},"
            " quote = '\"', escape = '\"', header = true, auto_detect = false,"
            " strict_mode = true, null_padding = false,"
            f" max_line_size = {DEFAULT_MAX_RECORD_BYTES}, columns = {{{columns}}})"
        )

    def _projection(self, role: Side) -> tuple[list[str], list[str]]:
        """``role``'s key and compared-field columns of a scan, as text ('' for empty)."""
        names = self._sides[role].names
        keys = [f"coalesce(c{names.index(name)}, '')" for name in self._config.key]
        fields = [f"coalesce(c{names.index(n)}, '')" for n in self._fields[role] if n in names]
        return keys, fields

    def stage(self, report: ReconcileReport, seen: SeenFields) -> bool:
        """Read and group both files; False (nothing reported) when one does not parse strictly."""
        import duckdb

        db = duckdb.connect(":memory:")
        self._db = db
        spill = self._folder / "spill"
        for setting in (
            f"memory_limit = {_sql_text(MEMORY_LIMIT)}",
            f"temp_directory = {_sql_text(str(spill))}",
            "threads = 2",
            "preserve_insertion_order = false",
            "enable_progress_bar = false",  # it would write to stdout, mid-report
        ):
            db.execute(f"SET {setting}")
        roles: tuple[Side, Side] = ("source", "target")
        try:
            for role in roles:
                self._group(db, role)
        except duckdb.InvalidInputException:
            return False
        for role in roles:
            row = db.execute(f"SELECT count(*) FROM {role}").fetchone()
            count = int(row[0]) if row else 0
            header = self._sides[role].header if count else []
            if role == "source":
                report.source_records = seen.source_records = count
                seen.source.update(header)
            else:
                report.target_records = seen.target_records = count
                seen.target.update(header)
        return True

    def _group(self, db: duckdb.DuckDBPyConnection, role: Side) -> None:
        """Stage ``role``'s keys and compared fields as a table named ``role``."""
        names = self._sides[role].names
        keys, _ = self._projection(role)
        columns = [f"{k} AS k{i}" for i, k in enumerate(keys)]
        columns.extend(
            f"coalesce(c{names.index(n)}, '') AS f{names.index(n)}"
            for n in self._fields[role]
            if n in names
        )
        db.execute(f"CREATE TABLE {role} AS SELECT {', '.join(columns)} FROM {self._scan(role)}")

    def merge(self, report: ReconcileReport) -> None:
        """Fill ``report`` with the counts and examples (after ``stage`` returned True)."""
        db = self._db
        assert db is not None, "stage() first"
        # keys that are not one record on each side: few, kept apart for counts and examples
        keys = ", ".join(f"k{i}" for i in range(self._width))
        db.execute(
            f"CREATE TABLE unpaired AS SELECT {keys}, count(*) FILTER (WHERE side = 0) AS sn,"
            " count(*) FILTER (WHERE side = 1) AS tn"
            f" FROM (SELECT {keys}, 0 AS side FROM source UNION ALL"
            f" SELECT {keys}, 1 AS side FROM target) GROUP BY {keys}"
            " HAVING sn <> 1 OR tn <> 1"
        )
        row = db.execute(
            "SELECT count(*) FILTER (WHERE tn = 0), count(*) FILTER (WHERE sn = 0),"
            " count(*) FILTER (WHERE sn > 1), count(*) FILTER (WHERE tn > 1),"
            " count(*) FILTER (WHERE sn > 0 AND tn > 0), coalesce(sum(sn), 0) FROM unpaired"
        ).fetchone()
        assert row is not None
        missing, extra, dup_source, dup_target, repeated, unpaired_records = (int(v) for v in row)
        # a key held once on each side has exactly one of the source's records
        pairs_unique = report.source_records - unpaired_records
        matched = pairs_unique + repeated
        report.missing_in_target, report.extra_in_target, report.matched = missing, extra, matched
        report.duplicate_source_keys, report.duplicate_target_keys = dup_source, dup_target
        if report.example_limit:
            self._duplicates(db, report, "source", dup_source)
            self._duplicates(db, report, "target", dup_target)
            self._one_sided(db, report, "source", "missing", missing)
            self._one_sided(db, report, "target", "extra", extra)
        merger = Merger(self._config, report)
        judged = 0
        for key, left, right in self._candidates(db):
            judged += 1
            merger.compare_fields(key, left, right)
        report.equal += pairs_unique - judged

    def _display(self, values: tuple[Any, ...]) -> Any:
        return values[0] if len(values) == 1 else dict(zip(self._config.key, values, strict=True))

    def _duplicates(
        self, db: duckdb.DuckDBPyConnection, report: ReconcileReport, role: Side, count: int
    ) -> None:
        if not count:
            return
        n = "sn" if role == "source" else "tn"
        rows = db.execute(
            f"SELECT {', '.join(self._keys('g'))}, {n} FROM unpaired g WHERE {n} > 1"
            f" ORDER BY {self._key_order('g')} LIMIT {report.example_limit}"
        ).fetchall()
        for row in rows:
            report.example(
                f"duplicate_{role}",
                {"key": self._display(row[: self._width]), "records": row[self._width]},
            )

    def _one_sided(
        self,
        db: duckdb.DuckDBPyConnection,
        report: ReconcileReport,
        role: Side,
        category: str,
        count: int,
    ) -> None:
        """Examples of keys only ``role`` holds, with the fields of their first record."""
        if not count:
            return
        mine, other = ("s", "t") if role == "source" else ("t", "s")
        width = self._width
        alone = (
            f"SELECT *, {mine}n AS n FROM unpaired u WHERE {other}n = 0"
            f" ORDER BY {self._key_order('u')} LIMIT {report.example_limit}"
        )
        on = " AND ".join(f"g.k{i} = r.k{i}" for i in range(width))
        values = ", ".join([*self._values(role, "r"), "0"])
        rows = db.execute(
            f"SELECT {', '.join(self._keys('g'))}, g.n, {values}"
            f" FROM ({alone}) g JOIN {role} r ON {on} ORDER BY {self._key_order('g')}"
        ).fetchall()
        fields = self._fields[role]
        found: dict[tuple[Any, ...], list[Any]] = {}
        for row in rows:
            found.setdefault(row[:width], list(row[width + 1 : -1]))
        repeated = sorted({row[:width] for row in rows if row[width] > 1})
        if repeated:
            found.update(self._first_records(db, role, repeated))
        mask = set(self._config.mask)
        for key, record in found.items():
            shown = dict(zip(fields, record, strict=True))
            report.example(category, {"key": self._display(key), "fields": masked(shown, mask)})

    def _first_records(
        self, db: duckdb.DuckDBPyConnection, role: Side, keys: list[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], list[Any]]:
        """The fields of the first record (in file order) of each of ``keys``."""
        names = self._sides[role].names
        key_columns, _ = self._projection(role)
        values = [
            f"coalesce(c{names.index(n)}, '')" if n in names else "NULL" for n in self._fields[role]
        ]
        wanted = ", ".join(
            "list_value(" + ", ".join(_sql_text(str(v)) for v in key) + ")" for key in keys
        )
        db.execute("SET preserve_insertion_order = true")  # rows in file order
        cursor = db.execute(
            f"SELECT {', '.join([*key_columns, *values, '0'])} FROM {self._scan(role)}"
            f" WHERE list_value({', '.join(key_columns)}) IN ({wanted})"
        )
        rows = cursor.fetchall()
        db.execute("SET preserve_insertion_order = false")
        first: dict[tuple[Any, ...], list[Any]] = {}
        for row in rows:
            first.setdefault(row[: self._width], list(row[self._width : -1]))
        return first

    def _differs(self, name: str) -> str:
        """SQL true when the pair's values of ``name`` may differ under its rule.

        Raw text that differs is a candidate, except for a rule made only of ``strip``,
        ``lower`` and ``upper`` when both values are ASCII: there SQL applies the same steps
        with the same result as Python, and equal normalised text is equal whether or not a
        blank counts as null. Everything else is left to Python.
        """
        left, right = self._value("source", name, "s"), self._value("target", name, "t")
        differs = f"{left} IS DISTINCT FROM {right}"
        rule = self._config.rule(name)
        within = _within_tolerance(left, right, rule.tolerance)
        if within and not rule.normalize and not rule.map and "NULL" not in (left, right):
            return f"({differs} AND NOT {within})"
        simple = rule.tolerance is None and not rule.map and set(rule.normalize) <= set(_ASCII_SQL)
        if not rule.normalize or not simple or "NULL" in (left, right):
            return differs
        a, b = left, right
        for step in rule.normalize:
            a, b = _ASCII_SQL[step].format(a), _ASCII_SQL[step].format(b)
        ascii_only = f"strlen({left}) = length({left}) AND strlen({right}) = length({right})"
        return f"({differs} AND NOT ({ascii_only} AND {a} = {b}))"

    def _candidates(
        self, db: duckdb.DuckDBPyConnection
    ) -> Iterator[tuple[Any, dict[str, Any], dict[str, Any]]]:
        """Matched pairs, key unique on both sides, whose raw values may differ, in key order."""
        left, right = self._values("source", "s"), self._values("target", "t")
        identical_is_equal = not any(rule.map for rule in self._config.fields.values())
        differ = " OR ".join(self._differs(name) for name in self._names)
        if identical_is_equal and not differ:
            return
        where = f"({differ})" if identical_is_equal else "true"
        values = [f"{v} AS v{i}" for i, v in enumerate([*left, *right, "0"])]
        self._store_pairs(db, f"{', '.join([*self._keys('s'), *values])}", where)
        repeated = " AND ".join(f"u.k{i} = p.k{i}" for i in range(self._width))
        cursor = db.execute(
            f"SELECT p.* FROM pairs p ANTI JOIN unpaired u ON {repeated}"
            f" ORDER BY {self._key_order('p')}"
        )
        width = self._width
        split = width + len(left)
        while True:
            chunk = cursor.fetchmany(FETCH_ROWS)
            if not chunk:
                return
            for row in chunk:
                yield (
                    self._display(row[:width]),
                    dict(zip(self._fields["source"], row[width:split], strict=True)),
                    dict(zip(self._fields["target"], row[split:-1], strict=True)),
                )

    def _store_pairs(self, db: duckdb.DuckDBPyConnection, columns: str, where: str) -> None:
        """Table ``pairs``: ``columns`` of the records joined by key that satisfy ``where``.

        The join holds one side's records in a hash table; when it does not fit the memory
        limit it is done again in more partitions by key hash (one join per partition, each
        reading both tables), so memory stays bounded however many records there are.
        """
        import duckdb

        size = sum(side.path.stat().st_size for side in self._sides.values())
        parts = max(1, -(-size // PARTITION_BYTES))
        join = f"SELECT {columns} FROM source s JOIN target t ON {self._on} WHERE {where}"
        while True:
            db.execute(f"CREATE OR REPLACE TABLE pairs AS {join} AND false")
            try:
                for part in range(parts):
                    hashed = ""
                    if parts > 1:
                        hashed = " AND ".join(
                            f"hash({', '.join(self._keys(alias))}) % {parts} = {part}"
                            for alias in ("s", "t")
                        )
                        hashed = f" AND {hashed}"
                    db.execute(f"INSERT INTO pairs {join}{hashed}")
                return
            except duckdb.OutOfMemoryException:
                if parts >= MAX_PARTITIONS:
                    raise
                parts *= 4

    def close(self) -> None:
        """Close the engine's database (the caller removes its folder)."""
        if self._db is not None:
            self._db.close()
            self._db = None

"""Configuration of the ``sql`` source, checked when the flow is loaded (``dovetail lint``)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dovetail.config.types import Duration
from dovetail.connectors.sql.urls import check_url
from dovetail.plugins.spec import ComponentConfig

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_SELECT = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{what} must be a plain column name (letters, digits, _), found {value!r}"
        )
    return value


class WatermarkConfig(ComponentConfig):
    column: str
    """The column whose value grows with every new or changed row: an auto-increment id, a
    sequence, or an `updated_at` timestamp the database sets. Rows are read in its order;
    rows where it is null are never read."""

    key: str | None = None
    """A unique, non-null column (the primary key) that breaks ties between rows with the same
    watermark value: rows are read in (`column`, `key`) order and both are kept in the
    checkpoint, so a batch may end in the middle of equal values without skipping or repeating
    a row. Without it, all rows sharing a watermark value are always read together."""

    initial: int | Decimal | datetime | date | str | None = None
    """Where the first run starts: rows whose watermark is at or after this value
    (`2024-01-01T00:00:00`, `100000`). Without it the first run reads every row. Ignored
    once a checkpoint exists."""

    @field_validator("column", "key")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "a watermark column")

    @model_validator(mode="after")
    def _check(self) -> WatermarkConfig:
        if self.key is not None and self.key == self.column:
            raise ValueError("`key` must be another column than the watermark `column`")
        return self


class SqlSourceConfig(ComponentConfig):
    url: str
    """Database URL: `sqlite:///data/shop.db` (relative to the project directory),
    `postgresql://user@host:5432/db` or `mariadb://user@host:3306/db` (also `mysql://`). Put
    passwords in a secret: `postgresql://app:${secret:DB_PASSWORD}@db/erp`."""

    table: str | None = None
    """The table to read, optionally with its schema (`sales.orders`). Give `table` or
    `query`."""

    columns: list[str] = Field(default_factory=list)
    """With `table`: the columns to read (they become the message's fields); default all.
    Must include the watermark column (and its key)."""

    query: str | None = None
    """A `SELECT` (or `WITH ... SELECT`) whose result columns become the message's fields; it
    must return the watermark column. It is wrapped as
    `SELECT * FROM (<query>) WHERE <watermark> > ... ORDER BY <watermark> LIMIT <batch_size>`,
    so do not end it with `ORDER BY` or `LIMIT`."""

    watermark: WatermarkConfig
    """The column that tells new rows from rows already read, and where to start."""

    batch_size: int | None = Field(default=None, ge=1, le=100_000)
    """Rows per query and per batch; default the flow's `runtime.batch_size`."""

    interval: Duration = Field(default=10.0, gt=0)
    """When running continuously, the pause before looking for new rows once all rows are
    read. With `dovetail run --once` the source reads until no new row is left, then stops."""

    decimals: Literal["string", "number"] = "string"
    """How `numeric`/`decimal` values are given: `string` keeps every digit (`"19.90"`),
    `number` makes them JSON numbers (floats, which may round)."""

    timeout: Duration = Field(default=30.0, gt=0)
    """How long to wait for a connection or a lock before a read fails (and is tried again)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        check_url(value)
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str | None) -> str | None:
        if value is not None and not _TABLE.match(value):
            raise ValueError(f"table must be `name` or `schema.name`, found {value!r}")
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_name(name, "a column")
        if len(set(value)) != len(value):
            raise ValueError("`columns` lists a column twice")
        return value

    @field_validator("query")
    @classmethod
    def _check_query(cls, value: str | None) -> str | None:
        if value is None:
            return None
        query = value.strip().rstrip(";").rstrip()
        if not _SELECT.match(query):
            raise ValueError("query must be one SELECT (or WITH ... SELECT) statement")
        return query

    @model_validator(mode="after")
    def _check(self) -> SqlSourceConfig:
        if (self.table is None) == (self.query is None):
            raise ValueError("give either `table` or `query` (one of them)")
        if self.columns and self.table is None:
            raise ValueError("`columns` goes with `table`; select the columns in `query`")
        if self.columns:
            wanted = [self.watermark.column, *([self.watermark.key] if self.watermark.key else [])]
            missing = [name for name in wanted if name not in self.columns]
            if missing:
                raise ValueError(
                    f"`columns` must include the watermark column(s) {', '.join(missing)}"
                )
        return self

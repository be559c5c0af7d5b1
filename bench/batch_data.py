"""Test data for the batch benchmark: web-shop orders as CSV, their schema and their mapping.

Both sides of the benchmark use what is here: the Dovetail flow (as project files: the JSON
Schema, the mapping sheet and the target table's DDL) and the plain-Python baseline
(``baseline.py``), which validates against the same schema and hand-codes the same mapping.

``write_orders_csv(path, rows, seed)`` writes realistic orders, deterministic for a seed:
mixed-case and padded e-mails, lower-case country codes, status codes, amounts with two
decimals, currencies by country (sometimes empty: the mapping defaults it), optional coupons.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ORDER_FIELDS: tuple[str, ...] = (
    "order_id",
    "created_at",
    "customer_email",
    "first_name",
    "last_name",
    "phone",
    "street",
    "postal_code",
    "city",
    "country",
    "status",
    "items",
    "total",
    "currency",
    "payment",
    "channel",
    "coupon",
)
"""The CSV header, in file order."""

STATUS_CODES: dict[str, str] = {
    "N": "new",
    "P": "paid",
    "S": "shipped",
    "C": "cancelled",
    "R": "refunded",
}
"""Status codes of the shop and their names in the target table."""

ORDER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Web-shop order (one CSV row)",
    "description": "An order as exported by the web shop; every CSV value is text.",
    "type": "object",
    "required": [
        "order_id",
        "created_at",
        "customer_email",
        "first_name",
        "last_name",
        "country",
        "status",
        "items",
        "total",
    ],
    "properties": {
        "order_id": {"type": "string", "pattern": "^[0-9]{1,15}$"},
        "created_at": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
        },
        "customer_email": {
            "type": "string",
            "maxLength": 254,
            "pattern": r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$",
        },
        "first_name": {"type": "string", "minLength": 1, "maxLength": 100},
        "last_name": {"type": "string", "minLength": 1, "maxLength": 100},
        "phone": {"type": "string", "maxLength": 32},
        "street": {"type": "string", "maxLength": 200},
        "postal_code": {"type": "string", "maxLength": 16},
        "city": {"type": "string", "maxLength": 100},
        "country": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "status": {"enum": sorted(STATUS_CODES)},
        "items": {"type": "string", "pattern": "^[1-9][0-9]{0,3}$"},
        "total": {"type": "string", "pattern": r"^\d{1,10}(\.\d{1,2})?$"},
        "currency": {"type": "string", "pattern": "^([A-Za-z]{3})?$"},
        "payment": {"enum": ["card", "paypal", "invoice", "klarna", "CARD", "PayPal", ""]},
        "channel": {"enum": ["web", "app", ""]},
        "coupon": {"type": "string", "maxLength": 32},
    },
}
"""JSON Schema (draft 2020-12) of one CSV row, as the ``validate`` step and the baseline use it."""

TARGET_TABLE = "sales_orders"
"""The table both sides upsert into, keyed by ``order_id``."""

TARGET_KEY: tuple[str, ...] = ("order_id",)

MAPPING_SHEET_ROWS: tuple[dict[str, str], ...] = (
    {"target": "order_id", "source": "order_id", "transform": "int", "required": "yes",
     "note": "Web-shop order number; the upsert key"},
    {"target": "order_date", "source": "created_at", "transform": "date:%Y-%m-%d",
     "required": "yes", "note": "Day the order was placed (UTC)"},
    {"target": "created_at", "source": "created_at", "transform": "", "required": "yes",
     "note": "ISO 8601 timestamp"},
    {"target": "customer_email", "source": "customer_email", "transform": "trim|lower",
     "required": "yes", "note": "Personal data: masked in logs"},
    {"target": "customer_name", "source": "first_name, last_name", "transform": "concat",
     "required": "yes", "note": "First and last name"},
    {"target": "country", "source": "country", "transform": "upper", "required": "yes",
     "note": "ISO 3166-1 alpha-2"},
    {"target": "city", "source": "city", "transform": "trim", "required": "no", "note": ""},
    {"target": "postal_code", "source": "postal_code", "transform": "trim", "required": "no",
     "note": ""},
    {"target": "status", "source": "status",
     "transform": "map:" + ";".join(f"{code}={name}" for code, name in STATUS_CODES.items()),
     "required": "yes", "note": "Shop status code to ERP status"},
    {"target": "item_count", "source": "items", "transform": "int", "required": "yes",
     "note": ""},
    {"target": "total", "source": "total", "transform": "decimal:2", "required": "yes",
     "note": "Gross amount"},
    {"target": "currency", "source": "currency", "transform": "default:EUR|upper",
     "required": "yes", "note": "ISO 4217; empty means EUR"},
    {"target": "payment_method", "source": "payment", "transform": "lower", "required": "no",
     "note": ""},
    {"target": "channel", "source": "channel", "transform": "default:web", "required": "no",
     "note": ""},
    {"target": "coupon_code", "source": "coupon", "transform": "trim|upper", "required": "no",
     "note": "Empty when no coupon was used"},
)  # fmt: skip
"""The mapping from a CSV row to a ``sales_orders`` row, one dict per mapping-sheet row."""

TARGET_COLUMNS: tuple[str, ...] = tuple(row["target"] for row in MAPPING_SHEET_ROWS)


def mapping_sheet_csv() -> str:
    """The mapping sheet as CSV text (header ``target,source,transform,required,note``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer,
        fieldnames=["target", "source", "transform", "required", "note"],
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(MAPPING_SHEET_ROWS)
    return buffer.getvalue()


def target_ddl(dialect: str, table: str = TARGET_TABLE) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the target on ``sqlite`` or ``postgresql``."""
    timestamp = "timestamptz" if dialect == "postgresql" else "DATETIME"
    big = "bigint" if dialect == "postgresql" else "INTEGER"
    return f"""CREATE TABLE IF NOT EXISTS {table} (
    order_id {big} PRIMARY KEY,
    order_date date NOT NULL,
    created_at {timestamp} NOT NULL,
    customer_email varchar(254) NOT NULL,
    customer_name varchar(200) NOT NULL,
    country varchar(2) NOT NULL,
    city varchar(100),
    postal_code varchar(16),
    status varchar(16) NOT NULL,
    item_count integer NOT NULL,
    total numeric(12, 2) NOT NULL,
    currency varchar(3) NOT NULL,
    payment_method varchar(16),
    channel varchar(8),
    coupon_code varchar(32)
);
"""


@dataclass(frozen=True)
class OrdersCsvStats:
    """What ``write_orders_csv`` wrote."""

    rows: int
    """Data rows (without the header)."""
    invalid: int
    """Rows that break ``ORDER_SCHEMA`` on purpose."""
    distinct_orders: int
    """Distinct valid ``order_id`` values: the rows the target table ends up with."""


_FIRST = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannes", "Ida", "Jonas", "Karin",
    "Lukas", "Maria", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sven", "Tara", "Ugo", "Vera",
    "Wim", "Xenia", "Yusuf", "Zoe", "Élodie", "Søren", "Łukasz", "Mateo", "Aoife",
)  # fmt: skip
_LAST = (
    "Müller", "Schmidt", "Jansen", "de Vries", "Martin", "Bernard", "Rossi", "Bianchi", "García",
    "López", "Smith", "Jones", "Andersson", "Nowak", "Kowalski", "O'Brien", "Murphy", "Dubois",
    "Moreau", "Peeters", "Lindqvist", "Novak", "Horvat",
)  # fmt: skip
_COUNTRIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "DE": ("EUR", ("Berlin", "Hamburg", "München", "Köln")),
    "NL": ("EUR", ("Amsterdam", "Rotterdam", "Utrecht")),
    "FR": ("EUR", ("Paris", "Lyon", "Marseille")),
    "ES": ("EUR", ("Madrid", "Barcelona", "Valencia")),
    "IT": ("EUR", ("Roma", "Milano", "Torino")),
    "AT": ("EUR", ("Wien", "Graz")),
    "BE": ("EUR", ("Bruxelles", "Antwerpen")),
    "IE": ("EUR", ("Dublin", "Cork")),
    "GB": ("GBP", ("London", "Manchester", "Leeds")),
    "SE": ("SEK", ("Stockholm", "Göteborg")),
    "PL": ("PLN", ("Warszawa", "Kraków")),
    "DK": ("DKK", ("København", "Aarhus")),
    "CH": ("CHF", ("Zürich", "Genève")),
    "US": ("USD", ("New York", "Chicago", "Austin")),
}
_COUNTRY_CODES = tuple(_COUNTRIES)
_COUNTRY_WEIGHTS = tuple(itertools.accumulate((30, 12, 12, 8, 8, 5, 4, 3, 8, 3, 3, 2, 1, 1)))
_DOMAINS = ("example.com", "mail.example.org", "shop-mail.example.net", "example.de")
_STATUSES = tuple(STATUS_CODES)
_STATUS_WEIGHTS = tuple(itertools.accumulate((10, 45, 35, 6, 4)))
_ITEM_COUNTS = (1, 2, 3, 4, 5, 8)
_ITEM_WEIGHTS = tuple(itertools.accumulate((40, 25, 15, 10, 7, 3)))
_PAYMENTS = ("card", "card", "paypal", "PayPal", "invoice", "klarna", "CARD")
_STREETS = ("Hauptstraße", "Kerkstraat", "Rue de la Paix", "Calle Mayor", "High Street", "Via Roma")
_FIRST_ORDER_ID = 100_000_000
_START = datetime(2024, 1, 1, tzinfo=UTC)


def write_orders_csv(
    path: Path | str,
    rows: int,
    seed: int,
    *,
    invalid_ratio: float = 0.0,
    update_ratio: float = 0.0,
) -> OrdersCsvStats:
    """Write ``rows`` orders to ``path`` as UTF-8 CSV with a header; deterministic per ``seed``.

    ``invalid_ratio`` of the rows break the schema (bad e-mail, unknown status, negative total);
    ``update_ratio`` of the rows repeat an earlier order id with a later status (upserts).
    """
    rng = random.Random(seed)
    invalid = 0
    issued = 0
    seen: set[int] = set()
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ORDER_FIELDS)
        for number in range(rows):
            if issued and rng.random() < update_ratio:
                order_id = _FIRST_ORDER_ID + rng.randrange(issued)
            else:
                order_id = _FIRST_ORDER_ID + issued
                issued += 1
            record = _order(rng, order_id, number)
            if rng.random() < invalid_ratio:
                _break(rng, record)
                invalid += 1
            else:
                seen.add(order_id)
            writer.writerow(record)
    return OrdersCsvStats(rows=rows, invalid=invalid, distinct_orders=len(seen))


def _order(rng: random.Random, order_id: int, number: int) -> list[str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    country = rng.choices(_COUNTRY_CODES, cum_weights=_COUNTRY_WEIGHTS)[0]
    currency, cities = _COUNTRIES[country]
    created = _START + timedelta(seconds=number * 7 + rng.randrange(7))
    items = rng.choices(_ITEM_COUNTS, cum_weights=_ITEM_WEIGHTS)[0]
    total = sum(rng.randrange(199, 25_000) for _ in range(items))
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
    email = f"{local}{rng.randrange(100)}@{rng.choice(_DOMAINS)}"
    if rng.random() < 0.1:
        email = f" {email.title()} "
    return [
        str(order_id),
        created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        email,
        first,
        last,
        f"+{rng.randrange(30, 50)} {rng.randrange(100, 999)} {rng.randrange(1000000, 9999999)}",
        f"{rng.choice(_STREETS)} {rng.randrange(1, 200)}",
        f"{rng.randrange(1000, 99999):05d}",
        rng.choice(cities),
        country.lower() if rng.random() < 0.2 else country,
        rng.choices(_STATUSES, cum_weights=_STATUS_WEIGHTS)[0],
        str(items),
        f"{total // 100}.{total % 100:02d}",
        "" if currency == "EUR" and rng.random() < 0.05 else currency,
        rng.choice(_PAYMENTS),
        "app" if rng.random() < 0.3 else ("" if rng.random() < 0.1 else "web"),
        f"SAVE{rng.randrange(5, 30)}" if rng.random() < 0.15 else "",
    ]


def _break(rng: random.Random, record: list[str]) -> None:
    field, value = rng.choice(
        (("customer_email", "not-an-email"), ("status", "X"), ("total", "-5.00"))
    )
    record[ORDER_FIELDS.index(field)] = value

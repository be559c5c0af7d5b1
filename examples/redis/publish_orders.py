"""Append sample orders to the `shop:orders` stream, as the web shop would.

Needs redis-py (`pip install 'dovetail[redis]'`). Reads REDIS_URL like the flows.

    python publish_orders.py              # 5 orders (one without lines: a dead letter)
    python publish_orders.py --count 1000
    python publish_orders.py --poison     # plus one entry whose payload is not JSON
"""

from __future__ import annotations

import argparse
import json
import os

import redis

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def order(number: int) -> dict[str, object]:
    lines = (
        [] if number % 5 == 3 else [{"sku": "BOOK-1", "quantity": 1 + number % 3, "price": 12.5}]
    )
    return {
        "order_id": f"WS-{4000 + number}",
        "customer": {"id": f"C-{number % 7}", "email": f"customer{number}@example.com"},
        "lines": lines,
    }


def main(count: int, poison: bool) -> None:
    client = redis.Redis.from_url(URL)
    for number in range(count):
        client.xadd("shop:orders", {"payload": json.dumps(order(number))})
    if poison:
        client.xadd("shop:orders", {"payload": "{this is not json"})
    print(f"appended {count + poison} entr{'y' if count + poison == 1 else 'ies'} to shop:orders")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--poison", action="store_true")
    arguments = parser.parse_args()
    main(arguments.count, arguments.poison)

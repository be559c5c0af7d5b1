"""Publish sample order events to the `shop.events` exchange, as the web shop would.

Also declares what the ERP side owns: the `erp.commands` exchange and the `erp.salesorders`
queue the ERP reads its commands from. Needs aio-pika (`pip install 'dovetail[amqp]'`).

    python publish_orders.py            # 5 events, one of them from an unknown region
    python publish_orders.py --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import aio_pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REGIONS = ["eu", "us", "apac", "mars", "eu"]  # "mars" fails validation: a dead letter


def event(number: int) -> dict[str, object]:
    return {
        "order_id": f"WS-{4000 + number}",
        "region": REGIONS[number % len(REGIONS)],
        "customer": {"id": f"C-{number % 7}", "email": f"customer{number}@example.com"},
        "lines": [{"sku": "BOOK-1", "quantity": 1 + number % 3, "price": 12.5}],
    }


async def main(count: int) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        commands = await channel.declare_exchange("erp.commands", "topic", durable=True)
        inbox = await channel.declare_queue("erp.salesorders", durable=True)
        await inbox.bind(commands, routing_key="salesorder.create.#")
        events = await channel.declare_exchange("shop.events", "topic", durable=True)
        for number in range(count):
            body = json.dumps(event(number)).encode()
            message = aio_pika.Message(body, content_type="application/json")
            await events.publish(message, routing_key="order.created")
    print(f"published {count} order event(s) to shop.events (routing key order.created)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    asyncio.run(main(parser.parse_args().count))

"""Publish sample machine readings to `plants/<plant>/telemetry`, as the plants' gateways would.

Needs aiomqtt (`pip install 'dovetail[mqtt]'`). Reads MQTT_HOST and MQTT_PORT like the flows.

    python publish_readings.py            # 6 readings: 2 too hot (alarms), 1 sensor fault
    python publish_readings.py --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import aiomqtt

HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQTT_PORT", "1883"))
PLANTS = ["lyon", "porto"]
TEMPERATURES = [64.0, 71.5, 92.0, 9999.0, 58.5, 85.0]  # 9999: a faulty sensor (dead letter)


def reading(number: int) -> dict[str, object]:
    return {
        "reading_id": f"R-{5000 + number}",
        "plant": PLANTS[number % len(PLANTS)],
        "machine": f"press-{number % 3}",
        "temperature": TEMPERATURES[number % len(TEMPERATURES)],
        "measured_at": f"2026-11-29T10:{number // 60 % 60:02d}:{number % 60:02d}Z",
    }


async def main(count: int) -> None:
    async with aiomqtt.Client(HOST, PORT) as client:
        for number in range(count):
            body = reading(number)
            topic = f"plants/{body['plant']}/telemetry"
            await client.publish(topic, json.dumps(body).encode(), qos=1)  # waits for PUBACK
    print(f"published {count} reading(s) to plants/<plant>/telemetry")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6)
    asyncio.run(main(parser.parse_args().count))

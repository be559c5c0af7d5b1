"""The nats sink against a real JetStream server: PubAck, Nats-Msg-Id dedupe, subjects, errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from nats_support import JetStream, Reader, build_source, source_snippet
from pydantic import ValidationError

from dovetail.connectors.nats.connection import NatsUnavailable, translate_error
from dovetail.connectors.nats.sink import NatsSink
from dovetail.core.ack import Settlement
from dovetail.core.envelope import Envelope
from dovetail.core.ids import new_trace_id, trace_id_from_traceparent
from dovetail.errors import PermanentError, TransientError
from dovetail.testing.components import build_component


def build_sink(project: Path, url: str, **settings: Any) -> NatsSink:
    sink = build_component("sink", "nats: " + json.dumps({"url": url, **settings}), project)
    assert isinstance(sink, NatsSink)
    return sink


def envelope(payload: Any, key: str | None = None, correlation_id: str | None = None) -> Envelope:
    headers = {"idempotency-key": key} if key is not None else {}
    return Envelope(
        payload=payload,
        settlement=Settlement(),
        headers=headers,
        correlation_id=correlation_id or new_trace_id(),
    )


async def write(sink: NatsSink, batch: list[Envelope]) -> list[BaseException | None]:
    await sink.open()
    try:
        return await sink.write(batch)
    finally:
        await sink.close()


def test_a_confirmed_publish_is_in_the_stream_with_its_headers(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("orders"))
    trace_id = new_trace_id()
    message = envelope({"order_id": "A-1", "total": 12.5}, key="A-1", correlation_id=trace_id)

    results = anyio.run(write, sink, [message])

    assert results == [None]
    (stored,) = anyio.run(jetstream.stored)
    assert stored.subject == jetstream.subject("orders")
    assert orjson.loads(stored.data) == {"order_id": "A-1", "total": 12.5}
    assert stored.headers["Nats-Msg-Id"] == "A-1"
    assert stored.headers["x-correlation-id"] == trace_id
    assert trace_id_from_traceparent(stored.headers["traceparent"]) == trace_id
    assert stored.headers["Content-Type"] == "application/json"


def test_the_same_idempotency_key_published_twice_is_stored_once(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("orders"))

    async def main() -> list[list[BaseException | None]]:
        first = await write(sink, [envelope({"n": 1}, key="K-1"), envelope({"n": 2}, key="K-2")])
        # a redelivery after a crash, or a retry after a lost PubAck: same keys again
        again = await write(sink, [envelope({"n": 1}, key="K-1"), envelope({"n": 3}, key="K-3")])
        return [first, again]

    assert anyio.run(main) == [[None, None], [None, None]]
    stored = anyio.run(jetstream.stored)
    assert [m.headers["Nats-Msg-Id"] for m in stored] == ["K-1", "K-2", "K-3"]


def test_messages_without_a_key_are_all_stored(jetstream: JetStream, tmp_path: Path) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("events"))

    results = anyio.run(write, sink, [envelope({"n": 1}), envelope({"n": 1})])

    assert results == [None, None]
    stored = anyio.run(jetstream.stored)
    assert len(stored) == 2 and all("Nats-Msg-Id" not in m.headers for m in stored)


def test_traceparent_and_correlation_id_survive_a_round_trip(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("trace"))
    trace_id = new_trace_id()

    async def main() -> Envelope:
        await write(sink, [envelope({"n": 1}, key="T-1", correlation_id=trace_id)])
        source = build_source(
            source_snippet(jetstream.url, jetstream.stream, jetstream.subject("trace"), "trace"),
            tmp_path,
            once=True,
        )
        await source.open()
        reader = Reader(source, settle=True)
        try:
            await source.run(reader.emit)
        finally:
            await source.close()
        (received,) = reader.emitted
        return received

    received = anyio.run(main)
    assert received.correlation_id == trace_id
    assert received.headers["x-correlation-id"] == trace_id
    assert received.headers["nats-msg-id"] == "T-1"
    assert received.payload == {"n": 1}


def test_subject_from_computes_each_subject_from_the_payload(
    jetstream: JetStream, tmp_path: Path
) -> None:
    expression = f"'{jetstream.prefix}.orders.' & $lowercase(country)"
    sink = build_sink(tmp_path, jetstream.url, subject_from=expression, stream=jetstream.stream)
    batch = [
        envelope({"country": "DE"}),
        envelope({"country": "FR"}),
        envelope({"country": "has space"}),
        envelope({"other": 1}),
        envelope({"country": "*"}),
    ]

    results = anyio.run(write, sink, batch)

    assert results[:2] == [None, None]
    for failed in results[2:]:
        assert isinstance(failed, PermanentError), failed
    assert "white space" in str(results[2])
    assert "empty token" in str(results[3])  # JSONata joins a missing field as ""
    assert "wildcard" in str(results[4])
    stored = anyio.run(jetstream.stored)
    assert [m.subject for m in stored] == [
        jetstream.subject("orders", "de"),
        jetstream.subject("orders", "fr"),
    ]


def test_payload_chosen_system_subjects_and_non_strings_are_refused(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject_from="target")
    batch = [
        envelope({"target": f"$JS.API.STREAM.DELETE.{jetstream.stream}"}),
        envelope({"target": "_INBOX.abc"}),
        envelope({"other": "x"}),
        envelope({"target": {"nested": "x"}}),
    ]

    results = anyio.run(write, sink, batch)

    assert all(isinstance(r, PermanentError) for r in results)
    assert all("system subject" in str(r) for r in results[:2])
    assert "gave nothing, not a subject" in str(results[2])
    assert "gave dict, not a subject" in str(results[3])
    anyio.run(jetstream.stored)  # the stream is still there


def test_a_subject_no_stream_captures_is_a_transient_failure(nats_url: str, tmp_path: Path) -> None:
    sink = build_sink(tmp_path, nats_url, subject=f"nostream.{uuid.uuid4().hex}", timeout="2s")

    (result,) = anyio.run(write, sink, [envelope({"n": 1})])

    assert isinstance(result, TransientError)
    assert "no stream answered" in str(result)


def test_a_subject_that_lands_in_another_stream_is_refused(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(
        tmp_path, jetstream.url, subject=jetstream.subject("orders"), stream="SOME_OTHER"
    )

    (result,) = anyio.run(write, sink, [envelope({"n": 1})])

    assert isinstance(result, PermanentError)
    assert "expected stream does not match" in str(result)
    assert anyio.run(jetstream.stored) == []


def test_text_format_publishes_strings_as_they_are(jetstream: JetStream, tmp_path: Path) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("text"), format="text")

    results = anyio.run(write, sink, [envelope("grüße"), envelope({"not": "text"})])

    assert results[0] is None
    assert isinstance(results[1], PermanentError)
    assert "needs a string payload, found dict" in str(results[1])
    (stored,) = anyio.run(jetstream.stored)
    assert stored.data == "grüße".encode()
    assert stored.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_keys_nats_headers_cannot_carry_are_encoded_the_same_way_every_time(
    jetstream: JetStream, tmp_path: Path
) -> None:
    sink = build_sink(tmp_path, jetstream.url, subject=jetstream.subject("keys"))
    key = "order\r\n7/ü"

    results = anyio.run(write, sink, [envelope({"n": 1}, key=key), envelope({"n": 1}, key=key)])

    assert results == [None, None]
    (stored,) = anyio.run(jetstream.stored)
    assert stored.headers["Nats-Msg-Id"] == "order%0D%0A7%2F%C3%BC"


def test_an_unreachable_server_is_reported_on_open(tmp_path: Path) -> None:
    sink = build_sink(tmp_path, "nats://127.0.0.1:9", subject="a.b", connect_timeout="0.5s")

    with pytest.raises(NatsUnavailable, match="cannot connect to NATS"):
        anyio.run(sink.open)


def test_library_errors_are_translated_once() -> None:
    from nats.errors import ConnectionClosedError, MaxPayloadError
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.errors import APIError, NoStreamResponseError

    assert isinstance(translate_error(NatsTimeout(), "a.b"), TransientError)
    assert "no PubAck" in str(translate_error(NatsTimeout(), "a.b"))
    assert isinstance(translate_error(NoStreamResponseError(), "a.b"), TransientError)
    assert isinstance(translate_error(ConnectionClosedError(), "a.b"), TransientError)
    assert isinstance(translate_error(MaxPayloadError(), "a.b"), PermanentError)
    full = APIError(code=503, err_code=10077, description="maximum messages exceeded")
    assert isinstance(translate_error(full, "a.b"), TransientError)
    refused = APIError(code=400, err_code=10060, description="expected stream does not match")
    assert isinstance(translate_error(refused, "a.b"), PermanentError)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "exactly one of `subject`"),
        ({"subject": "a.b", "subject_from": "x"}, "exactly one of `subject`"),
        ({"subject": "orders.*"}, "wildcard"),
        ({"subject": "orders..x"}, "empty token"),
        ({"subject_from": "'a' &"}, "JSONata syntax error"),
        ({"subject": "a", "stream": "A.B"}, "only letters, digits"),
        ({"subject": "a", "url": "http://x:4222"}, "nats://host:port"),
    ],
)
def test_sink_settings_are_checked_when_the_flow_loads(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        build_sink(tmp_path, settings.pop("url", "nats://127.0.0.1:4222"), **settings)

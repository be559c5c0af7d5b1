"""Every field of every log line goes through the masking policy of its flow."""

from __future__ import annotations

import json
import uuid

import pytest
import structlog

from dovetail.observability.logging import configure_logging
from dovetail.observability.masking import MASK, MaskPolicy, use_policy
from dovetail.observability.redaction import REDACTED, register_secret


def last_line(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    parsed: dict[str, object] = json.loads(lines[-1])
    return parsed


def test_every_field_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-" + uuid.uuid4().hex
    register_secret(secret)
    configure_logging(json=True)
    log = structlog.get_logger("test")
    log.warning(
        "partner said no to jane@example.com",
        reason=f"HTTP 401: token {secret} rejected for card 4111 1111 1111 1111",
        password="hunter2",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "accept": "json"},
        error=ValueError("bad IBAN GB82WEST12345698765432"),
        count=3,
    )
    line = last_line(capsys)
    assert line["event"] == f"partner said no to {MASK}"
    assert line["reason"] == f"HTTP 401: token {REDACTED} rejected for card {MASK}"
    assert line["password"] == MASK
    assert line["headers"] == {"Authorization": MASK, "accept": "json"}
    assert line["error"] == f"ValueError: bad IBAN {MASK}"
    assert line["count"] == 3
    assert line["level"] == "warning"


def test_a_flow_can_switch_detectors_off_for_its_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flow = f"quiet-{uuid.uuid4().hex[:6]}"
    use_policy(flow, MaskPolicy.of(detect=False))
    configure_logging(json=True)
    log = structlog.get_logger("test")
    log.info("sent", flow=flow, to="ops@example.com")
    assert last_line(capsys)["to"] == "ops@example.com"
    log.info("sent", flow="other-flow", to="ops@example.com")
    assert last_line(capsys)["to"] == MASK


def test_exceptions_in_json_logs_are_formatted_and_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=True)
    log = structlog.get_logger("test")
    try:
        raise RuntimeError("cannot send to jane@example.com")
    except RuntimeError:
        log.exception("step failed")
    line = last_line(capsys)
    assert "RuntimeError" in str(line["exception"])
    assert "jane@example.com" not in json.dumps(line)

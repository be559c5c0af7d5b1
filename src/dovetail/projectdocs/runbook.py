"""The runbook section of a flow page: find a message, common failures, replay, parked retries.

The HTTP status advice is computed from each ``http`` sink's own status policy
(``already_delivered``, ``permanent``, ``transient``), so a 409 that the sink counts as
delivered is documented as such.
"""

from __future__ import annotations

from dovetail.connectors.http.classify import StatusPolicy
from dovetail.projectdocs.markdown import code, duration, fence, text
from dovetail.projectdocs.model import EndpointDoc, FlowDoc

STATUSES: tuple[tuple[int, str, str, str, str], ...] = (
    (
        401,
        "401 Unauthorized",
        "The partner does not accept the credentials.",
        "Check the secrets this sink uses{secrets}, the token URL and that the client is still"
        " enabled at the partner; restart the flow, then replay.",
        "HTTP 401",
    ),
    (
        403,
        "403 Forbidden",
        "The credentials are valid but lack a permission or scope.",
        "Ask the partner to grant access (or add the OAuth2 scope), restart, then replay.",
        "HTTP 403",
    ),
    (
        404,
        "404 Not Found",
        "The URL is wrong (check the variables that build it) or the record does not exist at"
        " the partner.",
        "Fix the URL or create the record first, then replay.",
        "HTTP 404",
    ),
    (
        409,
        "409 Conflict",
        "The partner already has this record, or a version clash.",
        "If 409 means 'already exists', declare already_delivered: [409] on the sink. Otherwise"
        " read the partner's answer in the reason (dovetail dlq show ID) and resolve it with"
        " the partner, then replay.",
        "HTTP 409",
    ),
    (
        422,
        "422 Unprocessable Entity (and 400 Bad Request)",
        "The partner rejects the content; the reason carries the start of its answer.",
        "Fix the mapping (and add a test case under tests/{flow}/) or get the source data"
        " corrected, then replay.",
        "HTTP 422",
    ),
    (
        429,
        "429 Too Many Requests",
        "The partner's quota is exceeded; its Retry-After is honoured.",
        "Lower the sink's rate_limit below the partner's quota or raise retry.attempts, then"
        " replay what ran out of attempts.",
        "HTTP 429",
    ),
    (
        503,
        "5xx Server Error, timeouts, refused connections",
        "The partner is down or overloaded (501 and 505 are never retried).",
        "Wait for the partner to recover (the flow slows down meanwhile), then replay; also"
        ' with --reason "connection failed" and --reason "timeout".',
        "HTTP 503",
    ),
)


def _outcome(sink: EndpointDoc, status: int, flow: FlowDoc) -> str:
    policy = StatusPolicy.build(
        success=sink.status_overrides.get("success"),
        already_delivered=sink.status_overrides.get("already_delivered", ()),
        transient=sink.status_overrides.get("transient", ()),
        permanent=sink.status_overrides.get("permanent", ()),
    )
    attempts = flow.delivery.attempts
    if policy.is_delivered(status):
        return "counted as delivered (the sink declares it as success or already delivered)"
    if status == 401 and sink.auth and "oauth2" in sink.auth:
        return (
            "a new token is fetched and the request sent once more; a second 401 is a dead letter"
        )
    if policy.is_transient(status):
        return f"transient: retried with backoff, up to {attempts} attempts, then a dead letter"
    return "permanent: dead letter at once (no retry)"


def _sink_secrets(flow: FlowDoc, sink: EndpointDoc) -> str:
    prefixes = ("sink.",) if sink.label == "sink" else (f"sinks.{sink.label}.",)
    names = [
        ref.name
        for ref in flow.references
        if ref.kind == "secret" and any(p.startswith(prefixes) for p in ref.used_at)
    ]
    return f" ({', '.join(names)})" if names else ""


def http_failures(flow: FlowDoc) -> list[str]:
    """One section per HTTP status per ``http`` sink of the flow."""
    replay = f"dovetail replay --flow {flow.name}"
    lines: list[str] = []
    sinks = [s for s in flow.sinks if s.component == "http"]
    if not sinks:
        return ["This flow has no HTTP sinks."]
    for sink in sinks:
        lines.append(f"#### Sink {text(sink.label)} ({code(sink.target)})")
        lines.append("")
        for status, title, meaning, action, reason in STATUSES:
            lines.append(f"##### HTTP {text(title)}")
            lines.append("")
            lines.append(f"- Means: {text(meaning)}")
            lines.append(f"- Here: {text(_outcome(sink, status, flow))}.")
            filled = action.format(secrets=_sink_secrets(flow, sink), flow=flow.name)
            lines.append(f"- Do: {text(filled)}")
            command = f'{replay} --reason "{reason}"'
            lines.append(f"- Replay: {code(command)}")
            lines.append("")
    return lines


def _commented(*commands: tuple[str, str]) -> str:
    width = max(len(command) for command, _ in commands) + 2
    return "\n".join(f"{command.ljust(width)}# {note}" for command, note in commands)


def runbook(flow: FlowDoc) -> list[str]:
    """The ``## Runbook`` section of a flow page, as Markdown lines."""
    name = flow.name
    key = flow.delivery.idempotency_key
    lines = [
        "## Runbook",
        "",
        "### Find a message",
        "",
        "Every message carries a correlation id (taken from the incoming `traceparent` or"
        " `x-correlation-id` header, or new). Dead letters show it, and so do the logs:",
        "",
        fence(
            _commented(
                (f"dovetail dlq list --flow {name}", "id, step, reason, source position"),
                ("dovetail dlq show ID", "payload (masked), correlation id, history"),
                ("dovetail trace CORRELATION_ID", "every event of the message, in order"),
            ),
            "console",
        ),
        "",
        "### Common failures by HTTP status",
        "",
        *http_failures(flow),
        "",
        "### Replay safely",
        "",
        f"1. Find out why: {code(f'dovetail dlq list --flow {name}')}, then"
        f" {code('dovetail dlq show ID')} for a few entries.",
        "2. Fix the cause (lookup table, mapping, schema, partner configuration), then check it:"
        f" {code(f'dovetail lint --env ENV {name}')} and {code(f'dovetail test {name}')}.",
        f"3. Replay one, then the rest: {code(f'dovetail replay --flow {name} --env ENV --id ID')},"
        f" {code(f'dovetail replay --flow {name} --env ENV --reason TEXT')}.",
        f"4. Confirm: {code(f'dovetail dlq list --flow {name} --status replayed')}; entries still"
        " open failed again (see their history).",
        "",
    ]
    if key is not None:
        lines.append(
            f"Replay is duplicate-safe: the idempotency key {code(key)} of a message already"
            f" delivered to a sink is skipped there (kept for"
            f" {duration(flow.delivery.idempotency_retention)}), so replaying twice never"
            " delivers twice."
        )
    else:
        lines.append(
            "**This flow declares no idempotency key**: a replay delivers whatever it replays."
            " Replay only messages you know were not delivered."
        )
    park = flow.delivery.park_after
    lines += [
        "",
        "### Parked retries",
        "",
        (
            f"Retry waits longer than {duration(park)} are parked in the store and sent again"
            " when due; the flow goes on meanwhile."
            if park is not None
            else "Retries always wait in place (park_after is null); nothing is parked."
        ),
        "",
        fence(
            f"dovetail dlq parked --flow {name}    # next attempt, reason, ordering key", "console"
        ),
        "",
        "A parked message that runs out of attempts becomes a dead letter with the history of"
        " every attempt.",
    ]
    return lines

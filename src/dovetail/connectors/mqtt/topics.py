"""MQTT topic names and topic filters: the rules the broker would otherwise reject late."""

from __future__ import annotations

MAX_TOPIC_BYTES = 65_535


def check_topic_filter(value: str) -> str:
    """A valid subscription filter; raises ``ValueError`` saying what is wrong.

    ``+`` must fill a whole level, ``#`` must be the whole last level; a shared subscription
    is ``$share/<group>/<filter>``.
    """
    _check_common(value, "topic filter")
    levels = value.split("/")
    if levels[0] == "$share":
        if len(levels) < 3 or not levels[1] or any(c in levels[1] for c in "+#"):
            raise ValueError(f"a shared subscription is $share/<group>/<filter>, found {value!r}")
        levels = levels[2:]
        if not "/".join(levels):
            raise ValueError(f"the shared subscription {value!r} has no topic filter")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level of a topic filter: {value!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must fill a whole level of a topic filter: {value!r}")
    return value


def check_topic_name(value: str) -> str:
    """A valid topic to publish to (no wildcards); raises ``ValueError`` saying why not."""
    _check_common(value, "topic")
    if "+" in value or "#" in value:
        raise ValueError(f"a topic to publish to cannot hold the wildcards + or #: {value!r}")
    return value


def _check_common(value: str, what: str) -> None:
    if not value:
        raise ValueError(f"a {what} cannot be empty")
    if "\x00" in value:
        raise ValueError(f"a {what} cannot contain the NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"a {what} must be valid UTF-8 text") from None
    if size > MAX_TOPIC_BYTES:
        raise ValueError(f"a {what} is at most {MAX_TOPIC_BYTES} bytes long")

"""Topic names and filters: what the connectors accept is what MQTT allows (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from dovetail.connectors.mqtt.codec import decode_payload, encode_payload
from dovetail.connectors.mqtt.topics import check_topic_filter, check_topic_name
from dovetail.errors import PayloadRejected

level = st.text(
    alphabet=st.characters(blacklist_characters="/+#\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=8,
)
topics = (
    st.lists(level, min_size=1, max_size=5)
    .map("/".join)
    .filter(lambda topic: not topic.startswith("$"))  # $SYS topics: wildcards never match
)


@given(topic=topics)
def test_plain_topics_are_valid_names_and_filters(topic: str) -> None:
    assert check_topic_name(topic) == topic
    assert check_topic_filter(topic) == topic


@given(topic=topics, data=st.data())
def test_wildcard_filters_are_accepted_and_match_what_they_replace(
    topic: str, data: st.DataObject
) -> None:
    levels = topic.split("/")
    index = data.draw(st.integers(0, len(levels) - 1))
    plus = "/".join([*levels[:index], "+", *levels[index + 1 :]])
    hash_ = "/".join([*levels[:index], "#"])
    for pattern in (plus, hash_, f"$share/group/{plus}"):
        check_topic_filter(pattern)
    assert topic_matches_sub(plus, topic)
    assert topic_matches_sub(hash_, topic)
    with pytest.raises(ValueError, match="wildcards"):
        check_topic_name(plus)


@pytest.mark.parametrize(
    "bad", ["", "a/#/b", "a/b#", "a/+b", "a\x00b", "$share/g", "$share//a", "$share/g+/a"]
)
def test_malformed_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        check_topic_filter(bad)


@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
)
def test_json_payloads_round_trip(payload: object) -> None:
    assert decode_payload(encode_payload(payload, "json"), "json", 1 << 20, 64) == payload


def test_bad_payloads_are_rejected_with_a_reason() -> None:
    with pytest.raises(PayloadRejected, match="invalid JSON"):
        decode_payload(b"{", "json", 100, 64)
    with pytest.raises(PayloadRejected, match="larger than the limit"):
        decode_payload(b"[1, 2, 3]", "json", 4, 64)
    with pytest.raises(PayloadRejected, match="UTF-8"):
        decode_payload(b"\xff", "text", 100, 64)
    assert decode_payload("grüße".encode(), "text", 100, 64) == "grüße"

"""Topic names and filters: what the connectors accept is what MQTT allows (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from dovetail.connectors.mqtt.topics import check_topic_filter, check_topic_name

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

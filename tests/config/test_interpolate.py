from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dovetail.config.interpolate import Resolver, interpolate, references
from dovetail.observability.redaction import REDACTED, redact


def test_references_resolve_inside_nested_data() -> None:
    resolver = Resolver(variables={"region": "eu"}, environ={"HOST": "erp.example"})
    data, problems = interpolate(
        {"url": "https://${env:HOST}/${var:region}", "list": ["${var:region}", 3]}, resolver
    )
    assert data == {"url": "https://erp.example/eu", "list": ["eu", 3]}
    assert problems == []


def test_fallback_is_used_when_undefined() -> None:
    data, problems = interpolate({"port": "${env:NOPE:-8088}"}, Resolver(environ={}))
    assert data == {"port": "8088"} and problems == []


def test_secrets_from_files_are_registered_for_redaction(tmp_path: Path) -> None:
    (tmp_path / "API_TOKEN").write_text("tok-3f9a1c77\n")
    resolver = Resolver(environ={}, secret_dirs=[tmp_path])
    data, _ = interpolate({"auth": "Bearer ${secret:API_TOKEN}"}, resolver)
    assert data == {"auth": "Bearer tok-3f9a1c77"}
    assert redact("header was Bearer tok-3f9a1c77") == f"header was Bearer {REDACTED}"


def test_problems_carry_the_location() -> None:
    _, problems = interpolate({"a": [{"b": "${env:MISSING_X}"}]}, Resolver(environ={}))
    assert problems[0][0] == ("a", 0, "b")


def test_references_lists_each_once() -> None:
    data = {"a": "${env:A} ${secret:S}", "b": ["${env:A}", "${var:V}"]}
    assert references(data) == [("env", "A"), ("secret", "S"), ("var", "V")]


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=50))
def test_text_without_references_is_untouched(text: str) -> None:
    data, problems = interpolate({"x": text}, Resolver(environ={}))
    assert data == {"x": text} and problems == []

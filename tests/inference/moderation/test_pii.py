"""PII: positives, near-misses, redaction in replies and flags on input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.moderation.base import Action, ModerationContext, apply_spans
from inference.moderation.pii import PiiHook, find_pii, iban_ok, luhn_ok

CTX = ModerationContext("c", "m", "u")


def redact(text: str) -> str:
    return apply_spans(text, PiiHook().check_output(CTX, text).spans)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail Jo.Doe+x@mail.example.co.uk.", "mail [email]."),
        ("card 4111 1111 1111 1111 ok", "card [card] ok"),
        ("card 4111-1111-1111-1111", "card [card]"),
        ("amex 378282246310005", "amex [card]"),
        ("iban DE89 3704 0044 0532 0130 00 and more", "iban [iban] and more"),
        ("GB82WEST12345698765432", "[iban]"),
        ("host 192.168.1.20.", "host [ip]."),
        ("fe80::1 or 2001:db8::ff00:42:8329", "[ip] or [ip]"),
        ("call +44 20 7946 0958 now", "call [phone] now"),
        ("or 0044 20 7946 0958", "or [phone]"),
        ("(555) 123-4567", "[phone]"),
        ("555.123.4567", "[phone]"),
        ("06 12 34 56 78", "[phone]"),
        ("0612345678", "[phone]"),
        ("+1 (555) 123-4567", "[phone]"),
        ("+44 (0)20 7946 0958", "[phone]"),
        # Side by side: each number whole, however the run could be cut.
        ("(555) 123-4567 (555) 123-4567", "[phone] [phone]"),
        ("+33 6 12 34 56 78 (555) 123-4567", "[phone] [phone]"),
        ("555.123.4567 555-123-4567", "[phone] [phone]"),
        ("06 12 34 56 78 06 12 34 56 78", "[phone] [phone]"),
        ("+33 6 12 34 56 78 +1 555 123 4567", "[phone] [phone]"),
    ],
)
def test_positives_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # fails Luhn
        "GB82WEST12345698765433",  # bad mod-97
        "v1.2.3.4",  # a version, not an address
        "release 1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "at 12:30:45",
        "std::vector and ::1",
        "123456789",  # a bare number
        "on 2024-01-15",
        "pi is 3.14159265358",
        "call 555 1234",  # 7 digits: too short
        "1 2 3 4 5 6 7 8 9 10 11 12 13",  # a count, not numbers side by side
        "not@an-email",
        "user@host.c",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert find_pii(text) == []


def test_version_style_dotted_quad_is_an_address() -> None:
    # Decided: a valid dotted quad is redacted even after "version"; "v1.2.3.4" is not.
    assert redact("version 1.2.3.4") == "version [ip]"


def test_input_is_flagged_never_redacted() -> None:
    ctx = ModerationContext("c", "m", "u", ({"role": "user", "content": "I am a@b.com"},))
    verdict = PiiHook().check_input(ctx)
    assert verdict.action is Action.FLAG and verdict.spans == () and verdict.categories == ("pii",)
    assert "a@b.com" not in verdict.reason


def test_stream_verdict_lists_kinds() -> None:
    verdict = PiiHook().check_stream(CTX, "a@b.com, 10.0.0.1")
    assert verdict.action is Action.REDACT and verdict.reason == "pii: email, ipv4"
    assert PiiHook().check_stream(CTX, "nothing here").action is Action.ALLOW


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE88 3704 0044 0532 0130 00")
    assert not iban_ok("DE89")


def _every_detector(text: str) -> list:
    """find_pii without the shortcut that skips a detector whose character is not in the text."""
    from inference.moderation.pii import _DETECTORS, _candidates

    found: list = []
    for detector in _DETECTORS:
        for match in _candidates(detector, text):
            if not any(match.start < f.end and f.start < match.end for f in found):
                found.append(match)
    return sorted(found, key=lambda m: m.start)


@given(st.text(alphabet="0123456789abcdefABCDEFXYZ@.:-+() \n", max_size=60))
@settings(max_examples=400, deadline=None)
def test_skipping_detectors_that_cannot_match_changes_nothing(text: str) -> None:
    assert find_pii(text) == _every_detector(text)


@pytest.mark.parametrize(
    "text",
    ["fe80::abcd is a link", "write to ann@example.org", "a plain sentence of prose", "call 06 12 34 56 78"],
)
def test_skipping_detectors_keeps_each_kind(text: str) -> None:
    assert find_pii(text) == _every_detector(text)

"""SIGNUP_MODE and SIGNUP_DOMAINS, checked when the settings load: junk refuses to start.

Plain Python: webapp/settings.py imports it before Django is set up.
"""

from __future__ import annotations

import re

MODES = ("open", "closed", "approval", "domains")
# One DNS label: letters, digits and inner hyphens, at most 63 characters (punycode `xn--` included).
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class SignupSettingsError(ValueError):
    """A SIGNUP_MODE or SIGNUP_DOMAINS the site refuses to start with; the message says why."""


def check_domain(domain: str) -> str:
    """`domain` lower-cased, or SignupSettingsError naming it: at least two labels, no `@`, no spaces."""
    cleaned = domain.strip().lower().rstrip(".")
    labels = cleaned.split(".")
    if (
        len(cleaned) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise SignupSettingsError(
            f"SIGNUP_DOMAINS: {domain.strip()[:80]!r} is not a domain name; "
            "write a comma-separated list such as 'example.com,example.org' (no '@', no wildcards)."
        )
    return cleaned


def check_signup_settings(mode: str, domains: str) -> tuple[str, tuple[str, ...]]:
    """The mode and the domains (lower-case, in order, once each), or SignupSettingsError."""
    mode = mode.strip().lower() or "open"
    if mode not in MODES:
        raise SignupSettingsError(f"SIGNUP_MODE: {mode[:40]!r} is not one of {', '.join(MODES)}.")
    items = [item for item in domains.split(",")]
    if domains.strip() and any(not item.strip() for item in items):
        raise SignupSettingsError("SIGNUP_DOMAINS: an empty item; write 'example.com,example.org'.")
    checked = tuple(dict.fromkeys(check_domain(item) for item in items if item.strip()))
    if mode == "domains" and not checked:
        raise SignupSettingsError("SIGNUP_MODE=domains needs SIGNUP_DOMAINS, e.g. 'example.com'.")
    return mode, checked

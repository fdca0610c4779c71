"""Personal data in text: e-mail addresses, phone numbers, card numbers, IBANs, IP addresses.

Our own regexes plus checksums, so it runs offline and fast. Replies are
redacted (`[email]`, `[phone]`, `[card]`, `[iban]`, `[ip]`); a user's input is
only flagged, never changed.

What counts (and what deliberately does not):
- e-mail: `local@domain.tld`, TLD of 2-24 letters.
- card: 13-19 digits, optionally grouped by single spaces or dashes, passing
  the Luhn check (so a random 16-digit number usually is not a card).
- IBAN: two capital letters, two check digits, 11-30 letters/digits, compact or
  in groups of four separated by spaces, passing the mod-97 check.
- IPv4: four dotted octets 0-255, so "version 1.2.3.4" is redacted as an
  address (it is one); `v1.2.3.4`, `1.2.3` and `1.2.3.4.5` are not.
- IPv6: anything `ipaddress` accepts with at least two non-empty groups and
  six characters (`fe80::1`, `2001:db8::ff00:42:8329`); not `::1` or times `12:30:45`.
- phone: 9-15 digits, either international (`+CC ...`, `00CC ...`), or national
  with a leading 0 or with separators (`06 12 34 56 78`, `(555) 123-4567`,
  `555.123.4567`); a bare run of digits not starting with 0 (`123456789`) is a
  number, not a phone. Numbers side by side (`(555) 123-4567 (555) 123-4567`)
  are each a phone (`_phones`).
Detectors run in that priority order (e-mail, IP, IBAN, card, phone); a later
match that overlaps an earlier one is dropped, so a card is not also a phone.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from inference.moderation.base import ALLOW, Action, ModerationContext, Span, Verdict

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_IBAN = re.compile(r"(?<!\w)[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?!\w)")
_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?!\w|\.\d)")
# A run of digit groups that may hold one phone number or several side by side
# ("(555) 123-4567 (555) 123-4567"); `_phones` splits it into numbers.
_PHONE = re.compile(
    r"(?<![\w.+])(?:\+|00)?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\(?\d{1,4}\)?){1,13}(?!\w|\.\d)"
)
_PHONE_GROUP = re.compile(r"(?:\+|00)?\(?\d{1,4}\)?")
# A single number has at most this many groups: "+1 (555) 123-4567" has four, and a
# longer run of small groups ("1 2 3 4 5 6 7 8 9") is a list, not a phone.
_PHONE_GROUPS = 8


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97: move the first four characters to the end, letters to 10-35."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _is_card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _is_ipv6(text: str) -> bool:
    if len(text) < 6 or sum(1 for group in text.split(":") if group) < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _phones(run: str) -> list[tuple[int, int]]:
    """The phone numbers in a run of digit groups, as (start, end) offsets within it.

    The run is cut only where a new number plainly starts: before a group that opens
    with "(", "+" or "0", or at a space between groups otherwise joined by "." or "-"
    ("555.123.4567 555.123.4567"); so "4111 1111 1111 1112" is not read as a phone and
    a leftover group. Of the ways to cut, the one whose numbers hold the most digits,
    then the one with the fewest numbers: "+1 (555) 123-4567" stays one number, and
    "+33 6 12 34 56 78 (555) 123-4567" is cut before "(555)", not after it (which would
    leave "123-4567", too short to be a phone, in clear).
    """
    groups = [(m.start(), m.end()) for m in _PHONE_GROUP.finditer(run)]
    gaps = [run[groups[c - 1][1] : groups[c][0]] for c in range(1, len(groups))]

    def joined_by_other_than_space(c: int) -> bool:
        return gaps[c - 1].isspace() and all(
            gaps[k] and not gaps[k].isspace() for k in (c - 2, c) if 0 <= k < len(gaps)
        )

    cuts = [
        c
        for c in range(len(groups) + 1)
        if c in (0, len(groups)) or run[groups[c][0]] in "(+0" or joined_by_other_than_space(c)
    ]
    # best[c]: (digits covered, -numbers, numbers) over the groups before cut c.
    best = {0: (0, 0, ())}
    for a, b in itertools.pairwise(cuts):
        best[b] = best[a]  # the groups between a and b are in no number
        for i in cuts[: cuts.index(b)]:
            if b - i > _PHONE_GROUPS:
                continue
            start, end = groups[i][0], groups[b - 1][1]
            if _is_phone(run[start:end]):
                covered, fewer, numbers = best[i]
                candidate = (covered + len(_digits(run[start:end])), fewer - 1, (*numbers, (start, end)))
                best[b] = max(best[b], candidate, key=lambda t: t[:2])
    return list(best[len(groups)][2])


def _is_phone(text: str) -> bool:
    digits = _digits(text)
    if not 9 <= len(digits) <= 15:
        return False
    if re.fullmatch(r"\d+\.\d+", text):
        return False  # a decimal number, 3.14159265358
    international = text.startswith(("+", "00"))
    separated = any(c in text for c in " .-()")
    return international or separated or text.startswith("0")


# The trailing run of text that could still grow into personal data: characters that
# addresses and numbers are made of, and single spaces before a digit, a capital, "(" or
# "+" (grouped card, phone and IBAN numbers). The streaming gate holds it back.
_UNFINISHED = re.compile(r"(?:[A-Za-z0-9._%+@:()\-]+ (?=[0-9A-Z(+]))*[A-Za-z0-9._%+@:()\-]*\s*\Z")
# No entity above is longer than this, spaces included.
_LONGEST = 128


@dataclass(frozen=True)
class _Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool]
    # A character every match contains: a text without one is not searched. Most stream
    # windows are prose with no digit, "@" or ":", and six searches of each cost more
    # than the rest of the hook.
    needs: re.Pattern[str]


_DIGIT, _AT, _COLON = re.compile(r"[0-9]"), re.compile("@"), re.compile(":")
_DETECTORS = (
    _Detector("email", _EMAIL, lambda _: True, _AT),
    _Detector("ipv4", _IPV4, lambda _: True, _DIGIT),
    _Detector("ipv6", _IPV6, _is_ipv6, _COLON),
    _Detector("iban", _IBAN, iban_ok, _DIGIT),
    _Detector("card", _CARD, _is_card, _DIGIT),
    _Detector("phone", _PHONE, _is_phone, _DIGIT),
)


@dataclass(frozen=True)
class PiiMatch:
    kind: str  # email, ipv4, ipv6, iban, card, phone
    start: int
    end: int

    @property
    def replacement(self) -> str:
        return "[ip]" if self.kind.startswith("ip") else f"[{self.kind}]"


def find_pii(text: str) -> list[PiiMatch]:
    """Every piece of personal data in `text`, in order; overlaps go to the earlier detector."""
    found: list[PiiMatch] = []
    present = {needs: needs.search(text) is not None for needs in (_DIGIT, _AT, _COLON)}
    for detector in _DETECTORS:
        if not present[detector.needs]:
            continue
        for match in _candidates(detector, text):
            if not any(match.start < f.end and f.start < match.end for f in found):
                found.append(match)
    return sorted(found, key=lambda m: m.start)


def _candidates(detector: _Detector, text: str) -> Iterator[PiiMatch]:
    if detector.kind == "phone":
        for m in detector.pattern.finditer(text):
            for start, end in _phones(m.group()):
                yield PiiMatch("phone", m.start() + start, m.start() + end)
        return
    for m in detector.pattern.finditer(text):
        candidate = m.group()
        # A sentence may end right after an address: "mail me at a@b.com."
        stripped = candidate.rstrip(".-")
        if stripped and detector.valid(stripped):
            yield PiiMatch(detector.kind, m.start(), m.start() + len(stripped))


class PiiHook:
    """Redact personal data in replies; flag it in what the user typed."""

    name = "pii"
    inline = True  # regex work linear in its text: the chain runs it in the calling thread

    def stream_hold(self, text: str) -> int:
        """How much of `text`'s end could still be the start of personal data: held back while streaming."""
        tail = text[-_LONGEST:]
        found = _UNFINISHED.search(tail)
        return len(tail) - found.start() if found else 0

    def check_input(self, ctx: ModerationContext) -> Verdict:
        text = ctx.messages[-1].get("content", "") if ctx.messages else ""
        found = find_pii(text)
        if not found:
            return ALLOW
        return Verdict(Action.FLAG, ("pii",), 1.0, _reason(found))

    def check_stream(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._redact(text)

    def check_stream_many(self, items: Sequence[tuple[ModerationContext, str]]) -> list[Verdict]:
        # One hop to the chain's pool for a whole engine step's texts.
        return [self._redact(text) for _, text in items]

    def check_output(self, ctx: ModerationContext, text: str) -> Verdict:
        return self._redact(text)

    def _redact(self, text: str) -> Verdict:
        found = find_pii(text)
        if not found:
            return ALLOW
        spans = tuple(Span(m.start, m.end, m.replacement) for m in found)
        return Verdict(Action.REDACT, ("pii",), 1.0, _reason(found), spans)


def _reason(found: list[PiiMatch]) -> str:
    # The kinds found, never the values: reasons are stored and shown.
    return "pii: " + ", ".join(dict.fromkeys(m.kind for m in found))

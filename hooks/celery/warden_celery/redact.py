"""Redaction, a port of core/redact.ts (same key names, same text patterns, same replacements, same
markers), applied to every event the hook sends, before it leaves the process (`redact_event`, which
is what the sidecar applies on ingest, so the hook's output passes the sidecar unchanged). Three
layers: configured dot paths (`*` matches any key or index), sensitive key names (matched anywhere in
the name), and patterns inside any string (also matched after percent-decoding).

Held equal to the TypeScript code by tests/vectors_ts.json (test/hooks/celery/python.test.ts
recomputes it from core/redact.ts). Porting notes: JavaScript regexes without the `u` flag are
ASCII-only for `\\b`, `\\d` and case folding (hence re.ASCII), but JavaScript's `\\s` is Unicode
whitespace (spelled out as _WS), and JavaScript's `$` (no `m` flag) is Python's `\\Z`."""
from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, Iterable

REDACTED = "[REDACTED]"

_A = re.ASCII
_I = re.I | re.ASCII
# JavaScript's \s (WhiteSpace + LineTerminator), which Python's \s (either mode) does not equal.
_WS = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"

# -- sensitive key names (core/redact.ts isSensitiveKey) ---------------------------------------------

_SENSITIVE_KEY_PART = re.compile(
    r"pass(?:word|wd|phrase)|secret|api[_-]?key|apikey|access[_-]?key|credential|private[_-]?key|authori[sz]ation|cookie"
    r"|session[_-]?id|token(?!s|i[sz]e|[_-]?(?:count|usage|limit|len|length|budget|total|s))", _I)
_NAMES_A_TOKEN = re.compile(r"(?:^|[_.-])via[_-]?token\Z|token[_-]?(?:name|type|role)\Z", _I)
_SENSITIVE_KEY_WHOLE = re.compile(r"^(?:pass|pwd|ssn|cvv|cvc|pin|auth|card[_-]?number|cc[_-]?number)\Z", _I)
_PWD_PART = re.compile(r"(?:^|[_.-])pwd(?:\Z|[_.-])", _I)
_PWD_CAMEL = re.compile(r"[a-z0-9]Pwd(?:\Z|[A-Z_.-])", _A)
_MARKER = re.compile(r"\[REDACTED(?::[a-z_]+)?\]", _A)


def is_sensitive_key(name: str) -> bool:
    """True for a key name whose value is a secret wherever it appears (input, attrs, parameters)."""
    key = _MARKER.sub("", name) if "[REDACTED" in name else name  # idempotent on redacted keys
    if _NAMES_A_TOKEN.search(key):
        return False
    return bool(_SENSITIVE_KEY_PART.search(key) or _SENSITIVE_KEY_WHOLE.search(key) or _PWD_PART.search(key)
                or _PWD_CAMEL.search(key))


# -- text patterns (core/redact.ts PATTERNS, same order) ---------------------------------------------

def _is_redacted(v: str) -> bool:
    return v.startswith("[REDACTED")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _userinfo(m: re.Match[str]) -> str:
    scheme, user, pw = m.group(1), m.group(2), m.group(3)
    return m.group(0) if _is_redacted(pw) else f"{scheme}{user}:[REDACTED:password]@"


_TRAILING_WS = re.compile(f"[{_WS}]+\\Z")


def _assignment(m: re.Match[str]) -> str:
    key, sep, value = m.group(1), m.group(2), m.group(3)
    if not is_sensitive_key(key) or _is_redacted(value):
        return m.group(0)
    sep = _TRAILING_WS.sub("", sep)
    if sep.endswith(('"', "'")):
        sep = sep[:-1]
    return f"{key}{sep}[REDACTED:secret]"


def _card(m: re.Match[str]) -> str:
    s = m.group(0)
    return "[REDACTED:card]" if _luhn_valid(re.sub(r"\D", "", s, flags=_A)) else s


# (label, pattern, replace or None for `[REDACTED:<label>]`)
PATTERNS: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str] | None]] = [
    ("token", re.compile(r"\b(?:Bearer|Basic)[" + _WS + r"]+[A-Za-z0-9\-._~+/]+=*", _I), None),
    ("api_key", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _A), None),
    ("api_key", re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}", _A), None),
    ("api_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", _A), None),
    ("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", _A), None),
    ("api_key", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}", _A), None),
    ("api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b", _A), None),
    # A password in URL userinfo: scheme://user:password@host
    ("password", re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/" + _WS + r":@]*):([^/" + _WS + r"@]+)@", _I), _userinfo),
    # key=value / key: value where the key name is sensitive (compound names included)
    ("secret", re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)([\"']?[" + _WS + r"]*[:=][" + _WS + r"]*[\"']?)([^" + _WS + r"\"',;&]+)", _A),
     _assignment),
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", _A), None),
    ("card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b", _A), _card),
]

# Something every pattern above needs; most strings (ids, names, prose) have none and skip the regexes.
MIGHT_MATCH = re.compile(
    r"@|\d(?:[ -]?\d){12}|bearer|basic|eyJ|[spr]k-|AKIA|ASIA|gh[pousr]_|xox|AIza|key|secret|token|pass|pwd|pin|ssn|cv[vc]"
    r"|credential|authori|cookie|session|://|auth", _I)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}", _A)
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+", _A)
_HEX = frozenset("0123456789abcdefABCDEF")


def _decode_uri_component(s: str) -> str:
    """JavaScript's decodeURIComponent: raises ValueError where it throws URIError."""
    out: list[str] = []
    i, n = 0, len(s)

    def byte_at(j: int) -> int:
        if j + 3 > n or s[j] != "%" or s[j + 1] not in _HEX or s[j + 2] not in _HEX:
            raise ValueError("bad escape")
        return int(s[j + 1:j + 3], 16)

    while i < n:
        ch = s[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        b = byte_at(i)
        i += 3
        if b < 0x80:
            out.append(chr(b))
            continue
        if b & 0xE0 == 0xC0:
            size = 2
        elif b & 0xF0 == 0xE0:
            size = 3
        elif b & 0xF8 == 0xF0:
            size = 4
        else:
            raise ValueError("bad lead byte")
        octets = [b]
        for _ in range(size - 1):
            c = byte_at(i)
            if c & 0xC0 != 0x80:
                raise ValueError("bad continuation byte")
            octets.append(c)
            i += 3
        out.append(bytes(octets).decode("utf-8"))  # strict: overlong forms, surrogates, > U+10FFFF raise
    return "".join(out)


def percent_decode(text: str, plus_is_space: bool = False) -> str:
    """Percent-decodes what can be decoded; a malformed sequence stays as it is (never raises)."""
    t = text.replace("+", " ") if plus_is_space else text
    if "%" not in t:
        return t
    try:
        return _decode_uri_component(t)
    except ValueError:
        def run(m: re.Match[str]) -> str:
            try:
                return _decode_uri_component(m.group(0))
            except ValueError:
                return m.group(0)
        return _PERCENT_RUN.sub(run, t)


def _redact_plain(text: str) -> str:
    if not MIGHT_MATCH.search(text):
        return text
    out = text
    for label, rx, replace in PATTERNS:
        marker = f"[REDACTED:{label}]"
        out = rx.sub(replace if replace is not None else (lambda _m, marker=marker: marker), out)
    return out


class Redactor:
    def __init__(self, paths: Iterable[str] = (), max_depth: int = 32) -> None:
        self.paths = [[s for s in re.sub(r"^\$\.?", "", p).split(".") if s] for p in paths]
        self.max_depth = max_depth

    def redact_text(self, text: str) -> str:
        """Replaces secrets and personal data found anywhere inside a free-text string."""
        # Percent-encoded secrets (`Bearer%20...`, `jane%40corp.example`) are matched after decoding.
        if _PERCENT.search(text):
            decoded = percent_decode(text)
            if decoded != text:
                out = _redact_plain(decoded)
                if out != decoded:
                    return out
        return _redact_plain(text)

    def redact_value(self, value: object) -> object:
        """A redacted deep copy of a JSON-like value (tuples become lists); never mutates it."""
        return self._walk(value, 0, [0] * len(self.paths))

    def _walk(self, value: object, depth: int, pos: list[int]) -> object:
        if isinstance(value, str):
            return self.redact_text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if not isinstance(value, (dict, list, tuple)):
            return self.redact_text(repr(value))
        if depth >= self.max_depth:
            return f"[WARDEN:depth>{self.max_depth}]"
        is_list = not isinstance(value, dict)
        items = enumerate(value) if is_list else value.items()  # type: ignore[union-attr]
        out_list: list[object] = []
        out_dict: dict[str, object] = {}
        for key, child in items:
            skey = str(key)
            next_pos: list[int] = []
            hit = False
            for i, path in enumerate(self.paths):
                p = pos[i]
                if p < 0 or p >= len(path):
                    next_pos.append(-1)
                    continue
                if path[p] == "*" or path[p] == skey:
                    if p + 1 == len(path):
                        hit = True
                    next_pos.append(p + 1)
                else:
                    next_pos.append(-1)
            red = REDACTED if hit or (not is_list and is_sensitive_key(skey)) else self._walk(child, depth + 1, next_pos)
            if is_list:
                out_list.append(red)
            else:
                out_dict[self.redact_text(skey)] = red
        return out_list if is_list else out_dict


DEFAULT_REDACTOR = Redactor()

# -- whole events (core/redact.ts redactEvent, redactJoinKey) ----------------------------------------

JOIN_KEYS = ("correlation_id", "job_id", "workflow_id", "run_id")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}\Z", re.A)
STRUCTURAL = frozenset(("event_id", "ts", "kind", "source", "trace_id", "span_id", "attempt", "duration_ms", "input_digest",
                        "input", "attrs") + JOIN_KEYS)
_PLAIN_ID = re.compile(
    r"^(?:\d+|[0-9A-HJKMNP-TV-Z]{26}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z", _I)
_DIGEST_SUFFIX = re.compile(r"~h:[0-9a-f]{12}\Z", _A)


def _utf8_as_node(text: str) -> bytes:
    """The bytes Node hashes for a JavaScript string: UTF-8, a lone surrogate as U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode("utf-8")


def redact_join_key(value: str, redactor: Redactor = DEFAULT_REDACTOR) -> str:
    """A join key (correlation ID, job ID, workflow/run ID), redacted deterministically: a plain ID
    passes unchanged; one that carries a secret or personal data keeps its redacted text plus a short
    digest of the original (`x:[REDACTED:email]~h:1a2b3c4d5e6f`). Idempotent."""
    if _PLAIN_ID.search(value) or _DIGEST_SUFFIX.search(value):
        return value
    out = redactor.redact_text(value)
    if out == value:
        return value
    digest = hashlib.sha256(_utf8_as_node("warden-join-key\0" + value)).hexdigest()
    return f"{out}~h:{digest[:12]}"


def redact_event(ev: dict[str, Any], redactor: Redactor = DEFAULT_REDACTOR) -> dict[str, Any]:
    """A redacted copy of an event: every string field, `input`, every attrs key, attrs values (a
    value under a sensitive key name replaced whole); join keys stay joinable. Deterministic and
    idempotent; never mutates its argument."""
    out = dict(ev)
    for field, v in ev.items():
        if isinstance(v, str) and field not in STRUCTURAL:
            out[field] = redactor.redact_text(v)
    for k in JOIN_KEYS:
        if isinstance(ev.get(k), str):
            out[k] = redact_join_key(ev[k], redactor)
    out["input"] = None if ev.get("input") is None else redactor.redact_value(ev["input"])
    attrs: dict[str, Any] = {}
    for k, v in (ev.get("attrs") or {}).items():
        k = str(k)
        # A Redis stream entry ID is a position, not data (its digits can pass the card pattern's Luhn check).
        if k == "stream_id" and isinstance(v, str) and _STREAM_ID.match(v):
            attrs[k] = v
            continue
        key = redactor.redact_text(k)
        attrs[key] = REDACTED if is_sensitive_key(k) and v is not None else redactor.redact_text(v) if isinstance(v, str) else v
    out["attrs"] = attrs
    return out

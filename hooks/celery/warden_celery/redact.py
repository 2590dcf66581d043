"""Redaction, a port of core/redact.ts (same key names, same text patterns, same markers), applied to
every string the hook sends, before it leaves the process. Three layers: configured dot paths
(`*` matches any key or index), sensitive key names, and patterns inside any string."""
from __future__ import annotations

import re
from typing import Callable, Iterable

REDACTED = "[REDACTED]"

SENSITIVE_KEY = re.compile(
    r"^(pass(word|wd|phrase)?|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key"
    r"|(access|refresh|id|auth|bearer)[_-]?token|token|authorization|cookie|set-cookie|private[_-]?key"
    r"|ssn|card[_-]?number|cc[_-]?number|cvv|cvc)$",
    re.I,
)


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


# (label, pattern, check, keep_prefix): the order and expressions of core/redact.ts PATTERNS.
# re.ASCII: JavaScript's \b and \d are ASCII-only.
_A = re.ASCII
PATTERNS: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None, bool]] = [
    ("token", re.compile(r"\bBearer\s+[A-Za-z0-9\-._~+/]+=*", re.I | _A), None, False),
    ("api_key", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", _A), None, False),
    ("api_key", re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}", _A), None, False),
    ("api_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", _A), None, False),
    ("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", _A), None, False),
    ("api_key", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}", _A), None, False),
    ("api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b", _A), None, False),
    ("secret", re.compile(r"""\b(?:api[_-]?key|secret|token|password|passwd)\b["']?\s*[:=]\s*["']?[^\s"',;&]+""", re.I | _A), None, True),
    ("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", _A), None, False),
    ("card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b", _A), lambda m: _luhn_valid(re.sub(r"\D", "", m)), False),
]

MIGHT_MATCH = re.compile(r"@|\d(?:[ -]?\d){12}|bearer|eyJ|[spr]k-|AKIA|ASIA|gh[pousr]_|xox|AIza|key|secret|token|passw", re.I | _A)
_SEP = re.compile(r"[:=]")


class Redactor:
    def __init__(self, paths: Iterable[str] = (), max_depth: int = 32) -> None:
        self.paths = [[s for s in re.sub(r"^\$\.?", "", p).split(".") if s] for p in paths]
        self.max_depth = max_depth

    def redact_text(self, text: str) -> str:
        if not MIGHT_MATCH.search(text):
            return text
        out = text
        for label, rx, check, keep_prefix in PATTERNS:
            def repl(m: re.Match[str], label: str = label, check=check, keep_prefix: bool = keep_prefix) -> str:
                s = m.group(0)
                if check and not check(s):
                    return s
                if keep_prefix:
                    sep = _SEP.search(s)
                    cut = sep.start() + 1 if sep else 0
                    return f"{s[:cut]}[REDACTED:{label}]"
                return f"[REDACTED:{label}]"
            out = rx.sub(repl, out)
        return out

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
            red = REDACTED if hit or (not is_list and SENSITIVE_KEY.match(skey)) else self._walk(child, depth + 1, next_pos)
            if is_list:
                out_list.append(red)
            else:
                out_dict[self.redact_text(skey)] = red
        return out_list if is_list else out_dict

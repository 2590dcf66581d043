"""Canonical JSON as core/canonical.ts writes it (RFC 8785: keys sorted by UTF-16 code units, no
whitespace, ECMAScript number forms), and the input digest of core/input.ts."""
from __future__ import annotations

import hashlib
import json
import math


class NotJsonError(ValueError):
    pass


def _utf16_key(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def _number(x: float) -> str:
    """ECMAScript Number::toString of a finite double."""
    if math.isnan(x) or math.isinf(x):
        raise NotJsonError(f"{x} is not allowed in JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    r = repr(abs(x))  # shortest round-trip digits
    mant, _, exp_s = r.partition("e")
    exp = int(exp_s) if exp_s else 0
    ip, _, fp = mant.partition(".")
    all_digits = ip + fp
    lead = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits.strip("0")
    k = len(digits)
    n = len(ip) - lead + exp
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e > 0 else "-") + str(abs(e))
        out = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + es
    return sign + out


def _write(v: object, out: list[str], depth: int) -> None:
    if depth > 1000:
        raise NotJsonError("nested too deeply (cyclic?)")
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))
    elif isinstance(v, int):
        out.append(str(v) if abs(v) < 2**53 else _number(float(v)))
    elif isinstance(v, float):
        out.append(_number(v))
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _write(x, out, depth + 1)
        out.append("]")
    elif isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise NotJsonError(f"object key {k!r} is not a string")
        out.append("{")
        first = True
        for k in sorted(v, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _write(v[k], out, depth + 1)
        out.append("}")
    else:
        raise NotJsonError(f"a {type(v).__name__} has no JSON form")


def canonical_json(value: object) -> str:
    out: list[str] = []
    _write(value, out, 0)
    return "".join(out)


def input_digest(value: object) -> str | None:
    """sha256 of the canonical JSON of the unredacted value; None when it has no JSON form."""
    try:
        return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()
    except (NotJsonError, RecursionError):
        return None

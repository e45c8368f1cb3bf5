"""Value conversions of the mapping language: EDI text in, canonical JSON values out.

Every conversion takes the raw element text and either returns the canonical value or raises
``ConversionError`` (the engine adds field name and position and raises ``MappingError``).
Money and quantities stay decimal *strings*: floats never appear, so ``12.50`` keeps its digits.
"""

from __future__ import annotations

import datetime as _dt
import re
from decimal import Decimal, InvalidOperation

__all__ = ["CONVERSIONS", "DATE_FORMATS", "ConversionError", "to_date", "to_day", "to_decimal", "to_implied2",
           "to_integer", "to_text", "to_upper"]

#: Conversion names a mapping file may use in ``convert = "..."``.
CONVERSIONS = ("text", "upper", "decimal", "implied2", "integer", "date", "datetime")


class ConversionError(ValueError):
    """A value cannot be converted; the message names the value and what was expected."""


def to_text(value: str) -> str | None:
    """Strip surrounding whitespace (fixed-width X12 values are space padded); '' becomes None."""
    value = value.strip()
    return value or None


def to_upper(value: str) -> str | None:
    """``text``, then upper case (for code values partners send in mixed case)."""
    value = value.strip()
    return value.upper() or None


# Sign, digits, one optional decimal mark (already normalised to '.'), digits. No exponent, no
# grouping, no spaces inside: EDI numeric data elements have none, and Decimal() alone would
# accept "1e3", "NaN" and "1_000".
_DECIMAL = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)\Z")


def to_decimal(value: str, decimal_mark: str = ".") -> str | None:
    """Canonical decimal string: '+12,50' -> '12.50' (with a ',' mark), '.5' -> '0.5', '12.' -> '12'.

    The interchange's declared decimal mark and '.' are both accepted (a '.' can never be a
    thousands separator in EDI). Digits are kept as given: no rounding, no float round trip.
    """
    text = value.strip()
    if not text:
        return None
    if text[0] == "+":
        text = text[1:]
    if decimal_mark != "." and decimal_mark in text:
        if "." in text:
            raise ConversionError(f"{value!r} is not a decimal number (it mixes '.' and {decimal_mark!r})")
        text = text.replace(decimal_mark, ".", 1)
    if not _DECIMAL.match(text):
        raise ConversionError(f"{value!r} is not a decimal number")
    try:
        Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes these
        raise ConversionError(f"{value!r} is not a decimal number") from None
    negative = text[0] == "-"
    digits = text[1:] if negative else text
    if digits.startswith("."):
        digits = "0" + digits
    if digits.endswith("."):
        digits = digits[:-1]
    return ("-" + digits) if negative else digits


_INTEGER = re.compile(r"[+-]?\d+\Z")


def to_implied2(value: str, decimal_mark: str = ".") -> str | None:
    """An X12 ``N2`` number (two implied decimals) as a decimal string: '3600' -> '36.00'.

    '-150' -> '-1.50', '5' -> '0.05'. A value with a decimal mark is refused: N2 has none,
    and guessing whether '36.00' means 36.00 or 0.36 would silently change an amount.
    """
    text = value.strip()
    if not text:
        return None
    if not _INTEGER.match(text):
        raise ConversionError(f"{value!r} is not a whole number with two implied decimals (X12 N2)")
    negative = text[0] == "-"
    digits = text.lstrip("+-").rjust(3, "0")
    digits = digits[:-2].lstrip("0").rjust(1, "0") + "." + digits[-2:]
    return ("-" + digits) if negative else digits


def to_integer(value: str) -> int | None:
    """A whole number as a JSON integer; '+007' -> 7. Decimals and exponents are refused."""
    text = value.strip()
    if not text:
        return None
    if not _INTEGER.match(text):
        raise ConversionError(f"{value!r} is not a whole number")
    return int(text)


# Date/time layouts by name. ``CC`` is the century; a 2-digit year (YY) is 2000-2068 for
# 00-68 and 1969-1999 for 69-99 (the POSIX rule Python's %y uses), fixed so results never
# depend on the clock.
_LAYOUTS = {
    "CCYYMMDD": 8,
    "YYMMDD": 6,
    "CCYYMMDDHHMM": 12,
    "CCYYMMDDHHMMSS": 14,
    "YYMMDDHHMM": 10,
    "CCYYMMDD-CCYYMMDD": 17,
    "CCYYMMDDHHMM-CCYYMMDDHHMM": 25,
}

#: Format codes a ``date_format`` (or the element a ``date_format_path`` reads) may hold:
#: EDIFACT 2379 codes, X12 DTM05 qualifiers, and the layout names themselves.
DATE_FORMATS = {
    "101": "YYMMDD", "102": "CCYYMMDD", "201": "YYMMDDHHMM", "203": "CCYYMMDDHHMM",
    "204": "CCYYMMDDHHMMSS", "718": "CCYYMMDD-CCYYMMDD", "719": "CCYYMMDDHHMM-CCYYMMDDHHMM",
    "D6": "YYMMDD", "D8": "CCYYMMDD", "DT": "CCYYMMDDHHMM", "RD8": "CCYYMMDD-CCYYMMDD",
    **{name: name for name in _LAYOUTS},
}

# Without a format, the length decides; 10 digits (YYMMDDHHMM) is too ambiguous to guess.
_BY_LENGTH = {8: "CCYYMMDD", 6: "YYMMDD", 12: "CCYYMMDDHHMM", 14: "CCYYMMDDHHMMSS",
              17: "CCYYMMDD-CCYYMMDD", 25: "CCYYMMDDHHMM-CCYYMMDDHHMM"}


def _year(two: str) -> int:
    yy = int(two)
    return 2000 + yy if yy <= 68 else 1900 + yy


def _iso(value: str, year: int, rest: str, time: str | None) -> str:
    # rest = MMDD[HHMM[SS]]
    try:
        day = _dt.date(year, int(rest[0:2]), int(rest[2:4]))
    except ValueError:
        raise ConversionError(f"{value!r} is not a valid calendar date") from None
    clock = rest[4:] or (time or "")
    if not clock:
        return day.isoformat()
    if len(clock) not in (4, 6) or not clock.isdigit():
        raise ConversionError(f"{value if rest[4:] else time!r} is not a valid time (HHMM or HHMMSS)")
    hour, minute, second = int(clock[0:2]), int(clock[2:4]), int(clock[4:6] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ConversionError(f"{value if rest[4:] else time!r} is not a valid time of day")
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}"


def to_date(value: str, date_format: str | None = None, time: str | None = None) -> str | None:
    """ISO 8601 date ('2026-11-20'), or datetime ('2026-11-20T14:30:00') when a time is present.

    ``date_format`` is a code from DATE_FORMATS (EDIFACT 102/203/..., X12 D8/DT/...); without
    one the layout is inferred from the length. Ranges (718, RD8) give their first date.
    ``time`` is a separate HHMM/HHMMSS[DD] value (X12 DTM03); hundredths of seconds are dropped.
    """
    text = value.strip()
    if not text:
        return None
    if date_format:
        layout = DATE_FORMATS.get(date_format.strip())
        if layout is None:
            raise ConversionError(f"unsupported date format {date_format!r} for {value!r} "
                                  f"(known: {', '.join(sorted(DATE_FORMATS))})")
    else:
        layout = _BY_LENGTH.get(len(text))
        if layout is None:
            raise ConversionError(f"{value!r} is not a date in a known layout (CCYYMMDD, YYMMDD, "
                                  "CCYYMMDDHHMM, CCYYMMDDHHMMSS; or give date_format)")
    if len(text) != _LAYOUTS[layout]:
        raise ConversionError(f"{value!r} does not match date format {layout}")
    if "-" in layout:
        start, _, end = text.partition("-")
        if len(start) != len(end) or not (start.isdigit() and end.isdigit()):
            raise ConversionError(f"{value!r} does not match date format {layout}")
        text = start          # a period: the canonical field holds its first date
    elif not text.isdigit():
        raise ConversionError(f"{value!r} does not match date format {layout}")
    if time is not None:
        time = time.strip()[:6] or None
    if layout.startswith("CC"):
        return _iso(value, int(text[0:4]), text[4:], time)
    return _iso(value, _year(text[0:2]), text[2:], time)


def to_day(value: str, date_format: str | None = None, time: str | None = None) -> str | None:
    """``to_date`` without the time of day: always 'YYYY-MM-DD' (canonical dates are days).

    A time in the value (203, 204...) or in ``time`` is still checked, then dropped.
    """
    iso = to_date(value, date_format, time)
    return iso[:10] if iso else None

"""The EDI parts of a deployment: gateway.toml [edi] (who we are) and a partner's [edi] and [validation] tables.

Read with config.py's ``_Reader`` so problems come out as ``file: key: problem`` lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .edi.model import Party

if TYPE_CHECKING:
    from .config import _Reader

FORMATS = ("edifact", "x12")
X12_ACKS = ("997", "999")
TA1_CHOICES = ("errors", "always", "requested")
DUPLICATE_ACTIONS = ("reject", "process")
DAY = 86400.0


def parse_identifier(value: str) -> Party:
    """``QUALIFIER:ID`` (or a bare ``ID``) as a Party."""
    qualifier, sep, ident = value.rpartition(":")
    return Party(ident, qualifier if sep else "")


@dataclass(frozen=True)
class EdiSettings:
    """gateway.toml [edi]: our own interchange identifiers, per format, and defaults for every partner."""

    identifiers: dict[str, str] = field(default_factory=dict)   # format -> "QUALIFIER:ID" we send as
    duplicate_window_days: float = 30.0
    expect_ack_minutes: float = 0.0           # 0: we expect no acknowledgment for what we send


@dataclass(frozen=True)
class PartnerEdi:
    """A partner's [edi] table: acknowledgments both ways, duplicate interchanges, the envelopes we write."""

    acknowledge: bool = False                 # send CONTRL / 997 / 999 back for what they send
    x12_acknowledgment: str = "997"           # 997 | 999 (999 only answers 005010 groups; older get a 997)
    ta1: str = "errors"                       # errors (the envelope itself is at fault) | always | requested (ISA14)
    acknowledge_accepted: bool = True         # False: acknowledge only interchanges with errors
    ack_channel: str = ""                     # queue target for acks; default: the partner's first channel
    expect_ack_minutes: float | None = None   # None: gateway.toml's default
    duplicates: str = "reject"                # what a repeated interchange control number does
    duplicate_window_days: float | None = None
    format: str = ""                          # what we write to them; default: the first format in [identifiers]
    our_ids: dict[str, str] = field(default_factory=dict)       # overrides gateway.toml [edi] identifiers
    syntax: str = ""                          # EDIFACT UNB syntax identifier (default UNOC:3); X12 ISA12
    test: bool = False                        # mark what we send as test interchanges
    groups: bool = False                      # EDIFACT: wrap messages in UNG/UNE
    rules: Any = None                         # gateway.edi.validate.PartnerRules from [validation]
    strict: bool = False                      # [validation] strict: unknown segments are errors


def read_edi_settings(r: "_Reader", data: dict) -> EdiSettings:
    r.unknown(data, {"identifiers", "duplicate_window_days", "expect_ack_minutes"}, "edi.")
    return EdiSettings(
        identifiers=_identifiers(r, r.table(data, "identifiers", "edi."), "edi.identifiers."),
        duplicate_window_days=r.value(data, "duplicate_window_days", float, 30.0, "edi.", minimum=0),
        expect_ack_minutes=r.value(data, "expect_ack_minutes", float, 0.0, "edi.", minimum=0),
    )


def _identifiers(r: "_Reader", table: dict, prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for fmt, value in table.items():
        if fmt not in FORMATS:
            r.problem(prefix + fmt, "must be edifact or x12")
        elif not isinstance(value, str) or not parse_identifier(value).id:
            r.problem(prefix + fmt, "must be 'QUALIFIER:ID' (e.g. '14:4012345000009' or 'ZZ:MYCOMPANY')")
        else:
            out[fmt] = value
    return out


def _choice(r: "_Reader", data: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = r.value(data, key, str, default, "edi.")
    if value not in choices:
        r.problem("edi." + key, f"must be one of {', '.join(choices)}, got {value!r}")
        return default
    return value


def read_partner_edi(r: "_Reader", data: dict, validation: dict) -> PartnerEdi:
    """The partner's [edi] and [validation] tables (both optional)."""
    r.unknown(data, {"acknowledge", "x12_acknowledgment", "ta1", "acknowledge_accepted", "ack_channel",
                     "expect_ack_minutes", "duplicates", "duplicate_window_days", "format", "our_ids", "syntax",
                     "test", "groups"}, "edi.")
    fmt = r.value(data, "format", str, "", "edi.")
    if fmt and fmt not in FORMATS:
        r.problem("edi.format", f"must be edifact or x12, got {fmt!r}")
        fmt = ""
    rules, strict = None, False
    if validation:
        from .edi.validate import parse_rules   # the validator's own rule language
        rules, problems = parse_rules(validation, r.file, "validation.")
        r.problems.extend(problems)
        strict = bool(getattr(rules, "strict", False))
    return PartnerEdi(
        acknowledge=r.value(data, "acknowledge", bool, False, "edi."),
        x12_acknowledgment=_choice(r, data, "x12_acknowledgment", X12_ACKS, "997"),
        ta1=_choice(r, data, "ta1", TA1_CHOICES, "errors"),
        acknowledge_accepted=r.value(data, "acknowledge_accepted", bool, True, "edi."),
        ack_channel=r.value(data, "ack_channel", str, "", "edi."),
        expect_ack_minutes=r.value(data, "expect_ack_minutes", float, None, "edi.", minimum=0),
        duplicates=_choice(r, data, "duplicates", DUPLICATE_ACTIONS, "reject"),
        duplicate_window_days=r.value(data, "duplicate_window_days", float, None, "edi.", minimum=0),
        format=fmt,
        our_ids=_identifiers(r, r.table(data, "our_ids", "edi."), "edi.our_ids."),
        syntax=r.value(data, "syntax", str, "", "edi."),
        test=r.value(data, "test", bool, False, "edi."),
        groups=r.value(data, "groups", bool, False, "edi."),
        rules=rules,
        strict=strict,
    )

"""Field-spec pieces every mapping language (EDI paths, XPath) shares: alternatives and the common options."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["shared_options", "spec_items"]


def spec_items(problem: Callable[[str, str], None], spec: Any, key: str, many: bool,
               what: str) -> list[tuple[str | dict, str, bool]]:
    """A field spec's alternatives as ``(item, key, is_last)``; shape problems go to ``problem(key, text)``.

    Shared by every mapping language: a ``what`` ("a path string", "an XPath string"), a table,
    or a list of those tried in order (a list field takes exactly one).
    """
    if isinstance(spec, list):
        if not spec:
            problem(key, "an empty list: give at least one alternative")
            return []
        if many and len(spec) > 1:
            problem(key, "a list field takes one spec, not alternatives")
        items = [(item, f"{key}[{i}]", i == len(spec)) for i, item in enumerate(spec, 1)]
    else:
        items = [(spec, key, True)]
    usable = []
    for item, item_key, last in items:
        if isinstance(item, (str, dict)):
            usable.append((item, item_key, last))
        else:
            problem(item_key, f"must be {what}, a table, or a list of those (alternatives)")
    return usable


def shared_options(loader: Any, alt: Any, spec: dict, sub: Callable[[str], str], convert: str, last: bool,
                   many: bool) -> None:
    """The field options every mapping language shares: codes, strict_codes, required, default.

    ``loader`` has ``codes`` (the file's [codes.*] tables), ``problem``, ``flag`` and ``default``.
    """
    if "codes" in spec:
        codes = spec["codes"]
        if isinstance(codes, str):
            alt.codes = loader.codes.get(codes)
            if alt.codes is None:
                loader.problem(sub("codes"), f"no [codes.{codes}] table in this file")
        elif isinstance(codes, dict) and all(isinstance(v, str) for v in codes.values()):
            alt.codes = dict(codes)
        else:
            loader.problem(sub("codes"), "must be a table of code = \"value\" strings, "
                           "or the name of a [codes.NAME] table")
        if convert not in ("text", "upper"):
            loader.problem(sub("codes"), "a code list applies to text values (convert = \"text\" or \"upper\")")
    alt.strict = loader.flag(spec, "strict_codes", sub("strict_codes"))
    if alt.strict and "codes" not in spec:
        loader.problem(sub("strict_codes"), "needs 'codes'")
    alt.required = loader.flag(spec, "required", sub("required"))
    for option in ("required", "default"):
        if option in spec and not last:
            loader.problem(sub(option), f"only the last alternative may say '{option}' "
                           "(the alternatives after it would never be tried)")
    if "default" in spec:
        loader.default(alt, spec["default"], convert, sub("default"), many)

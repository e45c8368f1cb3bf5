"""Declarative mapping: TOML mapping files turn one EDI message into a canonical document dict.

``load_mappings(dir)`` validates every file once at start (one ConfigError listing every
problem); ``MappingSet.find`` picks the mapping for a message; ``Mapping.apply`` maps it.
The language is documented for users in ``mappings/README.md``.
"""

from .engine import DOCUMENT_SHAPES, Mapping, MappingSet
from .loader import load_mappings

__all__ = ["DOCUMENT_SHAPES", "Mapping", "MappingSet", "load_mappings"]

"""Declarative mapping: TOML mapping files turn one EDI message into a canonical document dict.

``load_mappings(dir)`` validates every file once at start (one ConfigError listing every
problem), each through the loader ``LOADERS`` registers for its kind; ``MappingSet.find`` picks
the mapping for a message; ``Mapping.apply`` maps it.
The language is documented for users in ``mappings/README.md``.
"""

from .engine import DOCUMENT_SHAPES, Mapping, MappingSet
from .loader import LOADERS, load_mappings, mapping_kind
from .outbound import load_outbound
from .xml_loader import load_xml

# The other kinds of mapping file register here (their loaders build on loader.py's helpers).
LOADERS.update({"outbound": load_outbound, "xml": load_xml})

__all__ = ["DOCUMENT_SHAPES", "LOADERS", "Mapping", "MappingSet", "load_mappings", "mapping_kind"]

"""docs/config.md is generated from the schema: it must match, and every key must say what it does."""
from __future__ import annotations

from pathlib import Path

from graphrec import config_docs
from graphrec.models import MODELS
from graphrec.schema import section_classes

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_config_docs_match_the_schema():
    assert DOCS.read_text() == config_docs.render(), \
        "docs/config.md is stale: run `python -m graphrec.config_docs > docs/config.md`"


def test_every_key_has_a_description():
    classes = list(section_classes().values()) + [m.config_class for m in MODELS.values()
                                                  if m.__module__.startswith("graphrec.")]
    missing = [f"{cls.__name__}.{name}" for cls in classes for name, field in cls.model_fields.items()
               if name != "base_dir" and not field.description]
    assert not missing, f"keys without a description: {missing}"

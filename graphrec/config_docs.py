"""docs/config.md generated from the schema's descriptions and every registered model's keys.

`python -m graphrec.config_docs > docs/config.md` rewrites it; tests/test_config_docs.py fails when it drifts.
"""
from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .models import MODELS
from .schema import ModelConfig, section_classes

HEADER = """# Configuration keys

Generated from the schema (`python -m graphrec.config_docs > docs/config.md`); every key's description lives beside
its definition in graphrec/schema.py or in its model's config class.

Layering: defaults < YAML file < `--set key.path=value` (values parsed as YAML: `--set eval.topk=[10,20]`).
Unknown keys, wrong types and out-of-range values stop with one line naming the key and the fix.
"""


def _default(field) -> str:
    """A field's default as YAML-ish text."""
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "section"
    return "none" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else f"`{value}`"


def _rows(cls: type[BaseModel], prefix: str, skip: set[str] = frozenset()) -> list[str]:
    rows = []
    for name, field in cls.model_fields.items():
        if name in skip or name == "base_dir":
            continue
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            continue  # a sub-section: listed under its own heading
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {_default(field)} | {text} |")
    return rows


def _nested_rows(cls: type[BaseModel], prefix: str) -> list[str]:
    """Rows of a model's nested sections (e.g. model.diffusion.*), with the defaults that model gives them."""
    rows = []
    for name, field in cls.model_fields.items():
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            continue
        defaults = field.default_factory() if field.default_factory is not None else field.default
        for key, sub in ann.model_fields.items():
            value = getattr(defaults, key)
            shown = "none" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else f"`{value}`"
            rows.append(f"| `{prefix}{name}.{key}` | {shown} | {(sub.description or '').replace('|', chr(92) + '|')} |")
    return rows


def render() -> str:
    """The whole docs/config.md text."""
    out = [HEADER]
    for path, cls in section_classes().items():
        out += [f"\n## {path or 'top level'}\n", "| key | default | meaning |", "|---|---|---|"]
        out += _rows(cls, f"{path}." if path else "")
    out += ["\n## model (keys of every model)\n", "| key | default | meaning |", "|---|---|---|"]
    out += _rows(ModelConfig, "model.")
    for name, model in sorted(MODELS.items()):
        if not model.__module__.startswith("graphrec."):
            continue  # models registered by tests or user code
        out += [f"\n## model: {name}\n", f"{model.summary}. Batch kind: {model.batch_kind}; tasks: "
                f"{', '.join(model.tasks)}.\n"]
        rows = _rows(model.config_class, "model.", skip=set(ModelConfig.model_fields))
        rows += _nested_rows(model.config_class, "model.")
        out += ["| key | default | meaning |", "|---|---|---|", *rows] if rows else ["No keys beyond the common ones."]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")

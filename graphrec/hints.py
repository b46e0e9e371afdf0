"""Error hints for config mistakes: aliases from other frameworks, did-you-mean, and where a key came from."""
from __future__ import annotations

import difflib
import re
from typing import Optional

import yaml
from pydantic import BaseModel, ValidationError

from .schema import section_classes


# Names other tools use for graphrec's keys: only ever used to suggest the right key, never accepted,
# so that each setting has one spelling.
ALIASES: dict[str, dict[str, str]] = {
    "": {"out_dir": "output_dir", "output": "output_dir", "runs_dir": "output_dir", "save_dir": "output_dir",
         "random_seed": "seed", "gpu": "device", "experiment": "name", "run_name": "name", "dataset": "data",
         "optim": "train", "training": "train", "evaluation": "eval", "wandb": "tracking", "splits": "split"},
    "data": {"dataset": "path", "dir": "path", "data_path": "path", "data_dir": "path", "sep": "delimiter",
             "separator": "delimiter", "field_separator": "delimiter", "min_rate": "min_rating",
             "threshold": "min_rating", "rating_threshold": "min_rating", "k_core": "kcore", "core": "kcore",
             "skip_bad": "skip_bad_lines", "has_header": "header", "type": "format"},
    "split": {"type": "method", "strategy": "method", "valid": "valid_ratio", "test": "test_ratio",
              "val_ratio": "valid_ratio", "validation_ratio": "valid_ratio"},
    "train": {"learning_rate": "lr", "learningrate": "lr", "weight_decay": "reg", "decay": "reg", "l2": "reg",
              "l2_reg": "reg", "reg_weight": "reg", "regs": "reg", "lambda": "reg", "epoch": "epochs",
              "num_epochs": "epochs", "n_epochs": "epochs", "max_epochs": "epochs", "max_epoch": "epochs",
              "train_batch_size": "batch_size", "batch": "batch_size", "bs": "batch_size",
              "neg_num": "num_negatives", "negatives": "num_negatives", "num_neg": "num_negatives",
              "neg_samples": "num_negatives", "train_neg_sample_num": "num_negatives",
              "candidate_num": "negative_candidates", "dns_candidates": "negative_candidates",
              "candidates": "negative_candidates",
              "scheduler": "lr_schedule", "lr_scheduler": "lr_schedule", "schedule": "lr_schedule",
              "eta_min": "lr_min", "min_lr": "lr_min", "milestones": "lr_milestones", "gamma": "lr_gamma",
              "stopping_step": "patience", "early_stop": "patience", "early_stopping": "patience",
              "eval_step": "eval_every", "eval_interval": "eval_every", "valid_metric": "select_metric",
              "metric": "select_metric", "clip_grad_norm": "grad_clip", "max_grad_norm": "grad_clip",
              "optim": "optimizer", "num_threads": "threads", "tqdm": "progress"},
    "eval": {"k": "topk", "topks": "topk", "top_k": "topk", "ks": "topk", "metric": "metrics",
             "eval_batch_size": "max_score_elements", "chunk_size": "max_score_elements"},
    "model": {"n_layers": "num_layers", "layers": "num_layers", "layer": "num_layers", "n_layer": "num_layers",
              "embedding_size": "embedding_dim", "emb_dim": "embedding_dim", "embed_dim": "embedding_dim",
              "dim": "embedding_dim", "latent_dim": "embedding_dim", "emb_size": "embedding_dim",
              "recdim": "embedding_dim", "model": "name", "type": "name", "model_name": "name"},
    "tracking": {"wandb_mode": "mode", "wandb_project": "project", "wandb_entity": "entity"},
}


def _section_fields(cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names valid at `loc` (a path of keys) inside `cls`."""
    for key in loc[:-1]:
        field = cls.model_fields.get(str(key))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        cls = ann
    return [name for name in cls.model_fields if name != "base_dir"]


def _all_sections(model_fields: list[str]) -> dict[str, list[str]]:
    """Every section path ('' for the top level) -> its keys, with the current model's keys under 'model'."""
    out = {path: [n for n in cls.model_fields if n != "base_dir"] for path, cls in section_classes().items()}
    out["model"] = model_fields
    return out


def suggest_key(section: str, word: str, known: list[str], model_fields: Optional[list[str]] = None) -> str:
    """A did-you-mean for an unknown key `word` in `section` ('' = top level, 'train', 'data.synthetic', ...)."""
    join = lambda sec, key: f"{sec}.{key}" if sec else key  # noqa: E731
    aliases = {a: t for a, t in ALIASES.get(section.split(".")[0] if section else "", {}).items() if t in known}
    low = word.lower()
    if low in known:
        return f", did you mean '{join(section, low)}'?"
    if low in aliases:
        return f", did you mean '{join(section, aliases[low])}'?"
    close = difflib.get_close_matches(low, known + list(aliases), n=1, cutoff=0.6)
    if close:
        return f", did you mean '{join(section, aliases.get(close[0], close[0]))}'?"
    # The key may belong to another section (`lr` at the top level, `topk` under data).
    for other, keys in _all_sections(model_fields or []).items():
        if other == section:
            continue
        other_aliases = ALIASES.get(other.split(".")[0] if other else "", {})
        target = low if low in keys else other_aliases.get(low)
        if target in keys and (other or target not in ("data", "model")):
            return f", did you mean '{join(other, target)}' (it belongs in the {other or 'top'} section)?"
    return f"; known keys here: {', '.join(known)}"


class Origin:
    """Where each key of a raw config came from (a YAML line or a --set), to point error messages at it.

    A --set replaces everything below its key path, so a key at or under an overridden path is blamed on the last
    such --set, never on the YAML line it replaced.
    """

    def __init__(self, source: str = "", lines: Optional[dict[tuple, int]] = None,
                 overrides: Optional[list[tuple[tuple, str]] | dict[tuple, str]] = None) -> None:
        self.source, self.lines = source, lines or {}
        pairs = overrides.items() if isinstance(overrides, dict) else (overrides or [])
        self.overrides = [(tuple(str(p) for p in path), text) for path, text in pairs]  # in the order applied

    def override(self, path: tuple) -> Optional[str]:
        """The text of the last --set that wrote `path` or a section above it, or None."""
        path = tuple(str(p) for p in path)
        hits = [text for key, text in self.overrides if path[:len(key)] == key]
        return hits[-1] if hits else None

    def where(self, path: tuple = (), *causes: tuple) -> str:
        """'--set a.b=c: ' when the key path came from a --set; else 'FILE line N: ' of the key (or its closest
        enclosing key), after '--set x=y: ' for each --set below the key and for each related key path in `causes`
        that a --set gave; else 'FILE: '."""
        text = self.override(path)
        if text is not None:
            return f"--set {text}: "
        path = tuple(str(p) for p in path)
        below = [t for key, t in self.overrides if len(key) > len(path) and key[:len(path)] == path]
        blame = "".join(f"--set {t}: " for t in dict.fromkeys([self.override(c) for c in causes] + below)
                        if t is not None)
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return f"{blame}{self.source} line {self.lines[path[:n]]}: "
        return f"{blame}{self.source}: " if self.source else blame


def blame(cfg: BaseModel, path: tuple, *causes: tuple) -> str:
    """Origin.where for a key of a config built by build_config ('' when it was built without an origin)."""
    origin = getattr(cfg, "_origin", None)
    return origin.where(path, *causes) if origin is not None else ""


def key_lines(text: str) -> dict[tuple, int]:
    """Line number (1-based) of every mapping key path in a YAML text, e.g. ('train', 'lr') -> 12."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[tuple, int] = {}

    def walk(node, prefix: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    path = prefix + (str(key_node.value),)
                    out.setdefault(path, key_node.start_mark.line + 1)
                    walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                out.setdefault(prefix + (str(index),), item.start_mark.line + 1)
                walk(item, prefix + (str(index),))
    walk(root, ())
    return out


def key_text(path: tuple) -> str:
    """('eval', 'metrics', 1) -> 'eval.metrics[1]'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _flattened_model_key(word: str, value, model_fields: Optional[list[str]]) -> str:
    """A did-you-mean for a section graphrec spells as model keys: `ssl: {loss: x}` -> 'model.ssl_loss', or ''."""
    if not isinstance(value, dict) or not value or not model_fields:
        return ""
    keys = [f"{word}_{sub}" for sub in value]
    if not all(key in model_fields for key in keys):
        return ""
    return f", did you mean {', '.join(f'model.{key}' for key in keys)} (this model's keys for it)?"


def validation_message(err: ValidationError, cls: type[BaseModel], prefix: str, origin: Origin,
                       model_fields: Optional[list[str]] = None, model_name: str = "",
                       key_owners: Optional[dict[str, list[str]]] = None, causes: tuple = ()) -> str:
    """Turn the first pydantic error into one line naming the key (and its YAML line or --set) and the fix;
    `causes` are related key paths (e.g. model.name for a model key) named too when a --set gave them."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    path = ((prefix,) if prefix else ()) + loc
    key = key_text(path)
    where = origin.where(path, *causes)
    if first["type"] == "extra_forbidden":
        known = _section_fields(cls, tuple(str(p) for p in loc))
        section = ".".join(str(p) for p in path[:-1])
        hint = _flattened_model_key(str(path[-1]), first.get("input"), model_fields) or suggest_key(
            section, str(path[-1]), known, model_fields)
        if prefix == "model" and hint.startswith(";"):
            owners = (key_owners or {}).get(str(path[-1]), [])
            hint = f"; model {model_name} has no such key (its keys: {', '.join(known)})" + (
                f"; '{path[-1]}' is a key of model {', '.join(owners)}" if owners else "")
        return f"{where}unknown key '{key}'{hint}"
    got = first.get("input")
    msg = first["msg"].replace("Input should be", "expected").replace("Value error, ", "")
    hint = ""
    if first["type"] == "literal_error":
        choices = re.findall(r"'([^']*)'", str(first.get("ctx", {}).get("expected", "")))
        close = difflib.get_close_matches(str(got), choices, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
    if first["type"] in ("model_type", "dict_type") and not isinstance(got, dict):
        hint = f"; '{key}' is a section: write it as a mapping of keys, e.g. {key}: {{...}}"
    shown = got if not isinstance(got, (dict, list)) or len(repr(got)) < 80 else type(got).__name__
    where_key = f"'{key}'" if key else "the config"
    return f"{where}bad value for {where_key}: {msg} (got {shown!r}){hint}"

"""W&B sweep YAML -> a validated SweepSpec: method, metric, distributions of graphrec config keys, base experiment."""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ..config import _read_yaml_text, config_from_file
from ..hints import key_lines
from ..errors import GraphrecError

METHODS = ("grid", "random", "bayes")
GOALS = ("maximize", "minimize")
# W&B's top-level keys; `base` and `seed` are graphrec's (stripped before a sweep goes to W&B).
TOP_KEYS = ("method", "metric", "parameters", "early_terminate", "name", "description", "program", "command",
            "project", "entity", "run_cap", "base", "seed")
REQUIRED = object()
# Every W&B distribution with its keys (REQUIRED or the default W&B fills in).
DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "constant": {"value": REQUIRED},
    "categorical": {"values": REQUIRED},
    "categorical_w_probabilities": {"values": REQUIRED, "probabilities": REQUIRED},
    "int_uniform": {"min": REQUIRED, "max": REQUIRED},
    "uniform": {"min": REQUIRED, "max": REQUIRED},
    "q_uniform": {"min": REQUIRED, "max": REQUIRED, "q": 1.0},
    "log_uniform": {"min": REQUIRED, "max": REQUIRED},
    "log_uniform_values": {"min": REQUIRED, "max": REQUIRED},
    "q_log_uniform": {"min": REQUIRED, "max": REQUIRED, "q": 1.0},
    "q_log_uniform_values": {"min": REQUIRED, "max": REQUIRED, "q": 1.0},
    "inv_log_uniform": {"min": REQUIRED, "max": REQUIRED},
    "inv_log_uniform_values": {"min": REQUIRED, "max": REQUIRED},
    "normal": {"mu": 0.0, "sigma": 1.0},
    "q_normal": {"mu": 0.0, "sigma": 1.0, "q": 1.0},
    "log_normal": {"mu": 0.0, "sigma": 1.0},
    "q_log_normal": {"mu": 0.0, "sigma": 1.0, "q": 1.0},
    "beta": {"a": 1.0, "b": 1.0},
    "q_beta": {"a": 1.0, "b": 1.0, "q": 1.0},
}
GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
LOG_SCALED = ("log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values", "inv_log_uniform",
              "inv_log_uniform_values", "log_normal", "q_log_normal")


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f", did you mean '{close[0]}'?" if close else f"; choose one of {', '.join(choices)}"


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (YAML and JSON write those)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value


@dataclass(frozen=True)
class Dimension:
    """One swept config key and its W&B distribution; values come from quantiles u in [0, 1] (W&B's ppf)."""

    key: str
    distribution: str
    params: dict[str, Any]
    line: int = 0

    @property
    def is_log(self) -> bool:
        """Whether the values spread on a log scale (plots use a log axis)."""
        return self.distribution in LOG_SCALED

    @property
    def is_categorical(self) -> bool:
        """Whether the values are a list to choose from rather than numbers on an axis."""
        return self.distribution in ("categorical", "categorical_w_probabilities")

    def value_at(self, u: float) -> Any:
        """The value at quantile `u` of the distribution, with W&B's meaning of each distribution and of q."""
        from scipy import stats
        p = self.params
        u = min(max(float(u), 1e-12), 1 - 1e-12)
        kind = self.distribution
        if kind == "constant":
            return p["value"]
        if kind == "categorical":
            return p["values"][min(int(u * len(p["values"])), len(p["values"]) - 1)]
        if kind == "categorical_w_probabilities":
            cdf = [sum(p["probabilities"][: i + 1]) / sum(p["probabilities"]) for i in range(len(p["values"]))]
            return p["values"][next(i for i, c in enumerate(cdf) if u <= c or i == len(cdf) - 1)]
        if kind == "int_uniform":
            return int(p["min"] + min(int(u * (p["max"] - p["min"] + 1)), p["max"] - p["min"]))
        base = kind[2:] if kind.startswith("q_") else kind
        if base == "uniform":
            value = p["min"] + u * (p["max"] - p["min"])
        elif base == "log_uniform":
            value = math.exp(p["min"] + u * (p["max"] - p["min"]))
        elif base in ("log_uniform_values", "inv_log_uniform_values"):
            value = math.exp(math.log(p["min"]) + u * (math.log(p["max"]) - math.log(p["min"])))
        elif base == "inv_log_uniform":
            value = math.exp(-(p["min"] + (1 - u) * (p["max"] - p["min"])))
        elif base == "normal":
            value = stats.norm.ppf(u, loc=p["mu"], scale=p["sigma"])
        elif base == "log_normal":
            value = stats.lognorm.ppf(u, s=p["sigma"], scale=math.exp(p["mu"]))
        else:  # beta
            value = stats.beta.ppf(u, p["a"], p["b"])
        value = float(value)
        if kind.startswith("q_"):
            value = round(value / p["q"]) * p["q"]
            return int(value) if isinstance(p["q"], int) else float(value)
        return value

    def grid_values(self) -> list[Any]:
        """Every value a grid search takes, in order (constant, categorical, int_uniform, q_uniform)."""
        p = self.params
        if self.distribution == "constant":
            return [p["value"]]
        if self.distribution == "categorical":
            return list(p["values"])
        if self.distribution == "int_uniform":
            return list(range(p["min"], p["max"] + 1))
        steps = int(math.floor((p["max"] - p["min"]) / p["q"] + 1e-9))
        values = [p["min"] + i * p["q"] for i in range(steps + 1)]
        return [int(v) if isinstance(p["q"], int) and isinstance(p["min"], int) else round(v, 12) for v in values]

    def check_values(self) -> list[Any]:
        """Values that stand for the whole range when checking types against the config: every listed value,
        else the ends and the middle."""
        if self.distribution in ("categorical", "categorical_w_probabilities"):
            return list(self.params["values"])
        if self.distribution == "constant":
            return [self.params["value"]]
        return list(dict.fromkeys(_plain(self.value_at(u)) for u in (0.0, 0.5, 1.0)))


@dataclass(frozen=True)
class Hyperband:
    """W&B's hyperband early termination: brackets at min_iter * eta^k (or max_iter / eta^k, s of them)
    validation evaluations."""

    eta: float = 3.0
    min_iter: Optional[int] = None
    max_iter: Optional[int] = None
    s: Optional[float] = None
    strict: bool = True

    def brackets(self, longest: int) -> list[int]:
        """Bracket iterations (1-based counts of logged metric values) up to `longest`."""
        if self.min_iter is not None:
            out, band = [], float(self.min_iter)
            while int(band) <= longest:
                out.append(int(band))
                band *= self.eta
            return out
        out, band = [], float(self.max_iter)
        for _ in range(int(self.s)):
            band /= self.eta
            if band < 1:
                break
            out.append(int(band))
        return sorted(out)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: how to propose (method, dimensions, seed), what to rank by, and the experiment it varies."""

    path: Path
    raw: dict
    method: str
    metric: str
    goal: str
    base: Path
    dimensions: list[Dimension]
    constants: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    hyperband: Optional[Hyperband] = None
    target: Optional[float] = None

    @property
    def name(self) -> str:
        """The sweep's name (its `name:` key, else the file's stem)."""
        return str(self.raw.get("name") or self.path.stem)

    def better(self, a: float, b: float) -> bool:
        """Whether metric value `a` beats `b` under the goal."""
        return a > b if self.goal == "maximize" else a < b

    def select_metric(self) -> str:
        """train.select_metric that makes each run keep its checkpoint by the sweep's metric."""
        return self.metric.split("/", 1)[1]

    def wandb_config(self) -> dict:
        """The sweep as W&B's server takes it: graphrec's own keys (base, seed) removed."""
        return {k: v for k, v in self.raw.items() if k not in ("base", "seed")}


def format_value(value: Any) -> str:
    """A value as `--set` text that YAML reads back as the same value (1e-05 -> '1.0e-05', lists in flow style)."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True).strip()
    return text[:-3].strip() if text.endswith("...") else text


def set_args(params: dict[str, Any]) -> list[str]:
    """{'train.lr': 0.001} -> ['train.lr=0.001'] for config_from_file / --set."""
    return [f"{key}={format_value(value)}" for key, value in params.items()]


def _flatten(parameters: dict, prefix: str, lines: dict[tuple, int], where: tuple) -> dict[str, tuple[dict, int]]:
    """W&B's nested `parameters:` blocks -> dotted keys, each with its spec and YAML line."""
    out = {}
    for name, spec in parameters.items():
        key = f"{prefix}{name}"
        path = where + (str(name),)
        if isinstance(spec, dict) and set(spec) == {"parameters"} and isinstance(spec["parameters"], dict):
            out.update(_flatten(spec["parameters"], f"{key}.", lines, path + ("parameters",)))
        else:
            out[key] = (spec, lines.get(path, 0))
    return out


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GraphrecError(f"{where}'{key}' must be a number, not {value!r}")
    return value


def _dimension(where: str, key: str, spec: Any, line: int) -> Dimension:
    """One parameter's spec -> Dimension, inferring the distribution as W&B does; one-line errors."""
    if not isinstance(spec, dict):
        raise GraphrecError(f"{where}parameter '{key}' must be a mapping such as {{values: [...]}}, "
                            f"{{value: ...}} or {{distribution: uniform, min: ..., max: ...}}, not {spec!r}")
    kind = spec.get("distribution")
    if kind is None:
        if "value" in spec:
            kind = "constant"
        elif "values" in spec:
            kind = "categorical_w_probabilities" if "probabilities" in spec else "categorical"
        elif "min" in spec and "max" in spec:
            both_int = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            kind = "int_uniform" if both_int else "uniform"
        else:
            raise GraphrecError(f"{where}parameter '{key}' needs value, values, or min and max (with an optional "
                                "distribution)")
    if kind not in DISTRIBUTIONS:
        raise GraphrecError(f"{where}parameter '{key}': unknown distribution '{kind}'"
                            f"{_did_you_mean(kind, DISTRIBUTIONS)}")
    allowed = DISTRIBUTIONS[kind]
    for name in spec:
        if name != "distribution" and name not in allowed:
            raise GraphrecError(f"{where}parameter '{key}': distribution {kind} has no key '{name}'"
                                f"{_did_you_mean(name, allowed)}")
    params = {}
    for name, default in allowed.items():
        if name not in spec and default is REQUIRED:
            raise GraphrecError(f"{where}parameter '{key}': distribution {kind} needs '{name}'")
        params[name] = spec.get(name, default)
    if "values" in params and (not isinstance(params["values"], list) or not params["values"]):
        raise GraphrecError(f"{where}parameter '{key}': values must be a non-empty list, e.g. values: [1, 2]")
    if "probabilities" in params:
        probs = params["probabilities"]
        if not isinstance(probs, list) or len(probs) != len(params["values"]) or \
                any(_number(where, f"{key}.probabilities", p) < 0 for p in probs) or sum(probs) <= 0:
            raise GraphrecError(f"{where}parameter '{key}': probabilities must be one non-negative number per "
                                "value, not all 0")
    for name in ("min", "max", "q", "mu", "sigma", "a", "b"):
        if name in params:
            _number(where, f"{key}.{name}", params[name])
    if kind == "int_uniform" and not all(isinstance(params[k], int) for k in ("min", "max")):
        raise GraphrecError(f"{where}parameter '{key}': int_uniform needs integer min and max, not "
                            f"{params['min']!r} and {params['max']!r}")
    if "min" in params and params["min"] > params["max"]:
        raise GraphrecError(f"{where}parameter '{key}': min {params['min']} > max {params['max']}; swap them")
    if kind.endswith("_values") and params["min"] <= 0:
        raise GraphrecError(f"{where}parameter '{key}': {kind} needs min > 0 (a log scale), not {params['min']}")
    for name in ("q", "sigma"):
        if name in params and params[name] <= 0:
            raise GraphrecError(f"{where}parameter '{key}': {name} must be > 0, not {params[name]}")
    return Dimension(key, kind, params, line)


def _metric(path: Path, raw: dict, lines: dict) -> tuple[str, str, Optional[float]]:
    where = f"{path} line {lines.get(('metric',), 0)}: "
    metric = raw.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        raise GraphrecError(f"{path}: the sweep needs metric: {{name: valid/recall@20, goal: maximize}}")
    for key in metric:
        if key not in ("name", "goal", "target"):
            raise GraphrecError(f"{where}unknown key 'metric.{key}'{_did_you_mean(key, ('name', 'goal', 'target'))}")
    if "goal" not in metric:
        raise GraphrecError(f"{where}metric.goal is missing (W&B would minimize); add goal: maximize for "
                            "ranking metrics")
    if metric["goal"] not in GOALS:
        raise GraphrecError(f"{where}unknown metric.goal '{metric['goal']}'{_did_you_mean(metric['goal'], GOALS)}")
    if not metric["name"].startswith("valid/"):
        raise GraphrecError(f"{where}metric.name '{metric['name']}': sweeps select on the validation split "
                            "(protocols.md); use valid/<metric>@<K>, e.g. valid/recall@20")
    target = metric.get("target")
    return metric["name"], metric["goal"], None if target is None else _number(where, "metric.target", target)


def _hyperband(path: Path, raw: dict, lines: dict) -> Optional[Hyperband]:
    spec = raw.get("early_terminate")
    if spec is None:
        return None
    where = f"{path} line {lines.get(('early_terminate',), 0)}: "
    keys = ("type", "min_iter", "max_iter", "s", "eta", "strict")
    if not isinstance(spec, dict) or spec.get("type") != "hyperband":
        raise GraphrecError(f"{where}early_terminate must be {{type: hyperband, min_iter: 3, eta: 3}}")
    for key in spec:
        if key not in keys:
            raise GraphrecError(f"{where}unknown key 'early_terminate.{key}'{_did_you_mean(key, keys)}")
    eta = _number(where, "early_terminate.eta", spec.get("eta", 3))
    if eta <= 1:
        raise GraphrecError(f"{where}early_terminate.eta must be > 1, not {eta}")
    if "min_iter" in spec:
        if not isinstance(spec["min_iter"], int) or spec["min_iter"] < 1:
            raise GraphrecError(f"{where}early_terminate.min_iter must be an integer >= 1")
        return Hyperband(eta=eta, min_iter=spec["min_iter"], strict=bool(spec.get("strict", True)))
    if "max_iter" in spec and "s" in spec:
        return Hyperband(eta=eta, max_iter=int(_number(where, "early_terminate.max_iter", spec["max_iter"])),
                         s=_number(where, "early_terminate.s", spec["s"]), strict=bool(spec.get("strict", True)))
    raise GraphrecError(f"{where}early_terminate needs min_iter (or max_iter and s)")


def override_key(text: str) -> str:
    """The config key of a `--set KEY=VALUE` text."""
    return text.split("=", 1)[0].strip()


def _check_against_config(path: Path, base: Path, dims: list[Dimension], overrides: list[str],
                          metric: str) -> None:
    """Every parameter name and representative value through the config schema (did-you-mean for keys)."""
    swept = {d.key for d in dims}
    for text in overrides:
        key = override_key(text)
        if key in swept:
            raise GraphrecError(f"--set {text}: '{key}' is a parameter of the sweep {path}; remove one of the two")
    select = [f"train.select_metric={metric.split('/', 1)[1]}"]
    try:
        config_from_file(base, overrides + select)
    except GraphrecError as err:
        raise GraphrecError(f"{path}: metric '{metric}' with base {base}: {err}") from None
    for dim in dims:
        # the others at their first value: a value valid only beside another swept key (diffusion.steps with
        # diffusion.sampling_steps <= steps) passes; one that no proposal can use does not
        others = set_args({d.key: d.check_values()[0] for d in dims if d.key != dim.key})
        for value in dim.check_values():
            text = set_args({dim.key: value})[0]
            try:
                config_from_file(base, overrides + select + [text])
            except GraphrecError as err:
                try:
                    config_from_file(base, overrides + select + others + [text])
                except GraphrecError:
                    message = str(err).removeprefix(f"--set {text}: ")
                    raise GraphrecError(f"{path} line {dim.line}: parameter '{dim.key}' value {value!r}: "
                                        f"{message}") from None


def parse_dimensions(path: Path, parameters: dict, lines: Optional[dict[tuple, int]] = None) -> list[Dimension]:
    """The `parameters:` block of a sweep file as Dimensions (constants included), checked on their own."""
    return [_dimension(f"{path} line {line}: ", key, spec, line)
            for key, (spec, line) in _flatten(parameters, "", lines or {}, ("parameters",)).items()]


SWEEP_OWNED_KEYS = ("output_dir", "name")  # the agent places and names every run itself


def load_sweep(path: str | Path, overrides: Optional[list[str]] = None) -> SweepSpec:
    """Read and validate a sweep YAML (and every parameter against its base experiment) before any run."""
    path = Path(path)
    for text in overrides or []:
        key = override_key(text)
        if key in SWEEP_OWNED_KEYS:
            raise GraphrecError(f"--set {text}: a sweep sets {key} itself (its runs live in <sweep folder>/runs, "
                                f"named after the sweep); omit --set {key}")
    try:
        raw, text = _read_yaml_text(path)
    except GraphrecError as err:
        raise GraphrecError(str(err).replace("config file", "sweep file").replace(
            "the top level must be a mapping of sections (data:, model:, train:, ...)",
            "a sweep file must be a mapping (method:, metric:, parameters:, base:)")) from None
    lines = key_lines(text)
    for key in raw:
        if key not in TOP_KEYS:
            raise GraphrecError(f"{path} line {lines.get((str(key),), 0)}: unknown sweep key '{key}'"
                                f"{_did_you_mean(key, TOP_KEYS)}")
    method = raw.get("method")
    if method not in METHODS:
        where = f"{path} line {lines.get(('method',), 0)}: " if "method" in raw else f"{path}: "
        raise GraphrecError(f"{where}unknown method {method!r}" + (
            _did_you_mean(method, METHODS) if method else "; add method: grid, random or bayes"))
    metric, goal, target = _metric(path, raw, lines)
    if not isinstance(raw.get("base"), str):
        raise GraphrecError(f"{path}: base: must name the experiment YAML the sweep varies, relative to the sweep "
                            "file, e.g. base: ../quickstart.yaml")
    base = (path.parent / raw["base"]).resolve()
    if not base.is_file():
        raise GraphrecError(f"{path} line {lines.get(('base',), 0)}: base '{raw['base']}' not found (looked for "
                            f"{base}); give the experiment YAML relative to the sweep file")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise GraphrecError(f"{path} line {lines.get(('seed',), 0)}: seed must be an integer, not {seed!r}")
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise GraphrecError(f"{path}: parameters: must map config keys to distributions, e.g. "
                            "parameters: {train.lr: {values: [0.001, 0.01]}}")
    dims = parse_dimensions(path, parameters, lines)
    if method == "grid":
        for dim in dims:
            if dim.distribution not in GRID_DISTRIBUTIONS:
                raise GraphrecError(f"{path} line {dim.line}: parameter '{dim.key}': grid search needs values, "
                                    f"value, int_uniform or q_uniform, not {dim.distribution}; list values or use "
                                    "method: random or bayes")
    _check_against_config(path, base, dims, list(overrides or []), metric)
    constants = {d.key: d.params["value"] for d in dims if d.distribution == "constant"}
    return SweepSpec(path=path, raw=raw, method=method, metric=metric, goal=goal, base=base,
                     dimensions=[d for d in dims if d.distribution != "constant"], constants=constants, seed=seed,
                     hyperband=_hyperband(path, raw, lines), target=target)

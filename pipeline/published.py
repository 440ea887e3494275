"""Published numbers and the paper's claims, read from a data file (workflow/resources/published.yaml).

The file is checked when the workflow starts (``workflow/rules/aggregate.smk``
calls :func:`load_published`): every result names a defined source and the
exact model it was measured on, every source says where the numbers are
(repository and commit, or paper version) and which table, and every metric
is a column some benchmark module reports. A table that puts a number beside
ours can therefore always say where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evals import benchmark_names, get_benchmark

CLAIM_KINDS = {
    "gain_everywhere": (),  # the difference is positive (``direction: lower``: negative) in every setting
    "gain_up_to": ("value",),  # the largest difference over settings is ``value``
    "within": ("margin",),  # the difference stays within +-margin (``bound: upper``: below margin) everywhere
}
SQUEEZING = "squeezing"  # the squeezing diagnostic's comparison (suite/diagnostics.py), no benchmark module's
LENGTH = "length/"  # length/<benchmark>: the relative difference of mean response length, in %


@dataclass(frozen=True)
class Setting:
    label: str
    model: str


@dataclass(frozen=True)
class PublishedResult:
    setting: str
    method: str
    source: str
    model: str
    base_model: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class Claim:
    id: str
    source: str
    text: str
    kind: str
    benchmark: str
    experiment: str = "main"
    value: float | None = None
    margin: float | None = None
    direction: str = "higher"
    bound: str = "both"


@dataclass(frozen=True)
class Published:
    path: Path
    settings: Mapping[str, Setting]
    sources: Mapping[str, Mapping[str, Any]]
    results: list[PublishedResult] = field(default_factory=list)
    unavailable: list[Mapping[str, Any]] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def result(self, setting: str, method: str) -> PublishedResult | None:
        return next((r for r in self.results if (r.setting, r.method) == (setting, method)), None)

    def unavailable_reason(self, setting: str, method: str, benchmark: str) -> str | None:
        """Why a number that exists is not here (an entry may name its setting and benchmarks; else all)."""
        for entry in self.unavailable:
            benchmarks = entry.get("benchmarks") or [benchmark]
            if entry["method"] == method and entry.get("setting", setting) == setting and benchmark in benchmarks:
                return str(entry["reason"])
        return None

    def label(self, setting: str) -> str:
        return self.settings[setting].label if setting in self.settings else setting

    def cite(self, source: str) -> str:
        """One line naming a source: title, where (repository@commit, or version) and table."""
        entry = self.sources[source]
        where = f"{entry['repository']}@{entry['commit'][:7]}" if "commit" in entry else entry["version"]
        return f"{entry['title']}; {where}; {entry['table']}"


class PublishedError(ValueError):
    """The published-numbers file is malformed; the message names the file, the entry and the field."""


def _require(entry: Mapping[str, Any], fields: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, Mapping):
        raise PublishedError(f"{where}: expected a mapping, got {type(entry).__name__}")
    for name in fields:
        if entry.get(name) in (None, ""):
            raise PublishedError(f"{where}: field {name!r} is missing")


def _metric_keys() -> set[str]:
    return {f"{name}/{key}" for name in benchmark_names() for key in get_benchmark(name).COLUMNS}


def _check_source(path: Path, name: str, entry: Mapping[str, Any]) -> None:
    where = f"{path}: sources/{name}"
    _require(entry, ("title", "table"), where)
    if not entry.get("commit") and not entry.get("version"):
        raise PublishedError(f"{where}: field 'commit' (with 'repository') or 'version' is missing")
    if entry.get("commit"):
        _require(entry, ("repository",), where)


def _source_of(entry: Mapping[str, Any], where: str, sources: Mapping[str, Any]) -> str:
    _require(entry, ("source",), where)
    if entry["source"] not in sources:
        raise PublishedError(
            f"{where}: field 'source': {entry['source']!r} is not under sources ({', '.join(sources)})"
        )
    return str(entry["source"])


def _result(
    path: Path, number: int, entry: Mapping[str, Any], data: Mapping[str, Any], metrics: set[str]
) -> PublishedResult:
    where = f"{path}: results[{number}]"
    _require(entry, ("setting", "method"), where)
    where += f" ({entry['setting']}/{entry['method']})"
    source = _source_of(entry, where, data["sources"])
    _require(entry, ("model", "base_model", "values"), where)
    if entry["setting"] not in data["settings"]:
        raise PublishedError(f"{where}: field 'setting': unknown setting; defined: {', '.join(data['settings'])}")
    for key, value in entry["values"].items():
        if key not in metrics:
            raise PublishedError(f"{where}: field 'values/{key}': not a <benchmark>/<result key> of the benchmarks")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PublishedError(f"{where}: field 'values/{key}': {value!r} is not a number")
    return PublishedResult(
        entry["setting"], entry["method"], source, entry["model"], entry["base_model"], dict(entry["values"])
    )


def _claim(path: Path, number: int, entry: Mapping[str, Any], sources: Mapping[str, Any]) -> Claim:
    where = f"{path}: claims[{number}]"
    _require(entry, ("id", "text", "kind", "benchmark"), where)
    where += f" ({entry['id']})"
    source = _source_of(entry, where, sources)
    if entry["kind"] not in CLAIM_KINDS:
        raise PublishedError(f"{where}: field 'kind': {entry['kind']!r} is not one of {', '.join(CLAIM_KINDS)}")
    _require(entry, CLAIM_KINDS[entry["kind"]], where)
    benchmark = str(entry["benchmark"]).removeprefix(LENGTH)
    if benchmark not in benchmark_names() and benchmark != SQUEEZING:
        raise PublishedError(f"{where}: field 'benchmark': unknown benchmark {entry['benchmark']!r}")
    unknown = sorted(set(entry) - {f.name for f in fields(Claim)})
    if unknown:
        raise PublishedError(f"{where}: unknown field {unknown[0]!r}")
    return Claim(**{**entry, "source": source})


def load_published(path: str | Path) -> Published:
    """Read and check the published-numbers file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PublishedError(f"{path}: cannot be read: {exc}") from exc
    _require(data, ("settings", "sources"), str(path))
    for name, entry in data["settings"].items():
        _require(entry, ("label", "model"), f"{path}: settings/{name}")
    for name, entry in data["sources"].items():
        _check_source(path, name, entry)
    metrics = _metric_keys()
    results = [_result(path, i, entry, data, metrics) for i, entry in enumerate(data.get("results") or [])]
    seen: set[tuple[str, str]] = set()
    for number, result in enumerate(results):
        if (result.setting, result.method) in seen:
            raise PublishedError(f"{path}: results[{number}]: a second entry for {result.setting}/{result.method}")
        seen.add((result.setting, result.method))
    unavailable = list(data.get("unavailable") or [])
    for number, entry in enumerate(unavailable):
        where = f"{path}: unavailable[{number}]"
        _require(entry, ("method", "reason"), where)
        _source_of(entry, where, data["sources"])
        unknown = sorted(set(entry.get("benchmarks") or []) - set(benchmark_names()))
        if unknown:
            raise PublishedError(f"{where}: field 'benchmarks': unknown benchmark {unknown[0]!r}")
    claims = [_claim(path, i, entry, data["sources"]) for i, entry in enumerate(data.get("claims") or [])]
    return Published(
        path=path,
        settings={name: Setting(entry["label"], entry["model"]) for name, entry in data["settings"].items()},
        sources=data["sources"],
        results=results,
        unavailable=unavailable,
        claims=claims,
    )

"""Every numeric setting has bounds, enforced at start-up with the file (or variable) and
field named. The settings are found by introspecting the settings classes, so a numeric
setting added later without bounds fails here."""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

import pytest

from chipwatch import settings as settings_module
from chipwatch.errors import ConfigError
from chipwatch.settings import BOUNDS, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
HEADER = (
    f'topics = "{REPO / "config" / "topics.toml"}"\ncorpus_dir = "{REPO / "config" / "corpus"}"\n'
)


def settings_classes() -> dict[str, type]:
    """{where in the file: class} for each table and array of tables of Settings."""
    found: dict[str, type] = {}
    hints = typing.get_type_hints(Settings, vars(settings_module))
    for spec in fields(Settings):
        kind = hints[spec.name]
        if is_dataclass(kind):
            found[spec.name] = typing.cast(type, kind)
        for arg in typing.get_args(kind):  # tuple[Recipient, ...]
            if is_dataclass(arg):
                found[f"{spec.name}[]"] = typing.cast(type, arg)
    return found


def numeric_settings() -> list[tuple[str, type, str, type]]:
    out = []
    for where, cls in settings_classes().items():
        hints = typing.get_type_hints(cls, vars(settings_module))
        for spec in fields(cls):
            if hints[spec.name] in (int, float):
                out.append((where, cls, spec.name, hints[spec.name]))
    return out


NUMERIC = numeric_settings()
TRIED = [0, -1, -0.5, 10**12, 1e300, math.inf, math.nan]


def test_the_introspection_finds_the_settings_we_know() -> None:
    names = {f"{where}.{name}" for where, _, name, _ in NUMERIC}
    assert {"fetch.read_timeout_seconds", "fetch.max_redirects", "smtp.timeout_seconds"} <= names
    assert {"digest.lookback_days", "recipients[].min_relevance", "poll.interval_minutes"} <= names
    assert len(NUMERIC) >= 20


@pytest.mark.parametrize(("where", "cls", "name", "kind"), NUMERIC, ids=lambda v: str(v))
def test_every_numeric_setting_has_bounds_that_hold_its_default(
    where: str, cls: type, name: str, kind: type
) -> None:
    spec = next(f for f in fields(cls) if f.name == name)
    assert BOUNDS in spec.metadata, f"{where}.{name} has no bounds"
    lowest, highest = spec.metadata[BOUNDS]
    if spec.default is not MISSING:
        assert lowest <= spec.default <= highest


def toml_value(value: float, kind: type) -> str | None:
    if kind is int:
        return str(value) if isinstance(value, int) else None  # TOML ints only
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return repr(float(value))


def config_text(where: str, name: str, literal: str) -> str:
    if where.endswith("[]"):
        table = where[:-2]
        extra = 'address = "a@b.test"\n' if table == "recipients" else 'url = "http://a.test/"\n'
        return HEADER + f"[[{table}]]\n{extra}{name} = {literal}\n"
    return HEADER + f"[{where}]\n{name} = {literal}\n"


# TOML has no integer spelling of -0.5, 1e300, inf or NaN: those are tried on the float
# settings (a float for an int setting is a type error, tested at the end).
FILE_CASES = [
    (*setting, value) for setting in NUMERIC for value in TRIED if toml_value(value, setting[3])
]


@pytest.mark.parametrize(("where", "cls", "name", "kind", "value"), FILE_CASES, ids=str)
def test_zero_negative_and_huge_values_in_the_file(
    tmp_path: Path, where: str, cls: type, name: str, kind: type, value: float
) -> None:
    literal = toml_value(value, kind)
    assert literal is not None
    path = tmp_path / "chipwatch.toml"
    path.write_text(config_text(where, name, literal), encoding="utf-8")
    lowest, highest = next(f for f in fields(cls) if f.name == name).metadata[BOUNDS]
    field_name = f"{where.removesuffix('[]')}{'[0]' if where.endswith('[]') else ''}.{name}"
    if lowest <= value <= highest:
        loaded = load_settings(path, environ={})
        section = getattr(loaded, where.removesuffix("[]"))
        got = getattr(section[0] if where.endswith("[]") else section, name)
        assert got == value
    else:
        with pytest.raises(ConfigError) as raised:
            load_settings(path, environ={})
        message = str(raised.value)
        assert str(path) in message and field_name in message and "between" in message


@pytest.mark.parametrize(
    ("where", "cls", "name", "kind"),
    [n for n in NUMERIC if not n[0].endswith("[]")],
    ids=lambda v: str(v),
)
@pytest.mark.parametrize("value", ["0", "-1", "1000000000000", "nan"])
def test_zero_negative_and_huge_values_in_the_environment(
    tmp_path: Path, where: str, cls: type, name: str, kind: type, value: str
) -> None:
    path = tmp_path / "chipwatch.toml"
    path.write_text(HEADER, encoding="utf-8")
    variable = f"CHIPWATCH_{where.upper()}_{name.upper()}"
    lowest, highest = next(f for f in fields(cls) if f.name == name).metadata[BOUNDS]
    try:
        number = kind(value)
    except ValueError:
        number = None  # "nan" for an int: a type error naming the variable
    if number is not None and lowest <= number <= highest:
        assert getattr(getattr(load_settings(path, environ={variable: value}), where), name) == (
            number
        )
        return
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={variable: value})
    assert variable in str(raised.value) and name in str(raised.value)


def test_a_float_for_an_integer_setting_is_a_type_error(tmp_path: Path) -> None:
    path = tmp_path / "chipwatch.toml"
    path.write_text(HEADER + "[fetch]\nmax_redirects = 2.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="fetch.max_redirects: expected int"):
        load_settings(path, environ={})

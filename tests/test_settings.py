"""Configuration: defaults, environment overrides, and errors that name file and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chipwatch.errors import ConfigError
from chipwatch.settings import FetchSettings, load_settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = REPO / "config" / "chipwatch.toml"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chipwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_and_lists_real_sources() -> None:
    settings = load_settings(SHIPPED_CONFIG, environ={})
    assert settings.fetch == FetchSettings()  # the file repeats every default
    assert settings.digest.schedule == "30 7 * * *"
    assert settings.digest.timezone == "Europe/Paris"
    assert settings.topics_path == REPO / "config" / "topics.toml"
    assert settings.corpus_dir == REPO / "config" / "corpus"
    languages = {source.language for source in settings.sources}
    assert {"en", "fr"} <= languages
    assert any("federalregister.gov" in source.url for source in settings.sources)


def test_every_setting_is_documented_in_the_shipped_config() -> None:
    """Each field of each section appears, with a comment, in config/chipwatch.toml."""
    from dataclasses import fields

    from chipwatch.settings import _SECTIONS

    lines = SHIPPED_CONFIG.read_text(encoding="utf-8").splitlines()
    for section, cls in _SECTIONS.items():
        start = lines.index(f"[{section}]")
        block = lines[start + 1 :]
        for field in fields(cls):
            documented = [
                line for line in block if line.startswith(f"{field.name} =") and "#" in line
            ]
            assert documented, f"[{section}] {field.name} is missing or has no comment"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[poll]\ninterval_minutes = 30\n")
    env = {
        "CHIPWATCH_POLL_INTERVAL_MINUTES": "45",
        "CHIPWATCH_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "CHIPWATCH_SMTP_HOST": "mail.example.org",
        "CHIPWATCH_DATA_DIR": str(tmp_path / "elsewhere"),
    }
    settings = load_settings(path, environ=env)
    assert settings.poll.interval_minutes == 45
    assert settings.fetch.allow_private_networks is True
    assert settings.smtp.host == "mail.example.org"
    assert settings.data_dir == tmp_path / "elsewhere"


def test_smtp_password_is_read_from_the_named_environment_variable(tmp_path: Path) -> None:
    import os

    path = write_config(tmp_path, "[smtp]\npassword_env = 'RELAY_SECRET_FOR_TEST'\n")
    settings = load_settings(path, environ={})
    os.environ["RELAY_SECRET_FOR_TEST"] = "hunter2"
    try:
        assert settings.smtp_password == "hunter2"
    finally:
        del os.environ["RELAY_SECRET_FOR_TEST"]
    assert "hunter2" not in repr(settings)


def test_data_dir_flag_beats_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    settings = load_settings(
        path, data_dir=tmp_path / "flag", environ={"CHIPWATCH_DATA_DIR": "/nowhere"}
    )
    assert settings.data_dir == tmp_path / "flag"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[poll]\ninterval_minutes = 'often'\n", "poll.interval_minutes"),
        ("[poll]\ninterval_minutes = 0\n", "poll.interval_minutes"),
        ("[fetch]\nspeed = 3\n", "fetch.speed"),
        ("colour = 'blue'\n", "colour"),
        ("[smtp]\nsecurity = 'ssl3'\n", "smtp.security"),
        ("[smtp]\nport = 70000\n", "smtp.port"),
        ("[smtp]\nca_file = '/nonexistent/ca.pem'\n", "smtp.ca_file"),
        ("[digest]\nschedule = '61 7 * * *'\n", "digest.schedule"),
        ("[digest]\ntimezone = 'Mars/Olympus'\n", "digest.timezone"),
        ("[[recipients]]\ntopics = ['x']\n", "recipients[0].address"),
        ("[[recipients]]\naddress = 'nobody'\n", "recipients[0].address"),
        ("[[recipients]]\naddress = 'a@b.c'\nwhen_empty = 'maybe'\n", "recipients[0].when_empty"),
        ("[[sources]]\nurl = 'ftp://example.org/feed'\n", "sources[0].url"),
        ("[[sources]]\nurl = 'https://x.org/f'\nfull_text = 'yes'\n", "sources[0].full_text"),
        ("[classify]\nrelevance_threshold = 1.5\n", "classify.relevance_threshold"),
        ("[poll\n", "-"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.field == field
    assert caught.value.source == str(path)
    assert str(path) in str(caught.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"CHIPWATCH_FETCH_CONCURRENCY": "many"})
    assert caught.value.source == "CHIPWATCH_FETCH_CONCURRENCY"


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", environ={})


def test_cli_exits_2_and_names_file_and_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[fetch]\ndeadline_seconds = -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(path), "feeds", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "fetch.deadline_seconds" in result.stderr

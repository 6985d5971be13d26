"""Each kind of configuration mistake stops the start with one message naming the fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.settings import ApplianceSettings, load_settings
from central.settings import CentralSettings
from central.settings import load_settings as load_central
from common import config
from common.config import ConfigError
from tests.harness import ROOT


def load(env: dict[str, str], tmp_path: Path) -> ApplianceSettings:
    return load_settings(env, config_dir=tmp_path)


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load({}, tmp_path)
    assert settings.poll_interval_s == 60
    assert settings.upload_batch_size == 1000
    assert settings.retention_days == 7
    assert settings.central_url is None


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    (tmp_path / "appliance.toml").write_text("poll_interval_s = 30\nretention_days = 3\n")
    settings = load({"METERIT_POLL_INTERVAL_S": "15"}, tmp_path)
    assert settings.poll_interval_s == 15
    assert settings.retention_days == 3


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load({}, tmp_path)
    with pytest.raises(AttributeError):
        settings.poll_interval_s = 5  # type: ignore[misc]


def test_wrong_type_names_setting_value_and_expectation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load({"METERIT_POLL_INTERVAL_S": "often"}, tmp_path)
    text = str(err.value)
    assert "METERIT_POLL_INTERVAL_S='often'" in text
    assert "expected a whole number from 1 to 3600" in text


def test_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"METERIT_UPLOAD_BATCH_SIZE='0': expected a whole number"
    ):
        load({"METERIT_UPLOAD_BATCH_SIZE": "0"}, tmp_path)


def test_bad_choice_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one of debug, info, warning, error"):
        load({"METERIT_LOG_LEVEL": "loud"}, tmp_path)


def test_bad_url_names_the_scheme(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"METERIT_CENTRAL_URL='ftp://x': expected a URL starting with https:// or http://",
    ):
        load({"METERIT_CENTRAL_URL": "ftp://x"}, tmp_path)


def test_bad_value_in_file_names_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "central.toml"
    cfg.write_text('heartbeat_late_s = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_central({}, config_dir=tmp_path)
    assert f"heartbeat_late_s in {cfg}='soon'" in str(err.value)


def test_bad_boolean_is_refused() -> None:
    @dataclass(frozen=True)
    class Flags:
        enabled: bool = config.setting(False, help="a switch")

    with pytest.raises(ConfigError, match="METERIT_ENABLED='maybe': expected true or false"):
        config.load(Flags, "appliance", {"METERIT_ENABLED": "maybe"}, Path("/nonexistent"))
    loaded = config.load(Flags, "appliance", {"METERIT_ENABLED": "yes"}, Path("/nonexistent"))
    assert loaded.enabled is True


def test_missing_required_setting_is_named() -> None:
    @dataclass(frozen=True)
    class Needs:
        token: str = config.setting(help="the token")

    with pytest.raises(ConfigError, match="METERIT_TOKEN is required but not set; expected text"):
        config.load(Needs, "appliance", {}, Path("/nonexistent"))


def test_unreadable_config_file_is_reported(tmp_path: Path) -> None:
    # root reads any file whatever its mode, so a directory in its place stands for "unreadable"
    (tmp_path / "appliance.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read it"):
        load({}, tmp_path)


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="METERIT_CONFIG='/nope.toml': the file does not exist"):
        load({"METERIT_CONFIG": "/nope.toml"}, tmp_path)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "appliance.toml").write_text("poll_interval_s = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load({}, tmp_path)


def test_unknown_key_in_file_is_a_typo(tmp_path: Path) -> None:
    (tmp_path / "appliance.toml").write_text("pol_interval_s = 10\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) pol_interval_s"):
        load({}, tmp_path)


def test_secret_comes_from_file_and_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("s3cr3t-key\n")
    settings = load({"METERIT_API_KEY_FILE": str(secret)}, tmp_path)
    assert settings.api_key == "s3cr3t-key"
    assert config.redacted(settings)["api_key"] == "***"


def test_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Secretive:
        pin: int = config.setting(0, help="a pin", secret=True)

    with pytest.raises(ConfigError) as err:
        config.load(Secretive, "appliance", {"METERIT_PIN": "hunter2"}, tmp_path)
    assert "hunter2" not in str(err.value)
    assert "METERIT_PIN=***" in str(err.value)


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="METERIT_API_KEY_FILE='/missing/key': cannot read the file"
    ):
        load({"METERIT_API_KEY_FILE": "/missing/key"}, tmp_path)


def test_reference_documents_every_setting_with_default() -> None:
    for cls, side in ((ApplianceSettings, "appliance"), (CentralSettings, "central")):
        doc = config.describe(cls, side)
        for name in cls.__dataclass_fields__:
            assert f"`METERIT_{name.upper()}` (`{name}`)" in doc
    assert "| `60` |" in config.describe(ApplianceSettings, "appliance")


def test_configuration_doc_is_current() -> None:
    """docs/configuration.md is generated; `make docs` regenerates it when settings change."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert config.describe(ApplianceSettings, "appliance") in doc
    assert config.describe(CentralSettings, "central") in doc

"""Settings come from the environment or traitlets; the README documents every one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepspace_lab.config import SETTINGS, ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_configuration_table_lists_every_setting_and_nothing_else() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\|\s*`(DEEPSPACE_[A-Z0-9_]+)`", readme, flags=re.MULTILINE))
    assert documented == {spec.env for spec in SETTINGS}


def test_every_setting_is_a_trait_of_the_extension_with_help() -> None:
    from deepspace_lab.server_extension.app import TRAIT_NAMES, DeepSpaceApp

    traits = DeepSpaceApp.class_own_traits(config=True)
    assert set(TRAIT_NAMES) == {spec.name for spec in SETTINGS}
    assert set(traits) == set(TRAIT_NAMES.values())
    for spec in SETTINGS:
        assert spec.env in (traits[TRAIT_NAMES[spec.name]].help or "")


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env(environ={"DEEPSPACE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'deepspace.db'}"
    assert settings.storage_url == str(tmp_path / "storage")
    assert settings.uses_simulator and settings.redis_url is None and settings.secret_key is None


def test_secret_key_is_read_from_the_data_dir(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("s3cret\n")
    assert Settings.from_env(environ={"DEEPSPACE_DATA_DIR": str(tmp_path)}).secret_key == "s3cret"


def test_trait_overrides_win_over_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"upstream_timeout_s": 3}, environ={"DEEPSPACE_UPSTREAM_TIMEOUT_S": "9",
                                                                   "DEEPSPACE_DATA_DIR": str(tmp_path)})
    assert settings.upstream_timeout_s == 3.0


def test_malformed_numbers_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ={"DEEPSPACE_MAX_BODY_BYTES": "lots", "DEEPSPACE_DATA_DIR": str(tmp_path)})
    assert "DEEPSPACE_MAX_BODY_BYTES" in caught.value.message


def test_secrets_are_not_in_the_repr(tmp_path: Path) -> None:
    settings = Settings.from_env(environ={"DEEPSPACE_DATA_DIR": str(tmp_path), "DEEPSPACE_SECRET_KEY": "zzsecretzz",
                                          "DEEPSPACE_UPSTREAM_API_KEY": "sk-upstream-hidden",
                                          "DEEPSPACE_DATABASE_URL": "postgresql://u:pw-hidden@h/db"})
    text = repr(settings)
    assert "zzsecretzz" not in text and "sk-upstream-hidden" not in text and "pw-hidden" not in text


def test_postgres_needs_a_secret_key(tmp_path: Path) -> None:
    settings = Settings.from_env(environ={"DEEPSPACE_DATA_DIR": str(tmp_path),
                                          "DEEPSPACE_DATABASE_URL": "postgresql://x@127.0.0.1/db"})
    with pytest.raises(ConfigError) as caught:
        settings.require_secret_key()
    assert caught.value.code == "secret_key_missing" and "DEEPSPACE_SECRET_KEY" in caught.value.message

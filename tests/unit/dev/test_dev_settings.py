"""Settings precedence (flag > env > file) and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpulane_dev.settings import DevSettings, SettingsError, Versions, load_settings


def test_defaults_put_the_cache_under_home() -> None:
    settings = load_settings(env={})
    assert settings.cache_root == Path.home() / ".cache" / "gpulane"
    assert settings.cache.bin == settings.cache_root / "bin"
    assert settings.cache.gomodcache == settings.cache_root / "go" / "mod"
    assert settings.kubebuilder_assets is None


def test_flag_beats_env_beats_file(tmp_path: Path) -> None:
    config = tmp_path / "dev.yaml"
    config.write_text("cache_root: /from/file\n")
    assert load_settings(config_file=config, env={}).cache_root == Path("/from/file")
    env = {"GPULANE_DEV_CACHE_ROOT": "/from/env"}
    assert load_settings(config_file=config, env=env).cache_root == Path("/from/env")
    assert load_settings(cache_root="/from/flag", config_file=config, env=env).cache_root == Path("/from/flag")


def test_old_cache_variable_is_a_deprecated_alias() -> None:
    assert load_settings(env={"GPULANE_CACHE": "/old"}).cache_root == Path("/old")
    both = {"GPULANE_CACHE": "/old", "GPULANE_DEV_CACHE_ROOT": "/new"}
    assert load_settings(env=both).cache_root == Path("/new")
    assert load_settings(env={"GPULANE_DEV_VERSIONS_KWOK": "v0.9.0"}).versions.kwok == "v0.9.0"


def test_config_file_named_by_env(tmp_path: Path) -> None:
    config = tmp_path / "dev.yaml"
    config.write_text("versions:\n  kubernetes: v1.34.2\n  kwok: v0.7.0\n")
    settings = load_settings(env={"GPULANE_DEV_CONFIG": str(config)})
    assert settings.versions.kubernetes == "v1.34.2"
    assert settings.versions.staging == "v0.34.2"
    assert settings.versions.kwok == "v0.7.0"
    assert settings.versions.etcd == Versions().etcd


def test_kubebuilder_assets_from_env() -> None:
    settings = load_settings(env={"KUBEBUILDER_ASSETS": "/opt/assets"})
    assert settings.kubebuilder_assets == Path("/opt/assets")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping at the top level, got list"),
        ("cache_dir: /x\n", "cache_dir (from config file PATH): unknown setting"),
        ("cache_root: 3\n", "cache_root (from config file PATH): expected a path, got 3"),
        ("versions: {kubernetes: '1.34'}\n", "versions.kubernetes: '1.34' is not vMAJOR.MINOR.PATCH"),
        ("versions: {helmm: v3}\n", "versions.helmm (from config file PATH): unknown setting"),
        ("versions: {etcd: ''}\n", "versions.etcd: must not be empty"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "dev.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(config_file=config, env={})
    assert message.replace("PATH", str(config)) in str(info.value)
    assert str(config) in str(info.value) or "versions." in message


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(config_file=tmp_path / "absent.yaml", env={})


def test_staging_version_is_derived() -> None:
    assert Versions(kubernetes="v1.33.5").staging == "v0.33.5"
    assert DevSettings().versions.staging == "v0.37.2"

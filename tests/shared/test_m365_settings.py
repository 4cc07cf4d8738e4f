"""Microsoft 365 settings: all or nothing, with a start-up error naming what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import M365_DEFAULT_AUTHORITY, Settings, load_settings
from shared.errors import ConfigError

KEY = "k" * 32
FULL = {
    "AA_GRAPH_URL": "https://graph.microsoft.com/v1.0",
    "AA_M365_TENANT": "contoso.onmicrosoft.com",
    "AA_M365_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "AA_M365_CLIENT_SECRET": "a-client-secret",
    "AA_M365_REDIRECT_URI": "https://aa.example.com/login/microsoft/callback",
}


def load(tmp_path: Path, **environ: str) -> Settings:
    return load_settings({"AA_VAR_DIR": str(tmp_path), "AA_SECRET_KEY": KEY, **environ})


def test_off_by_default(tmp_path: Path) -> None:
    settings = load(tmp_path)
    assert settings.m365 is None and settings.token_key is None


def test_a_full_set_is_read(tmp_path: Path) -> None:
    m365 = load(tmp_path, **FULL).m365
    assert m365 is not None and not m365.is_required
    assert m365.authority == M365_DEFAULT_AUTHORITY
    assert m365.discovery_url == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        "/.well-known/openid-configuration"
    )
    assert "a-client-secret" not in repr(m365)
    other = load(
        tmp_path, **FULL, AA_M365_AUTHORITY="http://127.0.0.1:8081/", AA_M365_REQUIRED="on"
    ).m365
    assert other is not None and other.is_required
    assert other.authority == "http://127.0.0.1:8081"


@pytest.mark.parametrize("left_out", ["AA_M365_CLIENT_ID", "AA_M365_CLIENT_SECRET"])
def test_a_partial_set_names_what_is_missing(tmp_path: Path, left_out: str) -> None:
    environ = {k: v for k, v in FULL.items() if k != left_out}
    with pytest.raises(ConfigError, match=f"partly configured .* but {left_out} is missing"):
        load(tmp_path, **environ)


def test_a_lone_tenant_names_every_missing_setting(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="AA_M365_TENANT set\\) but AA_M365_CLIENT_ID, AA_M365_CLIENT_SECRET, "
        "AA_M365_REDIRECT_URI are missing",
    ):
        load(tmp_path, AA_M365_TENANT="contoso.onmicrosoft.com")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"AA_M365_REQUIRED": "on"}, "AA_M365_REQUIRED=on needs Microsoft 365 sign-in"),
        ({"AA_M365_AUTHORITY": "http://x"}, "AA_M365_AUTHORITY needs Microsoft 365 sign-in"),
        ({"AA_M365_REQUIRED": "yes"}, "AA_M365_REQUIRED='yes' is not valid"),
    ],
)
def test_settings_that_need_the_rest(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, **extra)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"AA_M365_TENANT": "common"}, "lets accounts of any organisation sign in"),
        ({"AA_M365_AUTHORITY": "login.example.com"}, "AA_M365_AUTHORITY=.* must be an http"),
        ({"AA_M365_REDIRECT_URI": "https://aa.example.com/cb"}, "/login/microsoft/callback"),
        ({"AA_GRAPH_URL": ""}, "needs AA_GRAPH_URL"),
        ({"AA_TOKEN_KEY": "short"}, "AA_TOKEN_KEY must be at least 32 characters"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, **{**FULL, **changes})


def test_a_token_key_is_kept(tmp_path: Path) -> None:
    assert load(tmp_path, **FULL, AA_TOKEN_KEY="t" * 40).token_key == "t" * 40

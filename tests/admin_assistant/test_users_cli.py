"""`admin-assistant users|tokens ...` and start-up errors, through the real console script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from admin_assistant.metrics_dir import MARKER, MetricsDirError, prepare_metrics_dir
from shared import bridge
from shared.errors import Unauthorized
from shared.runtime import Runtime
from tests.conftest import Person

CLI = Path(sys.executable).parent / "admin-assistant"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def base_env(environ: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AA_")}
    env.update(environ)
    return env


@pytest.fixture
def cli(base_env: dict[str, str], tmp_path: Path) -> Run:
    """Run the console script with the test's environment (and no AA_* from outside)."""

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env={**base_env, **extra_env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def one_sentence(result: subprocess.CompletedProcess[str], start: str) -> str:
    """The command failed with exit 1 and one `error: ...` sentence (then field details, if any)."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"error: {start}"), result.stderr
    assert all(line.startswith("  ") for line in lines[1:]), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- users --------------------------------------------------------------------------------------


def test_disable_enable_and_set_password(cli: Run, runtime: Runtime, alice: Person) -> None:
    users = runtime.services.users
    disabled = ok(cli("users", "disable", alice.email))
    assert "sessions ended, 1 API token(s) revoked" in disabled.stdout
    with pytest.raises(Unauthorized, match="this account is disabled"):
        bridge.run(users.sign_in(alice.email, alice.password))

    ok(cli("users", "enable", alice.email))
    bridge.run(users.sign_in(alice.email, alice.password))

    ok(cli("users", "set-password", alice.email, "--password", "fresh-password-1"))
    bridge.run(users.sign_in(alice.email, "fresh-password-1"))
    one_sentence(cli("users", "set-password", alice.email, "--password", "short"), "password")
    one_sentence(cli("users", "disable", "nobody@example.com"), "user 'nobody@example.com'")


def test_set_mailbox_validates_the_address(cli: Run, alice: Person) -> None:
    done = ok(cli("users", "set-mailbox", alice.email, "Desk@Example.com"))
    assert "mailbox desk@example.com" in done.stdout
    one_sentence(cli("users", "set-mailbox", alice.email, "../bob"), "invalid mailbox")


# -- tokens -------------------------------------------------------------------------------------


def test_tokens_expire_list_without_secrets_and_revoke(
    cli: Run, runtime: Runtime, alice: Person
) -> None:
    created = ok(
        cli("tokens", "create", "--user", alice.email, "--name", "ci", "--expires-in", "30d")
    )
    token = created.stdout.splitlines()[-1]
    assert bridge.run(runtime.services.users.authenticate_token(token)).email == alice.email

    listing = ok(cli("tokens", "list")).stdout
    assert token not in listing and alice.token not in listing
    lines = listing.splitlines()
    assert lines[0].split()[:4] == ["ID", "USER", "NAME", "STATE"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["1", alice.email, "-", "active"],
        ["2", alice.email, "ci", "active"],
    ]
    assert "never /" in lines[1] and "never /" not in lines[2]  # only the new one expires

    ok(cli("tokens", "revoke", "2"))

    assert ok(cli("tokens", "list", "--user", alice.email)).stdout.splitlines()[2].split()[3] == (
        "revoked"
    )
    runtime.services.users.actors.forget_user(alice.id)
    with pytest.raises(Unauthorized, match="invalid or revoked"):
        bridge.run(runtime.services.users.authenticate_token(token))
    one_sentence(cli("tokens", "revoke", "99"), "API token 99 not found")


@pytest.mark.parametrize("lifetime", ["30", "0d", "1w", "-3d", "d"])
def test_a_bad_lifetime_is_refused(cli: Run, alice: Person, lifetime: str) -> None:
    result = cli("tokens", "create", "--user", alice.email, "--expires-in", lifetime)
    assert result.returncode == 2
    assert "is not a duration (use e.g. 30d, 12h or 90m)" in result.stderr


# -- start-up errors are sentences ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [("users", "create", "x@example.com", "--password", "long-enough"), ("db", "upgrade")]
)
def test_an_unreachable_postgres_is_named_without_its_password(
    cli: Run, args: tuple[str, ...]
) -> None:
    port = closed_port()
    url = f"postgresql://aa:s3cret-pw@127.0.0.1:{port}/prod"
    line = one_sentence(
        cli(*args, AA_DATABASE_URL=url),
        f"cannot reach the PostgreSQL database 'prod' at 127.0.0.1:{port}",
    )
    assert "check that the server is running" in line and "s3cret" not in line


@pytest.mark.parametrize("args", [("serve",), ("tokens", "list"), ("db", "upgrade")])
def test_a_missing_production_secret_is_one_sentence(cli: Run, args: tuple[str, ...]) -> None:
    result = cli(*args, AA_ENV="production", AA_SECRET_KEY="")
    one_sentence(result, "AA_SECRET_KEY is required when AA_ENV=production")


def test_a_blank_secret_is_refused(cli: Run) -> None:
    one_sentence(cli("tokens", "list", AA_SECRET_KEY=" " * 16), "AA_SECRET_KEY is empty")


def test_serve_with_an_unreachable_database_is_one_sentence(cli: Run) -> None:
    port = closed_port()
    url = f"postgresql://aa:s3cret-pw@127.0.0.1:{port}/prod"
    line = one_sentence(cli("serve", "--port", str(closed_port()), AA_DATABASE_URL=url), "cannot")
    assert f"127.0.0.1:{port}" in line


def test_uvicorn_with_a_bad_setting_exits_with_one_sentence(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "asgi_gateway.app:app", "--port", str(closed_port())],
        env={**base_env, "AA_ENV": "production", "AA_SECRET_KEY": ""},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "error: AA_SECRET_KEY is required when AA_ENV=production" in result.stderr
    assert "Traceback" not in result.stderr


# -- serve and the metrics directory --------------------------------------------------------------


def test_serve_leaves_an_operators_metrics_directory_alone(
    base_env: dict[str, str], tmp_path: Path, runtime: Runtime
) -> None:
    Path(base_env["AA_FLAGS_FILE"]).write_text("version: 1\nroutes:\n")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "keep.txt").write_text("mine")
    port = closed_port()
    proc = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port)],
        env={**base_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if proc.stderr:
            proc.stderr.close()
    assert (metrics / "keep.txt").read_text() == "mine"


def test_the_default_metrics_directory_is_emptied_only_when_serve_made_it(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    made = prepare_metrics_dir(environ, tmp_path)
    assert environ["PROMETHEUS_MULTIPROC_DIR"] == str(made) == str(tmp_path / "prometheus")
    (made / "counter_123.db").write_bytes(b"old run")
    prepare_metrics_dir({}, tmp_path)
    assert sorted(p.name for p in made.iterdir()) == [MARKER]

    (made / MARKER).unlink()
    (made / "notes.txt").write_text("someone's")
    with pytest.raises(MetricsDirError, match="was not created by 'admin-assistant serve'"):
        prepare_metrics_dir({}, tmp_path)
    assert (made / "notes.txt").read_text() == "someone's"


def test_a_given_metrics_directory_is_never_emptied(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    (given / "counter_1.db").write_bytes(b"x")
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(given)}
    assert prepare_metrics_dir(environ, tmp_path) == given
    assert (given / "counter_1.db").exists()
    assert not (tmp_path / "prometheus").exists()

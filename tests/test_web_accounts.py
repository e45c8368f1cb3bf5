"""Dashboard accounts: the store's users and sessions (SQLite and PostgreSQL), `gateway users`, masking, [web] settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.config import _Reader
from gateway.config_as2 import HttpSettings
from gateway.config_sftp import check_password, hash_password
from gateway.config_web import read_partner_masking, read_web
from gateway.errors import StoreError
from gateway.store import Store
from gateway.web.masking import MASK, mask_fields


@pytest.fixture
def accounts(store_url: str, blob_dir: Path) -> Any:
    store = Store.open(store_url, blob_dir)
    yield store
    store.close()


def test_users_are_added_listed_changed_and_removed(accounts: Any) -> None:
    accounts.add_user("olivia", "operator", hash_password("operator-password-1"), now=100.0)
    accounts.add_user("victor", "viewer", "scrypt$x", now=101.0)
    with pytest.raises(StoreError, match="exists already"):
        accounts.add_user("olivia", "viewer", "scrypt$y")
    with pytest.raises(StoreError, match="unknown role 'admin'"):
        accounts.add_user("eve", "admin", "scrypt$y")
    assert [(u.name, u.role, u.disabled) for u in accounts.users()] == [("olivia", "operator", False),
                                                                        ("victor", "viewer", False)]
    assert check_password("operator-password-1", accounts.user("olivia").password_hash)
    assert "scrypt" not in repr(accounts.user("olivia"))
    accounts.set_role("victor", "operator")
    accounts.set_disabled("victor", True)
    assert (accounts.user("victor").role, accounts.user("victor").disabled) == ("operator", True)
    accounts.remove_user("victor")
    assert accounts.user("victor") is None
    for change in (lambda: accounts.remove_user("victor"), lambda: accounts.set_password("nobody", "h")):
        with pytest.raises(StoreError, match="unknown user"):
            change()


def test_sessions_expire_and_end_with_logout_password_change_disable_and_removal(accounts: Any) -> None:
    accounts.add_user("olivia", "operator", "scrypt$x")
    accounts.create_session("olivia", "a" * 64, "csrf-a", expires_at=200.0, now=100.0)
    found = accounts.session("a" * 64, now=150.0)
    assert (found.user_name, found.role, found.csrf) == ("olivia", "operator", "csrf-a")
    assert accounts.session("a" * 64, now=200.0) is None            # expired
    assert accounts.session("b" * 64, now=150.0) is None            # unknown token hash
    for end in (lambda: accounts.end_session("c" * 64), lambda: accounts.set_password("olivia", "scrypt$new"),
                lambda: accounts.set_disabled("olivia", True), lambda: accounts.remove_user("olivia")):
        if accounts.user("olivia") is None:
            accounts.add_user("olivia", "operator", "scrypt$x")
        accounts.set_disabled("olivia", False)
        accounts.create_session("olivia", "c" * 64, "csrf-c", expires_at=10**12, now=100.0)
        assert accounts.session("c" * 64, now=150.0) is not None
        end()
        assert accounts.session("c" * 64, now=150.0) is None
    accounts.add_user("victor", "viewer", "scrypt$x")
    accounts.create_session("victor", "d" * 64, "csrf", expires_at=300.0, now=100.0)
    assert accounts.purge_sessions(now=400.0) == 1


def test_gateway_users_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import cli

    home = tmp_path / "gw"
    runner = CliRunner()
    assert runner.invoke(cli.main, ["init", str(home)]).exit_code == 0

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(cli.main, ["--home", str(home), "users", *args], input=stdin)

    result = run("add", "olivia", "--role", "operator", stdin="long-enough-password\nlong-enough-password\n")
    assert result.exit_code == 0 and "added olivia (operator)" in result.output
    assert "long-enough-password" not in result.output   # prompted without echo
    assert run("add", "victor", "--role", "viewer", "--password-stdin", stdin="short\n").exit_code == 1
    assert run("add", "victor", "--role", "viewer", "--password-stdin", stdin="viewer-password-12\n").exit_code == 0
    assert run("add", "victor", "--role", "viewer", "--password-stdin", stdin="viewer-password-12\n").exit_code == 1
    assert run("add", "../x", "--role", "viewer", "--password-stdin", stdin="viewer-password-12\n").exit_code == 1
    listing = run("list", "--json")
    assert [(u["name"], u["role"]) for u in json.loads(listing.output)] == [("olivia", "operator"), ("victor", "viewer")]
    assert "scrypt" not in run("list").output
    assert run("passwd", "victor", "--password-stdin", stdin="another-password-99\n").exit_code == 0
    assert run("role", "victor", "operator").exit_code == 0
    assert run("remove", "victor").exit_code == 0
    removed_again = run("remove", "victor")
    assert removed_again.exit_code == 1 and "unknown user 'victor'" in removed_again.output


def test_masking_replaces_named_fields_through_lists_and_wildcards() -> None:
    doc = {"document": {"buyer": {"name": "Shop", "id": "1"}, "lines": [{"unit_price": "1.0", "q": "2"},
                                                                        {"unit_price": None}],
                        "notes": ["a", "b"]}, "partner": "ACME"}
    masked = mask_fields(doc, ("document.buyer.name", "document.lines.unit_price", "document.notes", "*.missing"))
    assert masked["document"]["buyer"] == {"name": MASK, "id": "1"}
    assert masked["document"]["lines"] == [{"unit_price": MASK, "q": "2"}, {"unit_price": None}]
    assert masked["document"]["notes"] == [MASK, MASK]
    assert doc["document"]["buyer"]["name"] == "Shop"          # the original is untouched
    assert mask_fields(doc, ("*.buyer",))["document"]["buyer"] == MASK


def test_web_and_masking_settings_are_read_and_checked() -> None:
    problems: list = []
    r = _Reader("gateway.toml", problems)
    tls = HttpSettings(tls_cert=Path("c.pem"), tls_key=Path("k.pem"))
    assert read_web(r, {"enabled": True}, tls).secure_cookies is True
    assert read_web(r, {"enabled": True}, HttpSettings()).secure_cookies is False
    settings = read_web(r, {"enabled": True, "session_hours": 2, "max_failures": 3}, HttpSettings())
    assert (settings.session_hours, settings.max_failures) == (2.0, 3)
    assert not problems
    read_web(r, {"enabled": True, "colour": "red", "session_hours": 0}, HttpSettings(enabled=False))
    assert [p.key for p in problems] == ["web.colour", "web.enabled", "web.session_hours"]
    problems.clear()
    r = _Reader("partners/ACME.toml", problems)
    assert read_partner_masking(r, {"fields": ["document.buyer.name", "document.lines.*"]}) == (
        "document.buyer.name", "document.lines.*")
    read_partner_masking(r, {"fields": ["document..x", 3]})
    assert [p.key for p in problems] == ["masking.fields[0]", "masking.fields[1]"]

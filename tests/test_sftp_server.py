"""The partner-facing SFTP server end to end: real asyncssh server on 127.0.0.1, real OpenSSH and asyncssh clients.

Uploads must be committed to the store (and handed on) before the close is answered; partners are
jailed in their homes; partial uploads leave nothing; brute force gets banned.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import asyncssh
import pytest
from click.testing import CliRunner
from sftp_helpers import PASSWORDS, OpenSsh, Running, eventually, serving, write_deployment
from structlog.testing import capture_logs

from gateway.config_sftp import check_password
from gateway.inbound.sftp import Bans
from gateway.model import Channel, MessageStatus
from gateway.store import Store

EDI = b"UNB+UNOA:2+ACME+GATEWAY+240101:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\nBGM+220+PO1'\r\nUNZ+1+1'\r\n"

pytestmark = pytest.mark.skipif(shutil.which("sftp") is None, reason="the OpenSSH sftp client is not installed")


@pytest.fixture
def lite_store(tmp_path):
    """A SQLite store for tests about SSH behaviour (the store-heavy tests also run on PostgreSQL)."""
    with Store.open(f"sqlite:///{tmp_path / 'lite.sqlite'}", tmp_path / "blobs") as store:
        yield store


async def start(tmp_path: Path, store: Store, sftp: str = ""):
    deployment, keys = write_deployment(tmp_path / "home", sftp=sftp)
    return serving(deployment, keys, store)


def messages(running: Running) -> list:
    return running.store.search_messages(limit=100)


def temp_files(running: Running) -> list[Path]:
    return list(running.temp_dir.iterdir())


# ----------------------------------------------------------------------------- OpenSSH interop


async def test_openssh_key_upload_is_committed_and_outbox_download_is_picked_up(tmp_path, store):
    async with await start(tmp_path, store) as gw:
        client = OpenSsh(gw, tmp_path / "client")
        (client.work / "po.edi").write_bytes(EDI)
        (gw.home("ACME") / "outbox" / "invoice.edi").write_bytes(b"INVOICE FOR ACME")

        code, output = await client.run("ACME", "put po.edi inbox/po.edi\nget outbox/invoice.edi got.edi\nls inbox\n")

        assert code == 0, output
        [message] = messages(gw)
        assert (message.partner, message.channel, message.filename) == ("ACME", Channel.SFTP.value, "po.edi")
        assert message.status == MessageStatus.RECEIVED.value
        assert gw.store.raw(message.id) == EDI
        assert gw.received == [message.id]
        assert (gw.home("ACME") / "inbox" / "po.edi").read_bytes() == EDI
        assert temp_files(gw) == []
        assert (client.work / "got.edi").read_bytes() == b"INVOICE FOR ACME"
        assert (gw.home("ACME") / "outbox" / "invoice.edi").exists()          # ACME keeps downloaded files
        await eventually(lambda: gw.events("picked-up"), "the picked-up event")
        [login] = gw.events("login")
        assert login.partner == "ACME" and "with key SHA256:" in login.detail
        [upload] = gw.events("upload")
        assert upload.message_id == message.id and f"/inbox/po.edi ({len(EDI)} bytes)" in upload.detail
        [picked] = gw.events("picked-up")
        assert picked.partner == "ACME" and "/outbox/invoice.edi (16 bytes)" in picked.detail


async def test_openssh_password_upload_via_askpass_never_logs_the_password(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        client = OpenSsh(gw, tmp_path / "client")
        (client.work / "order.x12").write_bytes(EDI)
        with capture_logs() as logs:
            code, output = await client.run("BETA", "put order.x12 /inbox/order.x12\n", password=PASSWORDS["BETA"])

        assert code == 0, output
        [message] = messages(gw)
        assert (message.partner, message.filename) == ("BETA", "order.x12")
        assert gw.received == [message.id]
        [login] = gw.events("login")
        assert login.partner == "BETA" and login.detail.endswith("with password")
        texts = [str(e) for e in logs] + [str(tuple(e)) for e in gw.events()]
        assert not any(PASSWORDS["BETA"] in text for text in texts)


async def test_openssh_wrong_password_fails_and_is_logged(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        client = OpenSsh(gw, tmp_path / "client")
        (client.work / "order.edi").write_bytes(EDI)
        code, output = await client.run("BETA", "put order.edi inbox/order.edi\n", password="not-the-password")

        assert code != 0
        assert messages(gw) == []
        failed = await eventually(lambda: gw.events("login-failed"), "a login-failed event")
        assert failed[0].partner == "BETA" and "wrong password" in failed[0].detail
        assert not any("not-the-password" in str(tuple(e)) for e in gw.events())


# ----------------------------------------------------------------------------- partial uploads


async def _kill_mid_upload(gw: Running, client: OpenSsh, *, whole_group: bool) -> None:
    big = client.work / "big.edi"
    with open(big, "wb") as fh:
        fh.truncate(300 * 2**20)     # sparse: instant to make, long enough to upload that we can interrupt it
    process = await client.start("ACME", "put big.edi inbox/big.edi\n")
    await eventually(lambda: any(p.stat().st_size > 0 for p in temp_files(gw)), "the upload to start")
    if whole_group:
        os.killpg(process.pid, signal.SIGKILL)   # sftp and its ssh: the TCP connection just ends
    else:
        process.kill()                           # only sftp: ssh notices and closes the channel (EOF, no CLOSE)
    await process.wait()
    await eventually(lambda: not temp_files(gw), "the abandoned temp file to be removed")


@pytest.mark.parametrize("whole_group", [True, False], ids=["ssh-killed", "sftp-killed"])
async def test_killed_client_mid_upload_leaves_nothing_and_a_reupload_works(tmp_path, lite_store, whole_group):
    async with await start(tmp_path, lite_store) as gw:
        client = OpenSsh(gw, tmp_path / "client")
        await _kill_mid_upload(gw, client, whole_group=whole_group)

        assert messages(gw) == []
        assert gw.received == []
        assert list((gw.home("ACME") / "inbox").iterdir()) == []
        assert gw.events("upload") == []

        (client.work / "big.edi").write_bytes(EDI)
        code, output = await client.run("ACME", "put big.edi inbox/big.edi\n")
        assert code == 0, output
        [message] = messages(gw)
        assert gw.store.raw(message.id) == EDI and gw.received == [message.id]
        assert (gw.home("ACME") / "inbox" / "big.edi").read_bytes() == EDI


async def test_connection_dropped_with_file_open_commits_nothing(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        conn = await gw.connect("ACME")
        sftp = await conn.start_sftp_client()
        handle = await sftp.open("inbox/half.edi", "wb")
        await handle.write(EDI[:20])
        assert await sftp.listdir("inbox") == [".", ".."]     # neither the temp name nor the final name shows
        conn.abort()
        await eventually(lambda: not temp_files(gw), "the abandoned temp file to be removed")
        assert messages(gw) == [] and gw.received == []
        assert list((gw.home("ACME") / "inbox").iterdir()) == []


async def test_a_session_cannot_hold_more_than_the_cap_of_open_uploads(tmp_path, lite_store):
    from gateway.inbound.sftp_fs import MAX_OPEN_UPLOADS

    async with await start(tmp_path, lite_store) as gw:
        conn = await gw.connect("ACME")
        sftp = await conn.start_sftp_client()
        handles = [await sftp.open(f"inbox/f{n}.edi", "wb") for n in range(MAX_OPEN_UPLOADS)]
        with pytest.raises(asyncssh.SFTPFailure, match=f"{MAX_OPEN_UPLOADS} uploads are already open"):
            await sftp.open("inbox/one-too-many.edi", "wb")
        await handles[0].write(EDI)
        await handles[0].close()   # a finished upload frees its place
        again = await sftp.open("inbox/next.edi", "wb")
        await again.close()
        conn.abort()
        await eventually(lambda: not temp_files(gw), "the abandoned temp files to be removed")
        assert len(messages(gw)) == 2   # f0.edi and the (empty) next.edi; the abandoned ones are not


async def test_store_failure_fails_the_close_and_nothing_appears(tmp_path):
    database = tmp_path / "gw.sqlite"
    with Store.open(f"sqlite:///{database}", tmp_path / "blobs") as store:
        async with await start(tmp_path, store) as gw:
            with sqlite3.connect(database) as db:            # a real failure of the store's write
                db.execute("ALTER TABLE messages RENAME TO messages_away")
            async with gw.sftp("ACME") as sftp:
                handle = await sftp.open("inbox/po.edi", "wb")
                await handle.write(EDI)
                with pytest.raises(asyncssh.SFTPFailure, match="was not stored.*upload it again"):
                    await handle.close()
                assert "po.edi" not in await sftp.listdir("inbox")
            assert temp_files(gw) == [] and gw.received == []
            assert not (gw.home("ACME") / "inbox" / "po.edi").exists()

            with sqlite3.connect(database) as db:
                db.execute("ALTER TABLE messages_away RENAME TO messages")
            async with gw.sftp("ACME") as sftp:
                async with sftp.open("inbox/po.edi", "wb") as handle:
                    await handle.write(EDI)
            [message] = messages(gw)
            assert gw.received == [message.id] and gw.store.raw(message.id) == EDI


async def test_upload_over_the_size_limit_is_refused(tmp_path, lite_store):
    async with await start(tmp_path, lite_store, sftp="max_file_mb = 0.01\n") as gw:   # 10485 bytes
        async with gw.sftp("ACME") as sftp:
            handle = await sftp.open("inbox/huge.edi", "wb")
            await handle.write(b"x" * 10_000)
            with pytest.raises(asyncssh.SFTPError, match="larger than the 10485 bytes"):
                await handle.write(b"x" * 1_000, 10_000)
            with pytest.raises(asyncssh.SFTPFailure, match="larger than"):
                await handle.close()
        assert messages(gw) == [] and temp_files(gw) == []
        assert not (gw.home("ACME") / "inbox" / "huge.edi").exists()


# ----------------------------------------------------------------------------- isolation


async def test_partner_cannot_reach_outside_its_home(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        beta = gw.home("BETA")
        (beta / "outbox" / "secret.edi").write_bytes(b"BETA ONLY")
        (beta / "inbox" / "theirs.edi").write_bytes(b"BETA UPLOAD")
        outside = gw.deployment.home / "outside.txt"
        outside.write_text("not for partners")
        acme = gw.home("ACME")
        (acme / "inbox" / "mine.edi").write_bytes(b"ACME UPLOAD")
        # Links an operator left behind must not lead out either.
        os.symlink(beta / "outbox" / "secret.edi", acme / "outbox" / "link-to-beta.edi")
        os.symlink(beta / "outbox", acme / "outbox" / "dir-link")
        os.symlink("/etc/passwd", acme / "outbox" / "passwd")
        before = {p: p.read_bytes() for p in (beta / "outbox" / "secret.edi", beta / "inbox" / "theirs.edi", outside)}

        async with gw.sftp("ACME") as sftp:
            assert await sftp.realpath("../../..") == "/"
            for top in ("/..", "inbox/../../..", "../../../.."):                  # .. stops at the home
                assert sorted(await sftp.listdir(top)) == [".", "..", "inbox", "outbox"]
            assert sorted(await sftp.listdir("/outbox")) == [".", ".."]           # the links are not shown
            reads = ["../BETA/outbox/secret.edi", "/../BETA/outbox/secret.edi", "/inbox/../../BETA/inbox/theirs.edi",
                     "/etc/passwd", "../../outside.txt", "../../../../../../etc/passwd", "/outbox/link-to-beta.edi",
                     "/outbox/passwd", "/outbox/dir-link/secret.edi", "/BETA/outbox/secret.edi", "/../.partial/x.part"]
            attacks = [(f"read {p}", lambda p=p: sftp.open(p, "rb")) for p in reads]
            attacks += [(f"list {p}", lambda p=p: sftp.listdir(p)) for p in
                        ("../BETA", "/../BETA/outbox", "/outbox/dir-link", "/etc", "../.partial", "../.archive/BETA")]
            attacks += [(f"stat {p}", lambda p=p: sftp.stat(p)) for p in ("/outbox/link-to-beta.edi", "../BETA")]
            attacks += [
                ("write into BETA", lambda: sftp.open("../BETA/inbox/evil.edi", "wb")),
                ("write outside", lambda: sftp.open("/../../evil.txt", "wb")),
                ("write via a dir link", lambda: sftp.open("/outbox/dir-link/evil.edi", "wb")),
                ("write to the outbox", lambda: sftp.open("/outbox/evil.edi", "wb")),
                ("write at the root", lambda: sftp.open("/evil.edi", "wb")),
                ("write a hidden name in the outbox", lambda: sftp.open("/outbox/.evil", "wb")),
                ("read a hidden name", lambda: sftp.open("/outbox/.staged", "rb")),
                ("append", lambda: sftp.open("/inbox/mine.edi", "ab")),
                ("rename into BETA", lambda: sftp.rename("inbox/mine.edi", "../BETA/inbox/mine.edi")),
                ("rename out of BETA", lambda: sftp.rename("../BETA/inbox/theirs.edi", "inbox/theirs.edi")),
                ("rename to the outbox", lambda: sftp.rename("inbox/mine.edi", "outbox/mine.edi")),
                ("rename outside", lambda: sftp.posix_rename("inbox/mine.edi", "../../mine.edi")),
                ("rename a link", lambda: sftp.rename("outbox/link-to-beta.edi", "outbox/x.edi")),
                ("rename over via ..", lambda: sftp.posix_rename("inbox/mine.edi", "inbox/../../BETA/inbox/x")),
                ("remove BETA's file", lambda: sftp.remove("../BETA/outbox/secret.edi")),
                ("remove outside", lambda: sftp.remove("/../../outside.txt")),
                ("remove the inbox", lambda: sftp.rmdir("/inbox")),
                ("mkdir", lambda: sftp.mkdir("/inbox/sub")),
                ("symlink out", lambda: sftp.symlink("/etc/passwd", "inbox/passwd")),
                ("symlink to BETA", lambda: sftp.symlink("../../BETA/outbox/secret.edi", "inbox/s.edi")),
                ("hard link", lambda: sftp.link("../BETA/outbox/secret.edi", "inbox/h.edi")),
                ("readlink", lambda: sftp.readlink("/outbox/passwd")),
                ("chmod", lambda: sftp.chmod("/inbox/mine.edi", 0o777)),
            ]
            let_through = []
            for name, attack in attacks:
                try:
                    result = await attack()
                except asyncssh.SFTPError:
                    continue
                let_through.append(name)
                if hasattr(result, "close"):
                    await result.close()
            assert let_through == []

        assert {p: p.read_bytes() for p in before} == before
        assert sorted(p.name for p in (beta / "inbox").iterdir()) == ["theirs.edi"]
        assert sorted(p.name for p in (acme / "inbox").iterdir()) == ["mine.edi"]
        assert not (gw.deployment.home / "evil.txt").exists() and not (gw.deployment.settings.sftp.root / "evil.edi").exists()
        assert messages(gw) == []


async def test_partner_may_rename_and_remove_its_own_files(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        (gw.home("ACME") / "outbox" / "done.edi").write_bytes(b"x")
        (gw.home("ACME") / "outbox" / ".staged.tmp").write_bytes(b"being written by the gateway")
        async with gw.sftp("ACME") as sftp:
            async with sftp.open("inbox/a.edi", "wb") as handle:
                await handle.write(EDI)
            await sftp.rename("inbox/a.edi", "inbox/b.edi")
            await sftp.remove("outbox/done.edi")
            assert await sftp.listdir("outbox") == [".", ".."]
            with pytest.raises(asyncssh.SFTPError):
                await sftp.open("outbox/.staged.tmp", "rb")
        assert sorted(p.name for p in (gw.home("ACME") / "inbox").iterdir()) == ["b.edi"]
        assert len(messages(gw)) == 1


async def test_staged_uploads_are_stored_under_their_real_name_only_when_renamed(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        inbox = gw.home("ACME") / "inbox"
        async with gw.sftp("ACME") as sftp:
            for staged, final in ((".a.edi.3f2a.part", "a.edi"), ("b.edi.filepart", "b.edi"), ("c.x12.tmp", "c.x12")):
                async with sftp.open(f"inbox/{staged}", "wb") as handle:
                    await handle.write(EDI)
                assert messages(gw) == [] or all(m.filename != final for m in messages(gw))
                assert (await sftp.stat(f"inbox/{staged}")).size == len(EDI)   # clients check their upload
                await sftp.rename(f"inbox/{staged}", f"inbox/{final}")
            # Never renamed: never stored; hidden names are not listed.
            async with sftp.open("inbox/.abandoned.part", "wb") as handle:
                await handle.write(EDI)
            assert sorted(await sftp.listdir("inbox")) == [".", "..", "a.edi", "b.edi", "c.x12"]
            await sftp.remove("inbox/.abandoned.part")
            # A staged name renamed to another staged name is still not stored.
            async with sftp.open("inbox/d.part", "wb") as handle:
                await handle.write(EDI)
            await sftp.rename("inbox/d.part", "inbox/.d.tmp")
        assert sorted(m.filename for m in messages(gw)) == ["a.edi", "b.edi", "c.x12"]
        assert sorted(p.name for p in inbox.iterdir()) == [".d.tmp", "a.edi", "b.edi", "c.x12"]


async def test_a_staged_upload_the_store_refuses_fails_the_rename_and_stays_staged(tmp_path):
    database = tmp_path / "gw.sqlite"
    with Store.open(f"sqlite:///{database}", tmp_path / "blobs") as store:
        async with await start(tmp_path, store) as gw:
            async with gw.sftp("ACME") as sftp:
                async with sftp.open("inbox/.e.edi.part", "wb") as handle:
                    await handle.write(EDI)
                with sqlite3.connect(database) as db:            # a real failure of the store's write
                    db.execute("ALTER TABLE messages RENAME TO messages_away")
                with pytest.raises(asyncssh.SFTPFailure, match="was not stored.*upload it again"):
                    await sftp.rename("inbox/.e.edi.part", "inbox/e.edi")
                with sqlite3.connect(database) as db:
                    db.execute("ALTER TABLE messages_away RENAME TO messages")
                assert sorted(p.name for p in (gw.home("ACME") / "inbox").iterdir()) == [".e.edi.part"]
                await sftp.rename("inbox/.e.edi.part", "inbox/e.edi")   # the client's retry
            [message] = messages(gw)
            assert message.filename == "e.edi" and gw.store.raw(message.id) == EDI


# ----------------------------------------------------------------------------- downloads


async def test_after_download_archive_and_delete_only_for_complete_downloads(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        for partner in ("BETA", "GAMMA"):
            (gw.home(partner) / "outbox" / "inv.edi").write_bytes(b"I" * 5000)
            (gw.home(partner) / "outbox" / "half.edi").write_bytes(b"H" * 5000)
            async with gw.sftp(partner) as sftp:
                async with sftp.open("outbox/half.edi", "rb") as handle:
                    assert await handle.read(100) == b"H" * 100           # not read to the end: not picked up
                await sftp.get("outbox/inv.edi", str(tmp_path / f"{partner}.edi"))
            assert (tmp_path / f"{partner}.edi").read_bytes() == b"I" * 5000
            await eventually(lambda p=partner: not (gw.home(p) / "outbox" / "inv.edi").exists(), "the file to go")
            assert (gw.home(partner) / "outbox" / "half.edi").exists()
        [archived] = list((gw.server.archive_root / "BETA").iterdir())
        assert archived.name.endswith("-inv.edi") and archived.read_bytes() == b"I" * 5000
        assert not (gw.server.archive_root / "GAMMA").exists()
        picked = await eventually(lambda: len(gw.events("picked-up")) == 2 and gw.events("picked-up"), "2 events")
        assert {(e.partner, e.detail.split(" ")[0]) for e in picked} == {("BETA", "/outbox/inv.edi"),
                                                                       ("GAMMA", "/outbox/inv.edi")}


# ----------------------------------------------------------------------------- protection


async def test_brute_force_bans_the_address_and_the_accounts_passwords_but_not_other_partners(tmp_path, lite_store):
    async with await start(tmp_path, lite_store, sftp="max_failures = 3\nban_seconds = 600\n") as gw:
        for _ in range(3):
            with pytest.raises(asyncssh.PermissionDenied):
                await gw.connect("ACME", password="guess", source="127.0.0.2")
        with pytest.raises(asyncssh.DisconnectError, match="too many failed logins"):
            await gw.connect("ACME", password=PASSWORDS["ACME"], source="127.0.0.2")   # the address is banned
        with pytest.raises(asyncssh.DisconnectError, match="too many failed logins"):
            await gw.connect("BETA", password=PASSWORDS["BETA"], source="127.0.0.2")

        async with gw.sftp("BETA", password=PASSWORDS["BETA"]) as sftp:            # another address: fine
            assert "inbox" in await sftp.listdir("/")
        with pytest.raises(asyncssh.PermissionDenied):
            await gw.connect("ACME", password=PASSWORDS["ACME"])                     # ACME's passwords are suspended
        async with gw.sftp("ACME") as sftp:                                          # ... its key still works
            assert "inbox" in await sftp.listdir("/")

        failed = await eventually(lambda: len(gw.events("login-failed")) >= 3 and gw.events("login-failed"), "events")
        assert [e.partner for e in failed[:3]] == ["ACME"] * 3
        assert all("from 127.0.0.2: wrong password" in e.detail for e in failed[:3])
        refused = await eventually(lambda: len(gw.events("refused")) == 2 and gw.events("refused"), "ban events")
        assert {e.detail.split(":")[0] for e in refused} == {"address 127.0.0.2", "account acme"}
        assert {e.partner for e in gw.events("login")} == {"ACME", "BETA"}


async def test_unknown_user_fails_like_a_wrong_password(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        with pytest.raises(asyncssh.PermissionDenied):
            await gw.connect("ACME", username="root", password="toor")
        [failed] = await eventually(lambda: gw.events("login-failed"), "the event")
        assert failed.partner is None and failed.detail == "user 'root' from 127.0.0.1: unknown user"


async def test_wrong_key_is_a_failed_login(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        with pytest.raises(asyncssh.PermissionDenied):
            await asyncssh.connect("127.0.0.1", gw.server.port, username="acme", known_hosts=gw.known_hosts(),
                                   client_keys=[gw.keys.client("BETA")], agent_path=None, password=None,
                                   config=None, preferred_auth="publickey")
        [failed] = await eventually(lambda: gw.events("login-failed"), "the event")
        assert failed.partner == "ACME" and "public key SHA256:" in failed.detail and "not accepted" in failed.detail


async def test_connections_per_partner_are_limited(tmp_path, lite_store):
    async with await start(tmp_path, lite_store) as gw:
        async with gw.sftp("BETA") as first:                        # BETA: max_connections = 1
            second = await gw.connect("BETA")
            await asyncio.wait_for(second.wait_closed(), 10)      # logged in, then shown the door
            with pytest.raises((asyncssh.Error, OSError)):
                await second.start_sftp_client()
            assert "inbox" in await first.listdir("/")
        [refused] = await eventually(lambda: gw.events("refused"), "the refused event")
        assert refused.partner == "BETA" and "max_connections" in refused.detail
        await eventually(lambda: not gw.server._connections, "the server to see the connections go")
        async with gw.sftp("BETA") as again:                        # the slot is free once the first one left
            assert "outbox" in await again.listdir("/")


async def test_server_wide_connection_limit(tmp_path, lite_store):
    async with await start(tmp_path, lite_store, sftp="max_connections = 1\n") as gw:
        async with gw.sftp("ACME") as sftp:
            with pytest.raises(asyncssh.DisconnectError, match="too many connections"):
                await gw.connect("BETA")
            assert "inbox" in await sftp.listdir("/")
        await eventually(lambda: not gw.server._connections, "the server to see the connection go")
        async with gw.sftp("BETA") as sftp:
            assert "inbox" in await sftp.listdir("/")


async def test_idle_connection_is_closed(tmp_path, lite_store):
    async with await start(tmp_path, lite_store, sftp="idle_timeout = 1\n") as gw:
        conn = await gw.connect("ACME")
        await conn.start_sftp_client()
        await asyncio.wait_for(conn.wait_closed(), 15)


def test_bans_grow_and_are_per_key():
    now = [1000.0]
    bans = Bans(max_failures=2, ban_seconds=10, clock=lambda: now[0])
    assert bans.failed("address 10.0.0.1") == 0
    assert bans.failed("address 10.0.0.1") == 10            # second failure: first ban, 10 s
    assert bans.banned_for("address 10.0.0.1") == 10 and bans.banned_for("address 10.0.0.2") == 0
    now[0] += 10
    assert bans.banned_for("address 10.0.0.1") == 0
    bans.failed("address 10.0.0.1")
    assert bans.failed("address 10.0.0.1") == 20            # the next ban is twice as long
    now[0] += 20
    bans.failed("address 10.0.0.1")
    bans.succeeded("address 10.0.0.1")                      # a good login forgives the failures so far
    assert bans.failed("address 10.0.0.1") == 0
    now[0] += 2 * 86400                                     # quiet for long: the history is forgotten
    bans.failed("address 10.0.0.1")
    assert bans.failed("address 10.0.0.1") == 10


# ----------------------------------------------------------------------------- gateway partners passwd


def test_passwd_prints_a_hash_line_and_never_the_password(tmp_path):
    from gateway.cli import main
    from gateway.cli_sftp import register

    if "passwd" not in main.commands["partners"].commands:   # the lead registers it in gateway.cli
        register(main)
    password = "Tr0ub4dor&3-long-enough"
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "partners", "passwd", "ACME"],
                                input=f"{password}\n{password}\n")
    assert result.exit_code == 0, result.output
    assert password not in result.output
    [line] = [l for l in result.output.splitlines() if l.startswith("password_hash = ")]
    assert check_password(password, line.split('"')[1])
    assert "partners/ACME.toml" in result.output and "[sftp]" in result.output


def test_passwd_refuses_short_and_mismatched_passwords(tmp_path):
    from gateway.cli import main
    from gateway.cli_sftp import register

    if "passwd" not in main.commands["partners"].commands:
        register(main)
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "partners", "passwd", "ACME"],
                                input="short\nshort\n")
    assert result.exit_code != 0 and "at least 12 characters" in result.output
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "partners", "passwd", "ACME"],
                                input="first-long-password\nsecond-long-password\n")
    assert result.exit_code != 0 and "password_hash" not in result.output
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "partners", "passwd", "../etc"],
                                input="x" * 20 + "\n" + "x" * 20 + "\n")
    assert result.exit_code != 0 and "partner id" in result.output

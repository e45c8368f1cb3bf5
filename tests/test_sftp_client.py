"""Our SFTP client: the sftp connector (push) and SftpPoller (poll) against a real OpenSSH sshd, and `partners test`.

One sshd per module (tests/sshd_helpers.py) with its own host key; every test gets its own
folders, a deployment on disk (gateway.toml + partners/ACME.toml with [sftp_remote]) loaded
with load_deployment, and a real store (SQLite, and PostgreSQL where the `store` fixture is
used). What the server did is checked on its disk, with inotify (watchdog) watching the upload
folder, and in sshd's log (connections and logins).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import sqlalchemy as sa
from as2_helpers import eventually
from click.testing import CliRunner
from sshd_helpers import Sshd, free_port, keygen, sshd_unavailable, throwaway_user
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from gateway.cli import main
from gateway.config import load_deployment
from gateway.config_sftp import PartnerSftpRemote, sftp_target
from gateway.errors import PermanentDeliveryError, RetryableDeliveryError
from gateway.inbound.sftp_poll import SftpPoller
from gateway.model import Channel, DeliveryJob, DeliveryStatus, MessageStatus, Received
from gateway.outbound.sftp import SftpConnector
from gateway.store import Store
from gateway.store.tables import events, messages
from gateway.worker import DeliveryWorker
from gateway.writer import BatchWriter

ORDER = b"UNA:+.? 'UNB+UNOC:3+ACME+OURCORP+261126:0930+1'UNH+1+ORDERS:D:96A:UN'UNT+2+1'UNZ+1+1'"


# ----------------------------------------------------------------------------- the partner's sshd


@dataclass
class Server:
    sshd: Sshd
    keys: Path            # our private keys (client.key is authorized, stranger.key is not)
    host_key: str         # the server's real public host key line
    other_host_key: str   # a key the server does not have: pinning it means "the key changed"

    @property
    def port(self) -> int:
        return self.sshd.port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    if reason := sshd_unavailable():
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("sshd")
    host_key = keygen(folder / "host_key")
    other_host_key = keygen(folder / "other_host_key")
    keys = folder / "client"
    keys.mkdir()
    authorized = keygen(keys / "client.key")
    keygen(keys / "stranger.key")
    sshd = Sshd(folder, folder / "host_key", [authorized]).start()
    yield Server(sshd, keys, host_key, other_host_key)
    sshd.stop()


@dataclass
class World:
    home: Path
    remote: Path          # the partner's folders (on the sshd's disk)
    deployment: Any

    @property
    def acme(self) -> Any:
        return self.deployment.partners["ACME"]


def _toml(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_world(tmp_path: Path, server: Server, *, max_file_mb: float = 1, **overrides: Any) -> World:
    """A deployment whose partner ACME has an [sftp_remote] on the test sshd, with folders in/out/done."""
    remote = tmp_path / "remote"
    for sub in ("in", "out", "done"):
        (remote / sub).mkdir(parents=True, exist_ok=True)
    home = tmp_path / "home"
    (home / "partners").mkdir(parents=True, exist_ok=True)
    store_url = f"sqlite:///{tmp_path / 'var' / 'gateway.sqlite'}"   # the polling tests bring their own store
    (home / "gateway.toml").write_text(
        f'[store]\nurl = {_toml(store_url)}\nblobs = "var/blobs"\n[sftp]\nmax_file_mb = {max_file_mb}\n')
    settings = {"host": "127.0.0.1", "port": server.port, "username": "root", "key": str(server.keys / "client.key"),
                "host_key": server.host_key, "upload_dir": str(remote / "in"), "poll_dir": str(remote / "out"),
                "after_poll": "delete", "timeout": 10, **overrides}
    table = "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items() if v is not None)
    (home / "partners" / "ACME.toml").write_text(f'id = "ACME"\n[inbox]\nenabled = false\n[sftp_remote]\n{table}')
    deployment = load_deployment(home, environ={})
    assert not deployment.problems, deployment.problems
    return World(home, remote, deployment)


def job(name: str = "ORDERS_1.edi", body: bytes = ORDER, key: str | None = None) -> DeliveryJob:
    return DeliveryJob(delivery_id="dlv_1", target=sftp_target("ACME"), partner="ACME", document_id="out_1",
                       document_type="edi", idempotency_key=key or secrets.token_hex(16), body=body, attempt=1,
                       filename=name)


async def test_an_unreadable_key_file_of_ours_is_permanent(tmp_path):
    (tmp_path / "broken.key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    remote = PartnerSftpRemote(host="127.0.0.1", port=free_port(), username="x", key=tmp_path / "broken.key",
                               host_key="unused", upload_dir="/in")
    with pytest.raises(PermanentDeliveryError, match=r"^partner ACME: cannot read our SFTP key .*broken\.key: "):
        await SftpConnector(_partner(remote), None).send(job())


def _partner(remote: PartnerSftpRemote) -> Any:
    """A partner with just these [sftp_remote] settings (for settings config files would refuse)."""
    return type("P", (), {"id": "ACME", "sftp_remote": remote})()


def accepted_logins(server: Server) -> int:
    return server.sshd.log().count("Accepted publickey for root")


# ----------------------------------------------------------------------------- pushing


class Recorder(FileSystemEventHandler):
    """What happened in a folder, as inotify saw it: (event, path, destination)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.seen.append((event.event_type, str(event.src_path), str(getattr(event, "dest_path", ""))))


async def test_push_uploads_under_a_temporary_name_then_renames_it_into_place(tmp_path, server):
    world = make_world(tmp_path, server)
    inbox = world.remote / "in"
    key = "a1b2c3d4e5f6a7b8c9d0" * 2
    temp, final = f"{inbox}/.ORDERS_1.edi.{key[:16]}.part", f"{inbox}/ORDERS_1.edi"
    recorder, observer = Recorder(), Observer()
    observer.schedule(recorder, str(inbox))
    observer.start()
    try:
        await SftpConnector(world.acme, world.deployment).send(job(key=key))
        # OpenSSH renames with link() + unlink(): the final name is created whole, the temp one removed.
        await eventually(lambda: ("deleted", temp, "") in recorder.seen, "the temporary name to go away", timeout=5)
    finally:
        observer.stop()
        observer.join()
    on_temp = [event for event, path, _ in recorder.seen if path == temp]
    on_final = [event for event, path, _ in recorder.seen if path == final]
    assert on_temp[0] == "created" and "closed" in on_temp and on_temp[-1] == "deleted"
    assert on_final == ["created"]   # never opened, written or closed under its final name
    assert (inbox / "ORDERS_1.edi").read_bytes() == ORDER
    assert sorted(os.listdir(inbox)) == ["ORDERS_1.edi"]     # no temporary file left behind


async def test_a_changed_host_key_is_refused_before_logging_in(tmp_path, server):
    world = make_world(tmp_path, server, host_key=server.other_host_key)
    logins = accepted_logins(server)
    with pytest.raises(PermanentDeliveryError) as caught:
        await SftpConnector(world.acme, world.deployment).send(job())
    offered = asyncssh.import_public_key(server.host_key).get_fingerprint()
    pinned = asyncssh.import_public_key(server.other_host_key).get_fingerprint()
    assert str(caught.value) == (
        f"partner ACME: SFTP root@127.0.0.1:{server.port}: offered host key {offered} does not match the pinned "
        f"host_key {pinned}; refusing to connect (if the partner changed its key, confirm the new one with them "
        "and update [sftp_remote] host_key)")
    assert os.listdir(world.remote / "in") == []
    assert accepted_logins(server) == logins


async def test_an_identical_file_already_there_counts_as_delivered_a_different_one_is_refused(tmp_path, server):
    world = make_world(tmp_path, server)
    connector = SftpConnector(world.acme, world.deployment)
    final = world.remote / "in" / "ORDERS_1.edi"
    final.write_bytes(ORDER)   # an earlier attempt renamed it, then lost the connection before the answer
    await connector.send(job())
    assert final.read_bytes() == ORDER
    final.write_bytes(b"someone else's file")
    with pytest.raises(PermanentDeliveryError, match=r"ORDERS_1\.edi already exists on their SFTP server with "
                                                     r"other content; refusing to overwrite it"):
        await connector.send(job())
    assert final.read_bytes() == b"someone else's file"
    assert sorted(os.listdir(world.remote / "in")) == ["ORDERS_1.edi"]


async def test_a_key_the_server_does_not_know_is_a_permanent_login_failure(tmp_path, server):
    world = make_world(tmp_path, server, key=str(server.keys / "stranger.key"))
    with pytest.raises(PermanentDeliveryError, match=r"^partner ACME: SFTP root@127\.0\.0\.1:\d+: login refused "
                                                     r"\(tried key\)$"):
        await SftpConnector(world.acme, world.deployment).send(job())


async def test_a_missing_upload_folder_is_permanent_and_names_the_step(tmp_path, server):
    world = make_world(tmp_path, server, upload_dir=str(tmp_path / "nowhere"))
    with pytest.raises(PermanentDeliveryError, match=r"writing .*/nowhere/\.ORDERS_1\.edi\.[0-9a-f]{16}\.part: "):
        await SftpConnector(world.acme, world.deployment).send(job())


@pytest.mark.parametrize("name", ["../escape.edi", "sub/dir.edi", ".hidden", "line\nbreak.edi"])
async def test_unsafe_file_names_are_refused_permanently_without_connecting(tmp_path, name):
    remote = PartnerSftpRemote(host="127.0.0.1", port=free_port(), username="x", password="pw", host_key="unused",
                               upload_dir="/in")
    with pytest.raises(PermanentDeliveryError, match="is not a safe file name"):
        await SftpConnector(_partner(remote), None).send(job(name=name))


async def test_refused_connections_and_silent_servers_are_retryable():
    host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    remote = PartnerSftpRemote(host="127.0.0.1", username="x", password="pw", host_key=host_key, upload_dir="/in")
    with pytest.raises(RetryableDeliveryError, match="cannot connect"):
        await SftpConnector(_partner(replace(remote, port=free_port())), None).send(job())   # nothing listens

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()   # accepts, never says a word

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        port = silent.sockets[0].getsockname()[1]
        with pytest.raises(RetryableDeliveryError, match=r"no answer within 0\.5 s"):
            await SftpConnector(_partner(replace(remote, port=port, timeout=0.5)), None).send(job())
    finally:
        silent.close()


async def test_the_worker_delivers_a_submitted_file_through_the_partners_queue(tmp_path, server):
    world = make_world(tmp_path, server)
    settings = world.deployment.settings.store
    store = Store.open(settings.url, settings.blobs)
    write = BatchWriter(store)
    target = sftp_target("ACME")
    assert target in world.deployment.targets
    worker = DeliveryWorker(store, write, world.deployment.targets,
                            {target: SftpConnector(world.acme, world.deployment)}, owner="test", workers=1,
                            per_target=1, lease_seconds=60, poll_seconds=0.05)
    try:
        _, delivery_id = store.submit_outbound(ORDER, partner="ACME", target=target, filename="INVOIC_7.edi")
        worker.start()
        await eventually(lambda: store.delivery(delivery_id).status == DeliveryStatus.DELIVERED, "the delivery")
        assert (world.remote / "in" / "INVOIC_7.edi").read_bytes() == ORDER
    finally:
        await worker.stop()
        write.close()
        store.close()


async def test_password_login_for_a_throwaway_user(tmp_path, server):
    password = secrets.token_urlsafe(16)
    with throwaway_user(password) as user:
        upload = Path(tempfile.mkdtemp(prefix="gw-sftp-", dir="/tmp"))   # tmp_path's parents are 0700
        try:
            shutil.chown(upload, user)
            (tmp_path / "password").write_text(password)
            world = make_world(tmp_path, server, username=user, key=None, password=f"file:{tmp_path / 'password'}",
                               upload_dir=str(upload))
            await SftpConnector(world.acme, world.deployment).send(job())
            assert (upload / "ORDERS_1.edi").read_bytes() == ORDER
            assert f"Accepted password for {user}" in server.sshd.log()

            wrong = replace(world.acme.sftp_remote, password="not-" + password)
            with pytest.raises(PermanentDeliveryError) as caught:
                await SftpConnector(_partner(wrong), None).send(job(name="other.edi"))
            assert "login refused (tried password)" in str(caught.value)
            assert password not in str(caught.value)
        finally:
            shutil.rmtree(upload)


# ----------------------------------------------------------------------------- polling


class Polling:
    """A store, its writer and a poller for one world; ``handed`` collects what on_message got."""

    def __init__(self, world: World, store: Store) -> None:
        self.world = world
        self.store = store
        self.write = BatchWriter(store)
        self.handed: list[str] = []
        self.poller = SftpPoller(world.deployment, store, self.write, on_message=self.handed.append)

    async def poll(self) -> list[str]:
        return await self.poller.poll_once(self.world.acme)

    def events(self) -> list[tuple[str, str, str]]:
        with self.store.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                sa.select(events.c.step, events.c.outcome, events.c.detail)
                .where(events.c.step == "poll").order_by(events.c.id)).all()]

    def message_count(self) -> int:
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()


@pytest.fixture
def polling(tmp_path, server, store):
    """Makes a Polling on the `store` fixture (SQLite and PostgreSQL) for a world with these [sftp_remote] settings."""
    made: list[Polling] = []

    def _make(**overrides: Any) -> Polling:
        p = Polling(make_world(tmp_path, server, **overrides), store)
        made.append(p)
        return p

    yield _make
    for p in made:
        p.write.close()


async def test_polling_takes_a_new_file_exactly_once_then_deletes_it(polling):
    p = polling()
    outbox = p.world.remote / "out"
    (outbox / "ORDERS_9.edi").write_bytes(ORDER)
    (outbox / ".ORDERS_10.edi.part").write_bytes(b"still uploading")
    assert await p.poll() == []          # the first listing only records sizes and times
    [message_id] = await p.poll()
    assert p.handed == [message_id]
    message = p.store.message(message_id)
    assert (message.channel, message.partner, message.filename, message.status) == (
        Channel.POLL.value, "ACME", "ORDERS_9.edi", MessageStatus.RECEIVED.value)
    assert re.fullmatch(r"sftp-poll:ORDERS_9\.edi:\d+:\d+", message.source_ref)
    assert p.store.raw(message_id) == ORDER
    assert sorted(os.listdir(outbox)) == [".ORDERS_10.edi.part"]   # deleted after the commit; temp names left
    assert await p.poll() == [] and p.handed == [message_id] and p.message_count() == 1


async def test_keep_fetches_a_file_once_even_after_a_restart(polling, store):
    p = polling(after_poll="keep")
    (p.world.remote / "out" / "DESADV_1.edi").write_bytes(ORDER)
    await p.poll()
    assert len(await p.poll()) == 1
    assert await p.poll() == []
    restarted = Polling(p.world, store)   # a new process: nothing in memory, the store remembers
    try:
        assert await restarted.poll() == [] and await restarted.poll() == []
    finally:
        restarted.write.close()
    assert (p.world.remote / "out" / "DESADV_1.edi").exists() and p.message_count() == 1
    # The same name with new content is a new file.
    (p.world.remote / "out" / "DESADV_1.edi").write_bytes(ORDER + b"\n")
    os.utime(p.world.remote / "out" / "DESADV_1.edi", (1_700_000_000, 1_700_000_000))
    await p.poll()
    assert len(await p.poll()) == 1 and p.message_count() == 2


async def test_another_file_with_the_same_name_size_and_mtime_is_fetched_not_deleted(polling, store):
    p = polling()   # after_poll = "delete"
    path = p.world.remote / "out" / "INVOIC_1.edi"
    path.write_bytes(ORDER)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    await p.poll()
    [first] = await p.poll()
    assert not path.exists()
    # The partner uploads a different file under the same name, same size, and its server keeps the mtime.
    other = ORDER.replace(b"+1'UNH", b"+2'UNH", 1)
    assert other != ORDER and len(other) == len(ORDER)
    path.write_bytes(other)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    restarted = Polling(p.world, store)   # after a restart nothing in memory says "fetched in this run"
    try:
        await restarted.poll()
        [second] = await restarted.poll()
    finally:
        restarted.write.close()
    assert second != first and store.raw(second) == other and store.raw(first) == ORDER
    assert not path.exists()   # deleted only now that its own bytes are stored


async def test_a_file_name_that_is_not_utf8_does_not_hide_the_other_files(polling):
    p = polling()
    outbox = p.world.remote / "out"
    with open(os.path.join(os.fsencode(outbox), b"bad-\xff.edi"), "wb") as fh:
        fh.write(ORDER)
    (outbox / "good.edi").write_bytes(ORDER)
    await p.poll()
    [message_id] = await p.poll()
    assert p.store.message(message_id).filename == "good.edi"
    assert any("bad-\\xff.edi" in detail and "is not UTF-8; left there" in detail
               for step, outcome, detail in p.events() if outcome == "error")
    assert os.path.exists(os.path.join(os.fsencode(outbox), b"bad-\xff.edi"))


async def test_a_file_whose_size_still_changes_is_left_for_the_next_poll(polling):
    p = polling()
    growing = p.world.remote / "out" / "BIG.edi"
    growing.write_bytes(ORDER[:20])
    assert await p.poll() == []
    with growing.open("ab") as fh:
        fh.write(ORDER[20:])
    assert await p.poll() == []           # changed since the last listing: not taken
    assert growing.exists()
    [message_id] = await p.poll()
    assert p.store.raw(message_id) == ORDER and not growing.exists()


async def test_move_after_poll_never_overwrites_a_file_in_move_dir(polling, tmp_path):
    p = polling(after_poll="move", move_dir=str(tmp_path / "remote" / "done"))
    done = p.world.remote / "done"
    (done / "ORDERS_3.edi").write_bytes(b"fetched last week")
    (p.world.remote / "out" / "ORDERS_3.edi").write_bytes(ORDER)
    await p.poll()
    assert len(await p.poll()) == 1
    assert os.listdir(p.world.remote / "out") == []
    [moved] = set(os.listdir(done)) - {"ORDERS_3.edi"}
    assert (done / "ORDERS_3.edi").read_bytes() == b"fetched last week"
    assert re.fullmatch(r"ORDERS_3\.\d{8}T\d{12}Z\.edi", moved) and (done / moved).read_bytes() == ORDER


async def test_an_oversize_file_is_reported_once_and_left_on_the_server(polling):
    p = polling(max_file_mb=0.001)   # 1048 bytes
    big = p.world.remote / "out" / "HUGE.edi"
    big.write_bytes(b"x" * 2000)
    for _ in range(3):
        assert await p.poll() == []
    assert big.exists() and p.message_count() == 0
    assert p.events() == [("poll", "error", f"partner ACME: SFTP {big} is 2000 bytes, over the limit of 1048 "
                                            "(gateway.toml [sftp] max_file_mb); left there")]


async def test_a_changed_host_key_while_polling_is_an_event_and_the_loop_goes_on(polling, server):
    p = polling(host_key=server.other_host_key, poll_seconds=1)
    (p.world.remote / "out" / "ORDERS_1.edi").write_bytes(ORDER)
    connections = server.sshd.log().count("Connection from 127.0.0.1")
    await p.poller.start()
    try:
        await eventually(lambda: server.sshd.log().count("Connection from 127.0.0.1") >= connections + 2,
                         "a second poll after the first failed")
        assert not p.poller._tasks[0].done()
    finally:
        await p.poller.stop()
    [(step, outcome, detail)] = p.events()        # reported once, not once per poll
    assert outcome == "error" and "does not match the pinned host_key" in detail
    assert (p.world.remote / "out" / "ORDERS_1.edi").exists() and p.message_count() == 0


async def test_a_failing_server_is_one_error_event_then_one_ok_event_when_it_works_again(polling, server):
    p = polling()
    broken = _partner(replace(p.world.acme.sftp_remote, host_key=server.other_host_key))
    for _ in range(2):
        assert await p.poller.poll_once(broken) == []
    assert await p.poll() == []
    [(_, first, detail), (_, second, recovered)] = p.events()
    assert (first, second, recovered) == ("error", "ok", "polling works again")
    assert "does not match the pinned host_key" in detail


async def test_the_poll_loop_hands_new_messages_on(polling):
    p = polling(poll_seconds=1)
    await p.poller.start()
    try:
        (p.world.remote / "out" / "ORDERS_5.edi").write_bytes(ORDER)
        await eventually(lambda: p.handed, "the polled file")
        assert p.store.raw(p.handed[0]) == ORDER
    finally:
        await p.poller.stop()


# ----------------------------------------------------------------------------- the store's cheap check


def test_source_sha256_matches_partner_channel_and_source_ref(store):
    store.receive(Received(raw=ORDER, channel=Channel.POLL, partner="ACME", filename="a.edi",
                           source_ref="sftp-poll:a.edi:84:1700000000"))
    assert store.source_sha256("ACME", Channel.POLL, "sftp-poll:a.edi:84:1700000000") == hashlib.sha256(ORDER).hexdigest()
    assert not store.source_sha256("ACME", Channel.POLL, "sftp-poll:a.edi:84:1700000001")
    assert not store.source_sha256("BETA", Channel.POLL, "sftp-poll:a.edi:84:1700000000")
    assert not store.source_sha256("ACME", Channel.INBOX, "sftp-poll:a.edi:84:1700000000")


# ----------------------------------------------------------------------------- gateway partners test


def test_partners_test_logs_in_and_lists_the_remote_folders(tmp_path, server):
    world = make_world(tmp_path, server)
    (world.remote / "out" / "ORDERS_1.edi").write_bytes(ORDER)
    result = CliRunner().invoke(main, ["--home", str(world.home), "partners", "test", "ACME"])
    fingerprint = asyncssh.import_public_key(server.host_key).get_fingerprint()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"sftp: logged in to root@127.0.0.1:{server.port} (host key {fingerprint} matches the pin)",
        f"sftp: upload_dir {world.remote / 'in'}: 0 entries",
        f"sftp: poll_dir {world.remote / 'out'}: 1 entries: ORDERS_1.edi",
    ]


def test_partners_test_fails_on_a_changed_host_key_and_a_missing_folder(tmp_path, server):
    world = make_world(tmp_path, server, host_key=server.other_host_key)
    result = CliRunner().invoke(main, ["--home", str(world.home), "partners", "test", "ACME"])
    assert result.exit_code == 1 and "does not match the pinned host_key" in result.output
    world = make_world(tmp_path / "2", server, poll_dir=str(tmp_path / "gone"))
    result = CliRunner().invoke(main, ["--home", str(world.home), "partners", "test", "ACME"])
    assert result.exit_code == 1
    assert f"sftp: poll_dir {tmp_path / 'gone'}: cannot list it: " in result.output

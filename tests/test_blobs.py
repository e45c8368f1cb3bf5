"""BlobStore: content addressing, durable atomic writes, verification on read, path safety."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from gateway.errors import BlobError, StoreError
from gateway.model import Channel, Received
from gateway.store import BlobStore


def test_put_get_roundtrip_and_layout(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = b"UNB+UNOC:3+SENDER+RECEIVER+240101:1200+1'"
    sha = blobs.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.path(sha) == tmp_path / "blobs" / sha[:2] / sha
    assert blobs.path(sha).read_bytes() == data
    assert blobs.get(sha) == data
    assert blobs.exists(sha)


def test_empty_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    assert blobs.get(blobs.put(b"")) == b""


def test_existing_blob_is_not_rewritten(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put(b"same bytes")
    before = blobs.path(sha).stat()
    assert blobs.put(b"same bytes") == sha
    after = blobs.path(sha).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_no_temp_files_left_behind(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    for i in range(5):
        blobs.put(f"blob {i}".encode())
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 5
    assert not [p for p in files if p.name.startswith(".")]


def test_corrupt_blob_raises_naming_sha_and_path(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put(b"original")
    blobs.path(sha).write_bytes(b"tampered")
    with pytest.raises(BlobError) as info:
        blobs.get(sha)
    assert sha in str(info.value)
    assert str(blobs.path(sha)) in str(info.value)
    assert "corrupt" in str(info.value)
    assert isinstance(info.value, StoreError)


def test_missing_blob_raises_naming_sha_and_path(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobError) as info:
        blobs.get(sha)
    assert sha in str(info.value) and str(blobs.path(sha)) in str(info.value)
    assert "missing" in str(info.value)


def test_put_repairs_a_damaged_copy(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sha = blobs.put(b"payload")
    blobs.path(sha).write_bytes(b"pay")  # e.g. truncated by a disk problem
    assert blobs.put(b"payload") == sha
    assert blobs.get(sha) == b"payload"


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "ab/../../x",
        "A" * 64,  # uppercase is not what we write
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "",
        "a" * 62 + "/a",
        "a" * 64 + "\n",
    ],
)
def test_invalid_ids_never_become_paths(tmp_path: Path, bad: str) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(BlobError, match="invalid blob id"):
        blobs.get(bad)
    with pytest.raises(BlobError, match="invalid blob id"):
        blobs.path(bad)


def test_concurrent_puts_of_the_same_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = b"x" * 100_000
    errors: list[BaseException] = []

    def put() -> None:
        try:
            for _ in range(20):
                blobs.put(data)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert blobs.get(hashlib.sha256(data).hexdigest()) == data


def test_unwritable_root_raises_blob_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    blobs = BlobStore(tmp_path / "file" / "blobs")
    with pytest.raises(BlobError, match="cannot write blob"):
        blobs.put(b"data")


def test_store_raw_detects_a_corrupt_raw_blob(store) -> None:  # noqa: ANN001 - conftest fixture
    result = store.receive(Received(raw=b"raw edi", channel=Channel.INBOX, partner="ACME", filename="a.edi"))
    assert store.raw(result.message.id) == b"raw edi"
    store.blobs.path(result.message.raw_sha256).write_bytes(b"raw edj")
    with pytest.raises(BlobError, match=result.message.raw_sha256):
        store.raw(result.message.id)


def test_adopt_links_a_finished_file_as_a_blob_without_copying(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    upload = tmp_path / "upload.tmp"
    upload.write_bytes(b"UNB+UNOC:3+ACME+US'" * 1000)
    sha, size = blobs.adopt(upload)
    assert (sha, size) == (hashlib.sha256(upload.read_bytes()).hexdigest(), upload.stat().st_size)
    assert blobs.path(sha).stat().st_ino == upload.stat().st_ino   # one file, two names: nothing copied
    assert blobs.get(sha) == upload.read_bytes()
    # Adopting the same bytes again (another upload of the same file) keeps the blob there is.
    again = tmp_path / "again.tmp"
    again.write_bytes(upload.read_bytes())
    assert blobs.adopt(again) == (sha, size) and blobs.path(sha).stat().st_ino == upload.stat().st_ino
    assert not [p for p in blobs.path(sha).parent.iterdir() if p.name.endswith(".tmp")]

"""Moving a stored file out of an inbox: never overwriting, durable across a crash, never following a symlink."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path


def archive(path: Path, archive_dir: Path) -> Path:
    """Move the regular file ``path`` into ``archive_dir`` (created) and return its new path.

    Never overwrites: when the name is taken, a UTC timestamp (then a counter) is added before
    the extension. The archive directory is fsynced after the move so the new name survives a
    crash. Raises ``ValueError`` for anything but a regular file (a symlink is never followed).
    """
    path, archive_dir = Path(path), Path(archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise ValueError(f"{path}: not a regular file, refusing to archive it")
    for target in _archive_names(archive_dir, path.name):
        # os.rename would silently replace a file that appeared after an exists() check, and
        # Python has no renameat2(RENAME_NOREPLACE); link() fails on an existing name instead.
        # A crash between link and unlink leaves the file in both places: it is then offered
        # again, and the gateway's content-hash duplicate check makes that a visible event.
        try:
            os.link(path, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:  # another filesystem, or one without hard links: exclusive copy
                _copy_exclusive(path, target)
            except FileExistsError:
                continue
        _fsync_dir(archive_dir)
        os.unlink(path)
        _fsync_dir(path.parent)
        return target
    raise FileExistsError(errno.EEXIST, "no free archive name", str(archive_dir / path.name))


def _archive_names(directory: Path, name: str) -> Iterator[Path]:
    yield directory / name
    stem, suffix = Path(name).stem, Path(name).suffix
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    yield directory / f"{stem}.{stamp}{suffix}"
    for n in range(1, 10_000):
        yield directory / f"{stem}.{stamp}-{n}{suffix}"


def _copy_exclusive(src: Path, dst: Path) -> None:
    fd_in = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd_in)
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(st.st_mode))
        try:
            with open(fd_in, "rb", closefd=False) as fin, open(fd_out, "wb", closefd=False) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
                fout.flush()
                os.fsync(fd_out)
        except BaseException:
            os.close(fd_out)
            os.unlink(dst)
            raise
        os.close(fd_out)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # keep the time it was received
    finally:
        os.close(fd_in)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # some network filesystems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)

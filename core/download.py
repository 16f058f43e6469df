"""Fetch one file over HTTP(S) into place: resumable, hash-checked before it lands, never half-written.

The bytes go to ``NAME.part`` beside the target, hashed as they arrive; an interrupted transfer keeps the part and
the next call asks only for the rest (an HTTP ``Range`` request; a server that ignores it sends the whole file,
which then replaces the part). Only a complete file whose SHA-256 matches the expected one is renamed onto the
target (atomic within the folder); a wrong one is deleted and the error names both hashes, so a wrong file never
lands and is never resumed from. One download per target at a time (a lock beside it). A range whose place in
the file is unknown (an unreadable Content-Range, or a compressed body, whose offsets count compressed bytes) is
refused and the part kept; a whole file sent compressed lands decoded (its hash decides).

requests does the HTTP (redirects, proxies from the environment, TLS, timeouts); it has no resume or hash check of
its own, which is what this module adds.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import requests
from tqdm import tqdm

from vton.core.io import _FILE_MODE, exclusive_lock

CHUNK = 1 << 18
TIMEOUT = (30, 60)  # seconds to connect, and between two reads of the body
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class DownloadError(OSError):
    """The transfer failed (unreachable, HTTP error, connection lost); a partial file is kept for resuming."""


class HashMismatchError(ValueError):
    """The bytes are not the expected file; they were deleted, not placed."""


class _RangeRefused(DownloadError):
    """HTTP 416: the part is longer than what the server holds now."""


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def check_digest(digest: str, expected: str | None, source: str, target: Path) -> None:
    """Refuse bytes whose SHA-256 ``digest`` does not start with ``expected`` (None: nothing published to check)."""
    if expected is not None and not digest.startswith(expected):
        raise HashMismatchError(f"{source} is not {target.name}: expected SHA-256 {expected}..., got {digest}; "
                                f"not placed in {target.parent}")


def _hash_of(path: Path) -> tuple[hashlib._Hash, int]:
    """The running SHA-256 of a part file's bytes and their count (0 and a fresh hash when there is none)."""
    h = hashlib.sha256()
    if not path.is_file():
        return h, 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h, path.stat().st_size


def _request(session: requests.Session, url: str, have: int) -> tuple[requests.Response, int, int | None]:
    """GET ``url`` from byte ``have`` on: (response, the offset its body starts at, the file's total size if
    known). Identity encoding, so byte offsets are the file's."""
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"{url}: cannot connect ({exc})") from exc
    if resp.status_code == 416:
        resp.close()
        raise _RangeRefused(f"{url}: the server refused to resume at byte {have} (HTTP 416)")
    if resp.status_code >= 400:
        resp.close()
        raise DownloadError(f"{url}: HTTP {resp.status_code} {resp.reason}")
    # Asked for identity, a server may still compress: requests then yields the decoded bytes (the file's), but the
    # lengths and ranges in the headers count the encoded ones.
    encoded = resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity")
    if resp.status_code == 206:
        match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if match is None or encoded:
            resp.close()
            why = (f"a {resp.headers['Content-Encoding']}-encoded range" if encoded else
                   f"a part with an unreadable Content-Range {resp.headers.get('Content-Range')!r}")
            raise DownloadError(f"{url}: the server sent {why}, so where its bytes belong is unknown; nothing "
                                "was written (a part already there is kept)")
        start, total = int(match[1]), match[2]
        return resp, start, None if total == "*" else int(total)
    length = resp.headers.get("Content-Length")  # a 200: the whole file, whatever was asked
    return resp, 0, int(length) if length and length.isdigit() and not encoded else None


def download(url: str, target: Path, expected: str | None, progress: bool = True,
             session: requests.Session | None = None) -> str:
    """Fetch ``url`` to ``target`` (resuming ``target.part``), check its SHA-256 against ``expected`` and rename it
    into place; its SHA-256. `DownloadError` keeps the part, `HashMismatchError` deletes it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(target)
    with exclusive_lock(target.with_name(f".{target.name}.lock")), (session or requests.Session()) as http:
        digest, have = _hash_of(part)
        try:
            resp, start, total = _request(http, url, have)
        except _RangeRefused:  # not a part of the file the server holds now: start again from nothing, once
            digest, have = hashlib.sha256(), 0
            resp, start, total = _request(http, url, 0)
        if start == 0 and have:  # a server without ranges sends the whole file: it replaces the part
            digest, have = hashlib.sha256(), 0
        if start != have:
            resp.close()
            raise DownloadError(f"{url}: asked for the bytes from {have} on, the server sent them from {start}")
        # A body cut short ends the stream with what arrived (checked against the length below) instead of urllib3
        # raising and dropping the bytes of the read in progress, which resuming can use.
        resp.raw.enforce_content_length = False
        with resp, open(part, "ab" if have else "wb") as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                disable=None if progress else True, leave=False) as bar:  # None: a bar on terminals only
            try:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            except requests.RequestException as exc:
                raise DownloadError(f"{url}: connection lost after {fh.tell()} of {total or '?'} bytes ({exc}); "
                                    f"{part} is kept: run the same command again to resume") from exc
            fh.flush()
            os.fsync(fh.fileno())
            size = fh.tell()
        if total is not None and size != total:
            raise DownloadError(f"{url}: got {size} of {total} bytes; {part} is kept: run the same command again "
                                "to resume")
        return _land(part, target, digest.hexdigest(), expected, url)


def copy_verified(source: Path, target: Path, expected: str | None) -> str:
    """Copy the file ``source`` to ``target`` through a temporary file beside it, with the same check as
    `download` before the rename; its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                dst.write(chunk)
                digest.update(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, _FILE_MODE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return _land(Path(tmp), target, digest.hexdigest(), expected, str(source))


def _land(tmp: Path, target: Path, digest: str, expected: str | None, source: str) -> str:
    """Rename ``tmp`` onto ``target`` if its digest is the expected one, else delete it and refuse."""
    try:
        check_digest(digest, expected, source, target)
    except HashMismatchError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return digest

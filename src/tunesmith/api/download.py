"""Files as HTTP downloads: one file as it is, a folder as a tar streamed as it is read.

The tar is written here block by block (a header per file, the file's bytes, padding to 512,
two empty blocks at the end), so a multi-GB export starts downloading at once, never sits in
memory, and its length is known before the first byte (``Content-Length``).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

BLOCK = 512
CHUNK = 1 << 20


def _header(name: str, path: Path) -> bytes:
    info = tarfile.TarInfo(name)
    stat = path.stat()
    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def tar_size(members: list[tuple[str, Path]]) -> int:
    total = 2 * BLOCK
    for name, path in members:
        size = path.stat().st_size
        total += len(_header(name, path)) + size + (-size % BLOCK)
    return total


def tar_stream(members: list[tuple[str, Path]]) -> Iterator[bytes]:
    """``members`` as (name in the archive, file) pairs, as a tar byte stream."""
    for name, path in members:
        yield _header(name, path)
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                size += len(chunk)
                yield chunk
        if size % BLOCK:
            yield bytes(BLOCK - size % BLOCK)
    yield bytes(2 * BLOCK)


def file_stream(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk

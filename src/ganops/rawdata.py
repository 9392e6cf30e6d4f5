"""A fingerprint of the raw data files a source reads, so that new or changed images rerun prepare.

Raw data lives outside the repository (Debian's /usr/share/datasets, a user's folder), where DVC
cannot see it. The ``validate`` stage runs on every ``dvc repro`` and writes this fingerprint to a
small file that ``prepare`` depends on: when the content is unchanged the file's bytes are too,
and nothing reruns. The fingerprint covers names, sizes and content hashes, so it is the same on
every machine and after a copy; content hashes are remembered by (path, size, mtime, inode) in a
small SQLite file under .ganops/, so only new or touched files are read again (measured in
benchmarks/rawdata.py).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ganops.data.locations import BUNDLED, DEFAULT_LOCATIONS
from ganops.errors import ConfigError
from ganops.files import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    name: str  # relative to the fingerprinted folder
    size: int
    sha256: str


def _files(location: Path) -> list[Path]:
    if location.is_file():
        return [location]
    return sorted(
        p
        for p in location.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(location).parts)
    )


class HashCache:
    """sha256 of files, remembered by (path, size, mtime_ns, inode); a miss reads the file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INT, mtime INT, inode INT, sha256 TEXT)"
        )

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        row = self.db.execute(
            "SELECT size, mtime, inode, sha256 FROM hashes WHERE path = ?", (key,)
        ).fetchone()
        if row is not None and tuple(row[:3]) == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
            return row[3]
        digest = sha256_file(path)
        self.db.execute(
            "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
            (key, stat.st_size, stat.st_mtime_ns, stat.st_ino, digest),
        )
        return digest

    def close(self) -> None:
        self.db.commit()
        self.db.close()


def locate(source: str, root: str | None) -> Path | None:
    """The file or folder ``source`` reads (``data.source``, ``data.root``), or None when it has none
    (bundled) or none exists yet."""
    if root is not None:
        if not Path(root).exists():
            raise ConfigError(
                f"data.root: {root} does not exist; point it at the folder holding the {source} files"
            )
        return Path(root)
    return next((p for p in DEFAULT_LOCATIONS.get(source, ()) if p.exists()), None)


def fingerprint(source: str, root: str | None, cache_path: Path) -> dict:
    """Names, sizes and content of the raw files, folded into one sha256 (no absolute paths)."""
    if source in BUNDLED:
        return {"source": source, "files": 0, "bytes": 0, "sha256": None, "bundled_with": BUNDLED[source]}
    location = locate(source, root)
    if location is None:  # prepare will try the source's downloader, and say so if it fails
        return {"source": source, "files": 0, "bytes": 0, "sha256": None, "note": "not found yet"}
    cache = HashCache(cache_path)
    try:
        base = location if location.is_dir() else location.parent
        entries = [
            FileEntry(str(p.relative_to(base)), p.stat().st_size, cache.sha256(p)) for p in _files(location)
        ]
    finally:
        cache.close()
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry.name}\0{entry.size}\0{entry.sha256}\n".encode())
    return {
        "source": source,
        "files": len(entries),
        "bytes": sum(e.size for e in entries),
        "sha256": digest.hexdigest(),
    }


def hash_cache_path(root: Path) -> Path:
    return Path(root) / ".ganops" / "file-hashes.sqlite"

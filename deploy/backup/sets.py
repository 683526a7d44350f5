"""A backup set: one dated folder per run, one encrypted archive per store, a manifest.

    kglab-20261206T231500Z/
      manifest.json          versions, sizes, sha256 of every archive, counts, seconds
      postgres.tar.age       each store's dump, tarred, encrypted with age (pyrage)
      mongo.tar.age ...

A set is written as ``NAME.partial`` and renamed when whole, so a set without that suffix is
complete. The manifest holds no secret and stays readable; every archive is encrypted to the
age recipients (``KGLAB_BACKUP_RECIPIENTS``), so the job that backs up never holds the key that
decrypts (``KGLAB_BACKUP_IDENTITY``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage

from .config import BackupSettings
from .stores import BackupError, Store

FORMAT = 1
SET_NAME = re.compile(r"^kglab-(\d{8}T\d{6}Z)$")
MANIFEST = "manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------ keys


def load_identity(settings: BackupSettings) -> Any:
    if settings.identity is not None:
        text = settings.identity.get_secret_value().strip()
    elif settings.identity_file.is_file():
        text = settings.identity_file.read_text().strip()
    else:
        raise BackupError(
            "No age identity to decrypt with: set KGLAB_BACKUP_IDENTITY or "
            f"KGLAB_BACKUP_IDENTITY_FILE (looked in {settings.identity_file})."
        )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    try:
        return pyrage.x25519.Identity.from_str(lines[0])
    except (IndexError, pyrage.IdentityError):
        raise BackupError("The age identity is not an AGE-SECRET-KEY-1... line.") from None


def recipients(settings: BackupSettings, *, create: bool) -> list[Any]:
    """The recipients to encrypt to: ``KGLAB_BACKUP_RECIPIENTS``, else the identity's public
    key. With ``create`` and neither, an identity is made in ``identity_file`` (mode 600,
    outside the backup folder) so ``make backup`` works on a fresh machine."""
    if settings.recipient_keys:
        try:
            return [pyrage.x25519.Recipient.from_str(k) for k in settings.recipient_keys]
        except pyrage.RecipientError:
            raise BackupError("KGLAB_BACKUP_RECIPIENTS holds a key that is not age1...") from None
    if settings.identity is None and not settings.identity_file.exists() and create:
        identity = pyrage.x25519.Identity.generate()
        settings.identity_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(settings.identity_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"# kglab backup identity, made {datetime.now(UTC).isoformat()}\n")
            out.write(f"# public key: {identity.to_public()}\n{identity}\n")
        print(f"made a new backup key: {settings.identity_file} (keep a copy somewhere safe)")
    return [load_identity(settings).to_public()]


# ------------------------------------------------------------------------------ backup


def set_name(at: datetime) -> str:
    return "kglab-" + at.strftime("%Y%m%dT%H%M%SZ")


def _private_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))  # mode 700


def create_set(
    settings: BackupSettings,
    stores: Sequence[Store],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Path:
    """Dump every store, tar, encrypt and checksum each, write the manifest; the set's path."""
    if not stores:
        raise BackupError("No store to back up: set the KGLAB_*_URL variables (make servers).")
    to = recipients(settings, create=True)
    started_at = now()
    name = set_name(started_at)
    final = settings.dir / name
    if final.exists():
        raise BackupError(f"{final} exists already (one set per second).")
    partial = settings.dir / f"{name}.partial"
    partial.mkdir(parents=True, mode=0o700)
    work = _private_dir(settings.dir, ".work-")
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "set": name,
        "created_at": started_at.isoformat(),
        "host": socket.gethostname(),
        "encryption": "age (X25519)",
        "recipients": [str(r) for r in to],
        "stores": {},
    }
    try:
        for store in stores:
            t0 = time.perf_counter()
            folder = work / store.name
            folder.mkdir()
            version = store.version()
            details = store.dump(folder)
            dumped = time.perf_counter()
            plain = work / f"{store.name}.tar"
            with tarfile.open(plain, "w") as archive:
                archive.add(folder, arcname=store.name)
            shutil.rmtree(folder)
            encrypted = partial / f"{store.name}.tar.age"
            pyrage.encrypt_file(str(plain), str(encrypted), to)
            manifest["stores"][store.name] = {
                "version": version,
                "archive": encrypted.name,
                "bytes": encrypted.stat().st_size,
                "sha256": sha256_of(encrypted),
                "plain_bytes": plain.stat().st_size,
                "plain_sha256": sha256_of(plain),
                "dump_seconds": round(dumped - t0, 3),
                "seconds": round(time.perf_counter() - t0, 3),
                **details,
            }
            plain.unlink()
        manifest["finished_at"] = now().isoformat()
        manifest["seconds"] = round((now() - started_at).total_seconds(), 3)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------ restore


def read_manifest(path: Path) -> dict[str, Any]:
    if path.name.endswith(".partial"):
        raise BackupError(f"{path} is an unfinished set (its backup did not complete).")
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} is not a backup set: it has no {MANIFEST}.") from None
    except ValueError:
        raise BackupError(f"{path / MANIFEST} is not valid JSON.") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is a set of format {manifest.get('format')}, not {FORMAT}.")
    return manifest


def verify_set(path: Path) -> dict[str, Any]:
    """The manifest, once every archive it lists is present with its checksum."""
    manifest = read_manifest(path)
    for store, entry in manifest["stores"].items():
        archive = path / entry["archive"]
        if not archive.is_file():
            raise BackupError(f"{store}: {archive.name} is missing from {path}.")
        if sha256_of(archive) != entry["sha256"]:
            raise BackupError(f"{store}: {archive.name} does not match its checksum; not used.")
    return manifest


def restore_set(
    settings: BackupSettings, path: Path, stores: Sequence[Store]
) -> dict[str, dict[str, Any]]:
    """Restore each configured store the set holds; the set is verified whole first."""
    manifest = verify_set(path)
    identity = load_identity(settings)
    wanted = {s.name: s for s in stores}
    missing = sorted(set(wanted) - set(manifest["stores"]))
    if missing:
        raise BackupError(f"{path.name} holds no backup of {', '.join(missing)}.")
    work = _private_dir(settings.dir, ".restore-")
    report: dict[str, dict[str, Any]] = {}
    try:
        for name, store in wanted.items():
            t0 = time.perf_counter()
            entry = manifest["stores"][name]
            plain = work / f"{name}.tar"
            try:
                pyrage.decrypt_file(str(path / entry["archive"]), str(plain), [identity])
            except pyrage.DecryptError:
                raise BackupError(
                    f"{name}: the identity given does not decrypt this set."
                ) from None
            if sha256_of(plain) != entry["plain_sha256"]:
                raise BackupError(f"{name}: the decrypted archive does not match its checksum.")
            with tarfile.open(plain) as archive:
                archive.extractall(work, filter="data")
            plain.unlink()
            details = store.restore(work / name)
            shutil.rmtree(work / name)
            report[name] = {"seconds": round(time.perf_counter() - t0, 3), **details}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


# ------------------------------------------------------------------------------ retention


@dataclass(frozen=True)
class Pruned:
    kept: list[Path]
    removed: list[Path]


def prune(settings: BackupSettings, *, now: datetime | None = None) -> Pruned:
    """Keep every set of the last ``keep_hours`` hours and the newest set of each of the last
    ``keep_daily`` days (UTC); remove the other complete sets, and partial ones over a day old."""
    now = now or datetime.now(UTC)
    sets: list[tuple[datetime, Path]] = []
    removed: list[Path] = []
    if not settings.dir.is_dir():
        return Pruned([], [])
    for entry in settings.dir.iterdir():
        match = SET_NAME.match(entry.name.removesuffix(".partial"))
        if not match or not entry.is_dir():
            continue
        at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if entry.name.endswith(".partial"):
            if now - at > timedelta(days=1):
                shutil.rmtree(entry)
                removed.append(entry)
            continue
        sets.append((at, entry))
    sets.sort(reverse=True)
    kept: set[Path] = set()
    days_seen: set[str] = set()
    oldest_day = (now - timedelta(days=settings.keep_daily - 1)).date()
    for at, entry in sets:
        if now - at <= timedelta(hours=settings.keep_hours):
            kept.add(entry)
        day = at.date().isoformat()
        if at.date() >= oldest_day and day not in days_seen:
            days_seen.add(day)
            kept.add(entry)
    for _, entry in sets:
        if entry not in kept:
            shutil.rmtree(entry)
            removed.append(entry)
    return Pruned(sorted(kept), sorted(removed))

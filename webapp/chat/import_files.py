"""Reading an uploaded file as documents: strict UTF-8 JSON, or a zip checked whole before any entry is read.

An uploaded file is hostile until checked (docs/exports.md lists the limits,
which are settings): every zip entry's name, size and kind are checked from
the directory first, and each read is bounded by the size it declares.
"""

from __future__ import annotations

import json
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from django.conf import settings

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ImportRejected(Exception):
    """The file cannot be imported; the message says why, in words for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- reading the file -----------------------------------------------------------------


def parse_document(raw: bytes, *, where: str) -> object:
    """Strict UTF-8 and strict JSON (no NaN or Infinity), with the reason when it is neither."""
    if raw.startswith(ZIP_MAGIC):
        raise ImportRejected(f"{where} is a zip inside the zip; nested zips are not imported.")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ImportRejected(f"{where} is not UTF-8 text (bad byte at position {error.start}).") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise ImportRejected(
            f"{where} is not JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ) from None
    except RecursionError:
        raise ImportRejected(f"{where} is nested too deeply to be a conversation.") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise ImportRejected(f"{where} is not JSON we accept: {error}.") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number in JSON")


def zip_documents(file: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """Check every entry of the zip before reading any, then yield the JSON entries one by one."""
    try:
        archive = zipfile.ZipFile(file)
        entries = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as error:
        raise ImportRejected(f"The file is not a readable zip ({error}).") from None
    if len(entries) > settings.IMPORT_MAX_ZIP_ENTRIES:
        raise ImportRejected(
            f"The zip has {len(entries)} entries; the limit is {settings.IMPORT_MAX_ZIP_ENTRIES}."
        )
    files = [entry for entry in entries if _check_entry(entry)]
    total = sum(entry.file_size for entry in files)
    if total > settings.IMPORT_MAX_UNCOMPRESSED_BYTES:
        raise ImportRejected(
            f"The zip would unpack to {megabytes(total)}; the limit is "
            f"{megabytes(settings.IMPORT_MAX_UNCOMPRESSED_BYTES)}."
        )
    for entry in files:
        try:
            with archive.open(entry) as member:
                # The declared size bounds the read, whatever the compressed stream claims.
                raw = member.read(entry.file_size + 1)
        except (
            zipfile.BadZipFile,
            zlib.error,
            NotImplementedError,
            RuntimeError,
            EOFError,
            OSError,
        ) as error:
            raise ImportRejected(f"{entry.filename} cannot be read from the zip ({error}).") from None
        if len(raw) > entry.file_size:
            raise ImportRejected(f"{entry.filename} is larger than the zip says.")
        yield entry.filename, raw


def _check_entry(entry: zipfile.ZipInfo) -> bool:
    """Raise for an entry we refuse; False for a folder, True for a file to import."""
    name = entry.filename
    parts = name.replace("\\", "/").split("/")
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or ":" in name
        or ".." in parts
        or any(ord(char) < 32 for char in name)
    ):
        raise ImportRejected(f"The zip holds an unsafe file name ({name!r}); nothing was imported.")
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise ImportRejected(f"{name} is a symbolic link; the zip must hold plain .json files.")
    if entry.is_dir():
        return False
    if entry.flag_bits & 0x1:
        raise ImportRejected(f"{name} is encrypted; export again without a password.")
    if name.lower().endswith((".zip", ".jar", ".gz", ".tgz", ".7z")):
        raise ImportRejected(f"{name} is an archive inside the zip; nested archives are not imported.")
    if not name.lower().endswith(".json"):
        raise ImportRejected(f"{name} is not a .json file; the zip must hold only our JSON exports.")
    if entry.file_size > settings.IMPORT_MAX_BYTES:
        raise ImportRejected(
            f"{name} would unpack to {megabytes(entry.file_size)}; the limit for one conversation is "
            f"{megabytes(settings.IMPORT_MAX_BYTES)}."
        )
    return True


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"

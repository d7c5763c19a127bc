"""Bytes to text, for every file the course reads: one set of checks, one set of messages.

A learner's file can be missing, a folder, UTF-16 (Excel's "Unicode text"),
Latin-1, or JSON with a stray comma. Each of those ends here in one
:class:`~course_lib.settings.CourseError` line that names the file and says
what to do, whichever reader (a dataset parser or the command line's tables)
asked for the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..settings import CourseError


def read_bytes(path) -> bytes:
    """The file's bytes; refuses a missing file, a folder and UTF-16 / binary files."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        raise CourseError(f"{path}: {what}")
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise CourseError(f"{path}: contains NUL bytes (UTF-16 or a binary file?); "
                          "save it as UTF-8 text")
    return data


def decode_utf8(data: bytes, source) -> str:
    """UTF-8 text (a byte-order mark, as Excel writes, is dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CourseError(f"{source}: not valid UTF-8 text (undecodable byte at offset "
                          f"{err.start}); save the file as UTF-8") from None


def read_text(path) -> str:
    """A UTF-8 text file, as text."""
    return decode_utf8(read_bytes(path), path)


def read_json(path):
    """A UTF-8 JSON file, parsed; malformed JSON names the line and column."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CourseError(f"{path}: malformed JSON ({err.msg}, line {err.lineno} column "
                          f"{err.colno})") from None

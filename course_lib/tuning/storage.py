"""Finished trials on disk, so an interrupted search resumes instead of starting over."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .configs import plain_value


class TrialStore:
    """Finished trials, one JSON object per line, appended as each trial ends.

    Appending one line and flushing it to disk means a crash loses at most the trial that
    was running. A line cut short by a crash is skipped when reading, and the next append
    starts on a fresh line.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        records = {}
        if not self.path.is_file():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the last line of an interrupted write
                continue
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
        return records

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=plain_value) + "\n"
        needs_newline = (self.path.is_file() and self.path.stat().st_size > 0
                         and not self.path.read_bytes().endswith(b"\n"))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if needs_newline else "") + line)
            handle.flush()
            os.fsync(handle.fileno())


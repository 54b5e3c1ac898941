"""The journal of a mask run: every image's masks.csv row, appended as soon as it is known.

masks.csv is rewritten (atomically) only at the end of a run. So that a run killed outright
(``kill -9``, a crash, the machine's OOM killer) loses no record, the process that writes an
output first appends its row to ``masks.journal.jsonl`` in the output folder, one JSON object a
line, then puts the output in place. An output on disk therefore always has a row: in masks.csv,
or in the journal, which the next run merges (later lines win) and removes once masks.csv holds
everything. Rows whose output never appeared are dropped when the journal is read.

Several worker processes append to one journal: each row is one ``write`` to a file opened with
``O_APPEND`` and starts with a newline, so a row cut short (a full disk) spoils no other row.
The rows survive the program's death, not a power cut (nothing is fsynced, as for the outputs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from maskmtl_cli.masking.records import COPIED, CSV_COLUMNS, MASKED

JOURNAL = "masks.journal.jsonl"


class JournalWriter:
    """Appends rows to one journal; opens the file on the first row (lazily, after a fork)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def append(self, record: dict) -> None:
        """Append ``record`` (its masks.csv columns only) in one ``write``.

        Raises:
            OSError: The journal cannot be written (the caller decides what that means).
        """
        row = {column: record.get(column, "") for column in CSV_COLUMNS}
        data = b"\n" + json.dumps(row).encode("ascii") + b"\n"
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def journal_size(path: Path) -> int:
    """Bytes in the journal now (0 when there is none): where this run's rows will start."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_journal(path: Path, output_root: Path, start: int = 0) -> dict[str, dict]:
    """Rows of the journal from byte ``start`` on, by source; the last row of a source wins.

    Lines that are not a complete row (cut short by a kill or a full disk) are skipped, and so
    are ``masked`` and ``copied`` rows whose output is not on disk: the run stopped between
    writing the row and putting the output in place.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return {}
    rows: dict[str, dict] = {}
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("source"), str):
            continue
        rows[row["source"]] = {column: row.get(column, "") for column in CSV_COLUMNS}
    return {
        source: row for source, row in rows.items()
        if row["status"] not in (MASKED, COPIED)
        or (row["output"] and (output_root / row["output"]).is_file())
    }


def remove_journal(path: Path) -> None:
    """Delete the journal once masks.csv holds its rows (a missing one is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

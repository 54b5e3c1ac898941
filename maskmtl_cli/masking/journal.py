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

Workers of a Ray cluster (``maskmtl_cli.masking.ray_pool``) may sit on other machines, where
``O_APPEND`` to one file over a network filesystem is not atomic. Each such worker process writes
a journal of its own, ``masks.journal.<host>-<pid>.jsonl``; ``journal_files`` lists them all, and
the functions below read and remove them together (the local pool's file first, then the others
from the oldest modified).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from maskmtl_cli.masking.records import COPIED, CSV_COLUMNS, MASKED

JOURNAL = "masks.journal.jsonl"
#: Journals of single worker processes (Ray workers): ``masks.journal.<name>.jsonl``.
_WORKER_JOURNALS = "masks.journal.*.jsonl"


def worker_journal_name(name: str) -> str:
    """File name of the journal of one worker process (``name`` made safe for a file name)."""
    safe = "".join(char if char.isalnum() or char in "-_" else "-" for char in name)
    return f"masks.journal.{safe}.jsonl"


def journal_files(output_root: Path) -> list[Path]:
    """Every journal in ``output_root``: the local pool's, then worker ones, oldest first."""
    files = [Path(output_root) / JOURNAL] if (Path(output_root) / JOURNAL).is_file() else []
    workers = []
    for path in Path(output_root).glob(_WORKER_JOURNALS):
        try:
            workers.append((path.stat().st_mtime, path.name, path))
        except OSError:  # removed meanwhile
            continue
    return files + [path for _, _, path in sorted(workers)]


def journal_marks(output_root: Path) -> dict[str, int]:
    """Bytes in each journal now, by file name: where the rows of a run starting now begin."""
    return {path.name: journal_size(path) for path in journal_files(output_root)}


def read_journals(output_root: Path, since: dict[str, int] | None = None) -> dict[str, dict]:
    """Rows of every journal by source (see ``read_journal``), later files winning.

    Args:
        output_root: The output folder.
        since: ``journal_marks`` taken earlier: read only what was appended after it (files
            that did not exist then are read whole). None reads everything.
    """
    rows: dict[str, dict] = {}
    for path in journal_files(output_root):
        start = (since or {}).get(path.name, 0)
        rows.update(read_journal(path, output_root, start))
    return rows


def remove_journals(output_root: Path) -> None:
    """Delete every journal once masks.csv holds their rows."""
    for path in journal_files(output_root):
        remove_journal(path)


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

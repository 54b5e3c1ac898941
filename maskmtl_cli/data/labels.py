"""Labels: UTKFace file-name parsing, label CSVs and label validation.

A label CSV has a ``filename`` column and any label columns: UTKFace's ``age``, ``gender``,
``race`` (checked to be numbers in range) and any others (kept as written, for tasks of their
own, see ``maskmtl_cli.tasks``).

UTKFace names look like ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` (gender 0 male / 1 female;
race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others). Eight names in the release break that
pattern; where the age/gender/race prefix is intact they are parsed leniently, otherwise they are
reported as unparseable, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.tasks import GENDER_NAMES, NON_LABEL_COLUMNS, RACE_NAMES, RESERVED_NAMES
from maskmtl_cli.tasks import UTKFACE_TASK_NAMES as TASKS

__all__ = ["GENDER_NAMES", "RACE_NAMES", "TASKS", "ParsedName", "label_problem",
           "parse_utkface_name", "read_label_csv"]
MAX_AGE = 130

_STRICT_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg\.chip\.jpg$")
_PREFIX = re.compile(r"^(\d{1,3})_(\d+)_(\d+)_\S")


@dataclass(frozen=True)
class ParsedName:
    """Labels read from one file name. ``status`` is "ok", "lenient" or "unparseable"."""

    age: float | None
    gender: int | None
    race: int | None
    status: str
    reason: str = ""


def parse_utkface_name(filename: str) -> ParsedName:
    """Read age, gender and race from a UTKFace-style file name.

    A name that matches the documented pattern exactly is "ok". One whose ``AGE_GENDER_RACE_``
    prefix is intact but whose tail is off (datetime length, a stray space, a missing dot, another
    extension such as a masked copy saved as PNG) is "lenient". Anything else is "unparseable".
    """
    name = Path(filename).name
    strict = _STRICT_NAME.match(name)
    if strict:
        age, gender, race, _ = strict.groups()
        return ParsedName(float(age), int(gender), int(race), "ok")
    prefix = _PREFIX.match(name)
    if prefix:
        age, gender, race = (int(value) for value in prefix.groups())
        return ParsedName(float(age), gender, race, "lenient", "name tail does not match "
                          "AGE_GENDER_RACE_DATETIME.jpg.chip.jpg")
    return ParsedName(None, None, None, "unparseable",
                      "name does not start with AGE_GENDER_RACE_ (race field missing?)")


def label_problem(age: float | None, gender: float | None, race: float | None) -> str:
    """Return why a label triple is out of range, or "" when it is valid (None = unknown).

    Gender and race are class ids: a fraction such as 0.5 is out of range, never rounded.
    """
    if age is not None and not (0 <= age <= MAX_AGE):
        return f"age {age:g} outside 0-{MAX_AGE}"
    if gender is not None and gender not in (0, 1):
        return f"gender {gender:g} is not 0 (male) or 1 (female)"
    if race is not None and race not in range(len(RACE_NAMES)):
        return f"race {race:g} is not one of 0-4 ({', '.join(RACE_NAMES)})"
    return ""


def read_label_csv(path: Path):
    """Read a label CSV: a ``filename`` column plus any label columns.

    ``age``, ``gender`` and ``race`` must hold numbers (checked for range later); every other
    column is kept as written (its values become class names or numbers of a task).

    Returns:
        A DataFrame indexed by file name (as written, matched against names relative to the
        data folder first, then against bare file names), one column per label.
    """
    import pandas as pd

    if not path.is_file():
        raise InputError(f"Label file not found: {path}. Pass an existing CSV with --labels.")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"Cannot read label CSV {path}: {error}") from None
    if "filename" not in table.columns:
        raise DataError(
            f"Label CSV {path} has no 'filename' column "
            f"(columns: {', '.join(map(str, table.columns))}). "
            "It needs 'filename' plus label columns such as age, gender, race."
        )
    label_columns = [str(column) for column in table.columns if column not in NON_LABEL_COLUMNS]
    if not label_columns:
        raise DataError(f"Label CSV {path} has no label columns besides 'filename' (for example "
                        "age, gender, race, expression).")
    taken = [column for column in label_columns
             if column in RESERVED_NAMES and column not in TASKS]
    if taken:
        raise DataError(f"Label CSV {path}: column '{taken[0]}' has a name maskmtl uses itself; "
                        "rename it.")
    for column in [column for column in TASKS if column in table.columns]:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = table[column].notna() & values.isna()
        if bad.any():
            row = int(bad.idxmax())
            raise DataError(f"Label CSV {path}, row {row + 2}: {column} value "
                            f"{table[column][row]!r} is not a number.")
        table[column] = values
    duplicated = table["filename"].duplicated()
    if duplicated.any():
        raise DataError(f"Label CSV {path} lists {table['filename'][duplicated].iloc[0]!r} twice.")
    return table.set_index("filename")[label_columns]

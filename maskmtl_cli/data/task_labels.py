"""Task labels from manifest columns: class lists, and label arrays with unknowns marked.

Conventions (the same everywhere a label array is passed around): a classification label is an
int class index into ``TaskSpec.classes`` with ``-1`` for unknown; a regression label is a float
with NaN for unknown. UTKFace's ``gender`` and ``race`` columns hold class ids already (0 male /
1 female; 0-4 in ``RACE_NAMES`` order); any other classification column holds class names (or
numbers, compared as text: ``1`` and ``1.0`` are the same class).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from maskmtl_cli.errors import DataError
from maskmtl_cli.tasks import (
    CLASSIFICATION,
    MAX_CLASSES,
    NON_LABEL_COLUMNS,
    UTKFACE_TASK_NAMES,
    TaskSpec,
    default_spec,
)


def class_key(value) -> str | None:
    """The class name of one label cell: text as written, whole numbers without ``.0``.

    Returns None for an empty cell.
    """
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        if value != value:  # NaN
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    return text or None


def _sorted_classes(names: set[str]) -> tuple[str, ...]:
    """Numbers in numeric order, other names alphabetically."""
    try:
        return tuple(sorted(names, key=float))
    except ValueError:
        return tuple(sorted(names))


def _is_fraction(key: str) -> bool:
    """A label that reads as a number with a fractional part (a measurement, not a class)."""
    try:
        return not float(key).is_integer()
    except ValueError:
        return False


def label_columns(table) -> list[str]:
    """Columns of a manifest that can be tasks (everything but paths, hashes and splits)."""
    return [str(column) for column in table.columns if column not in NON_LABEL_COLUMNS]


def check_task_columns(table, specs, manifest) -> None:
    """DataError naming any task that has no column in the manifest."""
    for spec in specs:
        if spec.name in table.columns:
            continue
        others = [column for column in label_columns(table) if column not in UTKFACE_TASK_NAMES]
        columns = f"its other label columns: {', '.join(others)}" if others \
            else "it has no other label columns"
        raise DataError(
            f"Unknown task '{spec.name}'. Choose any of: {', '.join(UTKFACE_TASK_NAMES)}, or a "
            f"label column of the manifest {manifest} ({columns}). Add columns with "
            "`maskmtl split --labels labels.csv`.")


def resolve_classes(table, specs) -> tuple[TaskSpec, ...]:
    """Fill in the classes of classification tasks from the labels of every manifest row.

    A task without classes gets the sorted distinct values of its column; one whose classes
    were given must cover every label.

    Raises:
        DataError: No label at all, labels outside the given classes, one class only, or so
            many distinct values that the column is more likely a number to regress.
    """
    resolved = []
    for spec in specs:
        if spec.kind != CLASSIFICATION or default_spec(spec.name) is not None:
            resolved.append(spec)
            continue
        found = {key for key in map(class_key, table[spec.name].tolist()) if key is not None}
        if not found:
            raise DataError(f"Task '{spec.name}': its column has no labels at all.")
        if spec.classes:
            outside = sorted(found - set(spec.classes))
            if outside:
                raise DataError(
                    f"Task '{spec.name}': label(s) {', '.join(map(repr, outside[:5]))} are not "
                    f"among its classes {list(spec.classes)}. Add them to the task spec or fix "
                    "the labels.")
            resolved.append(spec)
            continue
        fractional = [key for key in found if _is_fraction(key)]
        if len(found) > MAX_CLASSES or fractional:
            why = (f"labels such as {fractional[0]} are not whole numbers" if fractional
                   else f"it has {len(found)} distinct labels, too many classes")
            raise DataError(
                f"Task '{spec.name}' would be a classification task, but {why}. If it is a "
                f"number to predict, write --tasks {spec.name}:regression (or kind: "
                "regression in the task spec).")
        if len(found) < 2:
            raise DataError(f"Task '{spec.name}' has a single class ({next(iter(found))!r}): "
                            "there is nothing to learn. Check the column.")
        resolved.append(replace(spec, classes=_sorted_classes(found)))
    return tuple(resolved)


def task_targets(rows, spec: TaskSpec) -> np.ndarray:
    """The label array of one task over ``rows`` (int32 with -1, or float32 with NaN).

    Raises:
        DataError: A regression label is not a number, or a class is not the model's.
    """
    import pandas as pd

    column = rows[spec.name]
    if spec.kind != CLASSIFICATION:
        values = pd.to_numeric(column, errors="coerce")
        bad = column.notna() & values.isna()
        if bad.any():
            raise DataError(f"Task '{spec.name}' is a regression task, but label "
                            f"{column[bad].iloc[0]!r} is not a number.")
        return values.to_numpy(dtype="float32", na_value=np.nan)
    if default_spec(spec.name) is not None:  # UTKFace's class ids
        return column.astype("float64").fillna(-1).to_numpy().astype(np.int32)
    index = {name: k for k, name in enumerate(spec.classes)}
    keys = [class_key(value) for value in column.tolist()]
    outside = sorted({key for key in keys if key is not None and key not in index})
    if outside:
        raise DataError(
            f"Task '{spec.name}': label(s) {', '.join(map(repr, outside[:5]))} are not among "
            f"the model's classes ({', '.join(spec.classes)}). Evaluate on labels the model "
            "was trained with.")
    return np.array([-1 if key is None else index[key] for key in keys], dtype=np.int32)


def known(values: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Which labels of ``task_targets`` are known."""
    values = np.asarray(values)
    return values >= 0 if spec.kind == CLASSIFICATION else ~np.isnan(values.astype(float))

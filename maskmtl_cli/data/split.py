"""Duplicate handling and train/val/test split strategies (``maskmtl split``).

Byte-identical files are grouped by content hash. A group never straddles two splits; a group
whose copies carry different labels (UTKFace has several: the same photo as age 1 and age 3) is
reported and dropped unless the user keeps it.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maskmtl_cli.data.files import IMAGE_SUFFIXES
from maskmtl_cli.data.manifest import (
    INTERNAL_COLUMNS,
    MANIFEST_COLUMNS,
    SPLITS,
    scan_dataset,
    write_manifest,
)
from maskmtl_cli.data.split_config import STRATEGIES, SplitConfig  # noqa: F401  (re-exported)
from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.schema import SPLIT_AGE_BAND_EDGES, age_band_labels
from maskmtl_cli.tasks import MASK_COLUMN
from maskmtl_cli.tasks import UTKFACE_TASK_NAMES as TASKS

#: The MaskMTL paper tests on UTKFace part II and validates on part III: 10,719 : 3,252 images.
PAPER_TEST_VAL = (10_719, 3_252)
#: Decade bands of the stratified split: ``0-9`` ... ``90-99``, ``100+`` (``maskmtl_cli.schema``).
BAND_LABELS = tuple(age_band_labels(SPLIT_AGE_BAND_EDGES))


@dataclass
class SplitResult:
    """The manifest table and what the user should know about how it was made."""

    table: object  # pandas.DataFrame with a split column
    skipped: list[tuple[str, str]]
    lenient: list[str]
    duplicate_groups: int
    duplicate_files_removed: int
    conflict_groups: list[list[str]] = field(default_factory=list)
    moved_to_train: int = 0  # parts strategy: groups straddling part1 and the rest
    ignored_files: int = 0


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse "0.7,0.15,0.15" (train, val, test); they must be finite, non-negative, sum to 1.

    Raises:
        InputError: Naming the bad value (the CLI turns it into a usage error).
    """
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--ratios {text!r} is not three numbers like 0.7,0.15,0.15.") from None
    if len(values) != 3:
        raise InputError(f"--ratios {text!r} needs three numbers: train,val,test.")
    for part, value in zip(text.split(","), values):
        if not math.isfinite(value):
            raise InputError(f"--ratios {text!r}: {part.strip()!r} is not a finite number. "
                             "Example: 0.7,0.15,0.15.")
        if value < 0:
            raise InputError(f"--ratios {text!r}: {value:g} is negative; shares must be 0 or "
                             "more. Example: 0.7,0.15,0.15.")
    if abs(sum(values) - 1.0) > 1e-6:
        raise InputError(f"--ratios {text!r} sum to {sum(values):g}, not 1. "
                         "Example: 0.7,0.15,0.15.")
    return values  # type: ignore[return-value]


def age_band(age: float) -> str:
    """The decade band of an age, "100+" at the top, "unknown" when missing or negative."""
    if age != age or age < 0:  # NaN or negative
        return "unknown"
    return BAND_LABELS[bisect.bisect_right(SPLIT_AGE_BAND_EDGES, age) - 1]


def group_duplicates(table, keep_duplicates: bool, keep_conflicts: bool):
    """Add a ``group`` column (one id per content hash, ``group_key`` when present, see
    ``manifest.source_hashes``) and drop copies/conflicts as configured.

    Returns (table, number of duplicate groups, files removed, list of conflicting groups).
    """
    table = table.copy()
    key = "group_key" if "group_key" in table.columns else "sha1"
    table["group"] = table.groupby(key, sort=False).ngroup()
    sizes = table.groupby("group")["group"].transform("size")
    multi = table[sizes > 1]
    conflicts: list[list[str]] = []
    drop = np.zeros(len(table), dtype=bool)
    for _, members in multi.groupby("group", sort=True):
        # UTKFace's labels only: other columns (a mask run's template, say) may differ between
        # copies of one photo without either being wrong.
        labels = members[list(TASKS)].astype("float64").fillna(-1).drop_duplicates()
        if len(labels) > 1:
            conflicts.append(sorted(members["filename"]))
            if not keep_conflicts:
                drop[table.index.get_indexer(members.index)] = True
                continue
        if not keep_duplicates:
            drop[table.index.get_indexer(members.index[1:])] = True
    removed = int(drop.sum())
    groups = int(multi["group"].nunique())
    return table[~drop].reset_index(drop=True), groups, removed, conflicts


def extra_label_columns(table) -> list[str]:
    """Label columns of a scanned table beyond UTKFace's three (from the label CSV)."""
    fixed = (*MANIFEST_COLUMNS, *INTERNAL_COLUMNS, MASK_COLUMN)
    return [column for column in table.columns if column not in fixed]


def _stratum_keys(table) -> np.ndarray:
    bands = [age_band(a) for a in table["age"].to_numpy(dtype="float64")]
    genders = table["gender"].astype("float64").fillna(-1).astype(int).to_numpy()
    races = table["race"].astype("float64").fillna(-1).astype(int).to_numpy()
    return np.array([f"{g}|{r}|{b}" for g, r, b in zip(genders, races, bands)])


def stratified_assign(table, names: tuple[str, ...], ratios, seed: int) -> np.ndarray:
    """Assign each duplicate group (all rows sharing ``group``) to one of ``names``.

    Groups are ordered stratum by stratum (gender x race x age band of the group's first row;
    strata and groups within them in seeded random order), then each group goes to the split that
    is furthest below its share so far. Global shares come out exact to one group and every
    stratum is spread over the splits, small ones included.
    """
    rng = np.random.default_rng(seed)
    firsts = table.drop_duplicates("group").sort_values(
        "group_key" if "group_key" in table.columns else "sha1")
    keys = _stratum_keys(firsts)
    group_ids = firsts["group"].to_numpy()
    ratios = np.asarray(ratios, dtype=float)
    assigned = np.zeros(len(names))
    assignment: dict[int, str] = {}
    strata = sorted(set(keys))
    for stratum_index in rng.permutation(len(strata)):
        members = group_ids[keys == strata[stratum_index]]
        for group in members[rng.permutation(len(members))]:
            deficit = ratios * (assigned.sum() + 1) - assigned
            choice = int(np.argmax(deficit))
            assigned[choice] += 1
            assignment[int(group)] = names[choice]
    return np.array([assignment[int(g)] for g in table["group"]], dtype=object)


def assign_parts(table, parts_csv: Path, seed: int):
    """The paper's protocol: part1 -> train; the rest -> test and val in 10,719 : 3,252.

    A duplicate group with any copy in part1 goes to train whole. Returns (splits, moved groups).
    """
    import pandas as pd

    if not Path(parts_csv).is_file():
        raise InputError(f"Parts file not found: {parts_csv}. It needs columns filename,part "
                         "(e.g. ../shared/data/utkface_meta/parts.csv).")
    parts = pd.read_csv(parts_csv)
    if not {"filename", "part"} <= set(parts.columns):
        raise DataError(f"Parts file {parts_csv} needs columns filename and part; "
                        f"it has {', '.join(map(str, parts.columns))}.")
    part_of = dict(zip(parts["filename"].astype(str), parts["part"].astype(str)))
    names = [Path(f).name for f in table["filename"]]
    missing = [n for n in names if n not in part_of]
    if missing:
        raise DataError(f"{len(missing)} images are not listed in {parts_csv} (first: "
                        f"{missing[0]}). Use --strategy random, or a parts file that covers them.")
    in_part1 = pd.Series([part_of[n] == "part1" for n in names], index=table.index)
    group_in_part1 = in_part1.groupby(table["group"]).transform("any")
    moved = int(table.loc[group_in_part1 & ~in_part1, "group"].nunique())
    splits = np.where(group_in_part1.to_numpy(), "train", "").astype(object)
    rest = table[~group_in_part1.to_numpy()]
    total = sum(PAPER_TEST_VAL)
    ratios = (0.0, PAPER_TEST_VAL[1] / total, PAPER_TEST_VAL[0] / total)
    if len(rest):
        splits[~group_in_part1.to_numpy()] = stratified_assign(rest, SPLITS, ratios, seed)
    return splits, moved


def make_split(config: SplitConfig) -> SplitResult:
    """Scan, label, de-duplicate and split a folder, then write the manifest."""
    if config.strategy not in STRATEGIES:
        raise InputError(f"Unknown split strategy {config.strategy!r}. Choose one of: "
                         f"{', '.join(STRATEGIES)}.")
    if config.strategy == "parts" and config.parts_csv is None:
        raise InputError("--strategy parts needs --parts PARTS.csv (columns filename,part).")
    check_output_is_not_an_input(config)
    if Path(config.output).exists() and not config.overwrite:
        raise InputError(f"{config.output} already exists. Pass --overwrite to replace it, or "
                         "choose another file with -o.")
    scan = scan_dataset(config.data_dir, config.labels_csv)
    if scan.table.empty:
        reasons = sorted({reason for _, reason in scan.skipped})
        raise DataError(f"No usable labelled images in {config.data_dir}: all "
                        f"{len(scan.skipped)} were skipped ({'; '.join(reasons[:3])}).")
    table, groups, removed, conflicts = group_duplicates(
        scan.table, config.keep_duplicates, config.keep_conflicts)
    moved = 0
    if config.strategy == "random":
        table["split"] = stratified_assign(table, SPLITS, config.ratios, config.seed)
    else:
        table["split"], moved = assign_parts(table, config.parts_csv, config.seed)
    write_manifest(table, config.output, overwrite=config.overwrite)
    return SplitResult(table=table, skipped=scan.skipped, lenient=scan.lenient,
                       duplicate_groups=groups, duplicate_files_removed=removed,
                       conflict_groups=conflicts, moved_to_train=moved,
                       ignored_files=scan.ignored_files)


def check_output_is_not_an_input(config: SplitConfig) -> None:
    """Refuse an ``-o`` that is one of the command's inputs, whatever ``--overwrite`` says.

    Both the path as given and its resolved form are compared (a folder link must not lead
    the manifest onto an image).

    Raises:
        InputError: ``-o`` names an image in the data folder, the label CSV or the parts CSV.
    """
    output = Path(config.output)
    if not output.exists():
        return
    forms = _path_forms(output)
    for option, given in (("--labels", config.labels_csv), ("--parts", config.parts_csv)):
        if given is not None and forms & _path_forms(Path(given)):
            raise InputError(f"-o {output} is an input (the {option} file); writing the manifest "
                             "there would replace it. Choose another file, e.g. -o manifest.csv.")
    roots = _path_forms(Path(config.data_dir))
    if output.suffix.lower() in IMAGE_SUFFIXES and any(
            form.is_relative_to(root) for form in forms for root in roots):
        raise InputError(f"-o {output} is an input (an image in {config.data_dir}); writing the "
                         "manifest there would replace it. Choose another file, e.g. "
                         "-o manifest.csv.")


def _path_forms(path: Path) -> set[Path]:
    return {Path(os.path.abspath(path)), path.resolve()}


def summarize(result: SplitResult, config: SplitConfig) -> dict:
    """A JSON-ready summary: counts per split by gender, race and age band, and what was skipped."""
    from maskmtl_cli.data.labels import GENDER_NAMES, RACE_NAMES

    table = result.table
    per_split = {}
    for split in SPLITS:
        rows = table[table["split"] == split]
        genders = rows["gender"].astype("float64").fillna(-1).astype(int)
        races = rows["race"].astype("float64").fillna(-1).astype(int)
        bands = Counter(age_band(a) for a in rows["age"].to_numpy(dtype="float64"))
        per_split[split] = {
            "images": int(len(rows)),
            "gender": {name: int((genders == i).sum()) for i, name in enumerate(GENDER_NAMES)},
            "race": {name: int((races == i).sum()) for i, name in enumerate(RACE_NAMES)},
            "age_band": {label: bands.get(label, 0) for label in BAND_LABELS},
        }
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    masks = table[MASK_COLUMN].astype(bool) if MASK_COLUMN in table.columns else None
    return {
        "manifest": str(config.output),
        "config": settings,
        "images": int(len(table)),
        "masks": 0 if masks is None else int(masks.sum()),
        "label_columns": {column: int(table[column].notna().sum())
                          for column in extra_label_columns(table)},
        "splits": per_split,
        "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
        "lenient_names": result.lenient,
        "duplicate_groups": result.duplicate_groups,
        "duplicate_files_removed": result.duplicate_files_removed,
        "conflicting_groups": result.conflict_groups,
        "groups_moved_to_train": result.moved_to_train,
        "ignored_non_image_files": result.ignored_files,
    }

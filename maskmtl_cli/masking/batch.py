"""The ``maskmtl mask`` batch runner: find images, mask them in worker processes, record results.

Layout of an output folder::

    OUTPUT_DIR/
      <the input tree, same names and formats, masked>
      _masks/<relative path>.png   binary masks (255 = covered), with --save-masks
      masks.csv                    one row per image: source, output, style, face box, status
      failures.csv                 the images that got no mask, with the reason
      mask_config.json             the settings of the latest run
      preview.png                  contact sheet, with --preview N
      masks.journal*.jsonl         rows of a run in progress (gone once masks.csv has them)

Determinism: image ``i`` of the sorted input list draws every random choice from
``numpy.random.default_rng([seed, i])``, so outputs are byte-identical whatever ``--workers``.
Workers receive paths, never pixels: local processes (``maskmtl_cli.masking.pool``) or Ray tasks
on a cluster (``maskmtl_cli.masking.ray_pool``, with ``--ray``). Every record is journaled
before its output appears (``maskmtl_cli.masking.journal``), so even a run killed outright
resumes with every finished image recorded; an unwritable or full output folder stops the run
with one ``OutputError`` that says what was kept.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from maskmtl_cli.data.files import MASKS_CSV, MASKS_DIR
from maskmtl_cli.errors import ClusterError, InputError, OutputError
from maskmtl_cli.masking.config import MaskConfig
from maskmtl_cli.masking.folders import (
    available_cores,
    check_folders,
    check_reserved_names,
    discover_images,
    is_done,
    output_folders,
)
from maskmtl_cli.masking.io import IMAGE_SUFFIXES, output_writes, remove_temp_files, write_atomic
from maskmtl_cli.masking.journal import (
    JOURNAL,
    journal_files,
    journal_marks,
    read_journals,
    remove_journals,
)
from maskmtl_cli.masking.pool import run_pool
from maskmtl_cli.masking.preview import write_preview
from maskmtl_cli.masking.records import (
    CONFIG_JSON,
    COPIED,
    FAILURES_CSV,
    MASKED,
    existing_record,
    read_records,
    settings_warnings,
    write_tables,
)
from maskmtl_cli.masking.worker import STAGES, MaskWorker

ProgressCallback = Callable[[int, int], None]


@dataclass
class MaskSummary:
    """What a mask run did; ``to_dict()`` is the ``--json`` output."""

    input_dir: str
    output_dir: str
    images_found: int
    ignored_files: int
    selected: int
    processed: int = 0
    masked: int = 0
    failed: int = 0
    copied: int = 0
    skipped_existing: int = 0
    faces_masked: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    workers: int = 0
    ray_nodes: int = 0
    model_load_s: float = 0.0
    processing_s: float = 0.0
    elapsed_s: float = 0.0
    images_per_s: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    masks_csv: str = ""
    failures_csv: str = ""
    masks_dir: str | None = None
    preview: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def run_mask(config: MaskConfig, progress: ProgressCallback | None = None) -> MaskSummary:
    """Mask every image under ``config.input_dir`` into ``config.output_dir``.

    Args:
        config: The run's settings.
        progress: Called as ``progress(done, total)`` after each processed image (and once with
            ``done=0``); total excludes outputs skipped because they already exist.

    Returns:
        Counts, timings and the paths of the written tables.

    Raises:
        InputError: Bad folders, no images found, or a name that clashes with an output file.
        OutputError: An output cannot be written (no permission, read-only or full disk): the
            run stops; the finished images are kept and recorded, the message says where.
        MissingExtraError: ``ray_address`` is set and Ray is not installed.
        ClusterError: The Ray cluster cannot be reached, a node runs other code, or workers
            died too often (the finished images are kept and recorded).
        KeyboardInterrupt: After terminating the workers, removing temporary files and saving
            masks.csv for the finished images.
    """
    started = time.perf_counter()
    if config.ray_address is not None:
        from maskmtl_cli.masking.cluster import import_ray

        import_ray()  # without Ray: say how to install it before touching anything
    input_root, output_root = check_folders(config.input_dir, config.output_dir)
    sources, ignored = discover_images(input_root)
    if not sources:
        raise InputError(
            f"No images found in {config.input_dir} (searched subfolders for "
            f"{', '.join(IMAGE_SUFFIXES)}). Check the folder, or point at the one with the photos."
        )
    summary = MaskSummary(
        input_dir=str(input_root), output_dir=str(output_root), images_found=len(sources),
        ignored_files=ignored, selected=0,
    )
    if config.limit is not None:
        sources = sources[: config.limit]
    summary.selected = len(sources)
    check_reserved_names(sources, config)
    with output_writes(output_root, output_root):
        output_root.mkdir(parents=True, exist_ok=True)

    previous, tasks, kept = _plan(output_root, sources, config)
    start = journal_marks(output_root)
    summary.skipped_existing = len(kept)
    summary.warnings.extend(
        settings_warnings(output_root / CONFIG_JSON, config.style_settings(), len(kept))
    )
    cluster = None
    if config.ray_address is not None and tasks:
        cluster = _open_cluster(config.ray_address, input_root, output_root, tasks[0][1],
                                summary)
    try:
        records, table = _process(config, tasks, sources, previous, kept, start, summary,
                                  progress, cluster)
    finally:
        if cluster is not None:
            cluster.close()

    _count(summary, records)
    summary.masks_csv = str(output_root / MASKS_CSV)
    summary.failures_csv = str(output_root / FAILURES_CSV)
    if config.save_masks:
        summary.masks_dir = str(output_root / MASKS_DIR)
    if config.preview:
        selected = set(sources)
        rows = [row for row in table if row["source"] in selected]
        summary.preview = write_preview(input_root, output_root, rows, config.preview)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _plan(output_root: Path, sources: list[str], config: MaskConfig):
    """``(previous, tasks, kept)``: the rows of earlier runs (masks.csv, then the journals of one
    that stopped before rewriting it), the ``(index, source)`` pairs to mask, and the rows of
    images whose outputs exist already (kept unless ``--overwrite``)."""
    previous = read_records(output_root / MASKS_CSV)
    previous.update(read_journals(output_root))
    tasks: list[tuple[int, str]] = []
    kept: list[dict] = []
    for index, source in enumerate(sources):
        old = previous.get(source)
        if not config.overwrite and is_done(output_root, source, config, old):
            kept.append(old or existing_record(index, source))
        else:
            tasks.append((index, source))
    return previous, tasks, kept


def _open_cluster(address: str, input_root: Path, output_root: Path, sample: str,
                  summary: MaskSummary):
    """Connect to the Ray cluster and check that every node can do the work."""
    from maskmtl_cli.masking.cluster import check_nodes, connect

    cluster = connect(address)
    try:
        summary.ray_nodes = check_nodes(input_root, output_root, sample)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _process(config: MaskConfig, tasks: list[tuple[int, str]], sources: list[str],
             previous: dict[str, dict], kept: list[dict], start: dict[str, int],
             summary: MaskSummary, progress: ProgressCallback | None,
             cluster) -> tuple[list[dict], list[dict]]:
    """Write the settings, mask ``tasks`` and save the tables; returns the records and table."""
    output_root = Path(summary.output_dir)
    if tasks or not (output_root / CONFIG_JSON).exists():
        with output_writes(output_root, output_root / CONFIG_JSON):
            write_atomic(output_root / CONFIG_JSON, json.dumps(config.to_dict(), indent=2).encode())

    folders = output_folders(output_root, sources, config.save_masks)
    remove_temp_files(folders)
    records: list[dict] = []
    try:
        if cluster is None:
            _execute(tasks, config, records, progress, summary)
        else:
            _execute_on_cluster(tasks, config, cluster, records, progress, summary, start)
    except (KeyboardInterrupt, ClusterError):
        remove_temp_files(folders)
        _save_tables(output_root, previous, kept, records, start)
        raise
    except OutputError as error:
        remove_temp_files(folders)
        raise _stopped(error, output_root, previous, kept, records, start) from None
    remove_temp_files(folders)  # a dead Ray worker's, too
    return records, _save_tables(output_root, previous, kept, records, start)


def _save_tables(output_root: Path, previous: dict[str, dict], kept: list[dict],
                 records: list[dict], start: dict[str, int]) -> list[dict]:
    """Write masks.csv and failures.csv from every row known, then drop the journals.

    The journals' rows of this run (after the marks ``start``) are merged too: after a failed
    write, an interrupt or a dead Ray worker, not every finished image's record was delivered.

    Raises:
        OutputError: The tables cannot be written; the journals are kept for the next run.
    """
    logged = list(read_journals(output_root, start).values())
    with output_writes(output_root, output_root / MASKS_CSV):
        table = write_tables(output_root, previous, [*kept, *logged], records)
        remove_journals(output_root)
    return table


def _stopped(error: OutputError, output_root: Path, previous: dict[str, dict],
             kept: list[dict], records: list[dict], start: dict[str, int]) -> OutputError:
    """The one-line error of a run stopped by an unwritable output: what was kept, what to do."""
    finished = read_journals(output_root, start)
    for record in records:
        finished.setdefault(record["source"], record)
    done = sum(1 for row in finished.values() if row["status"] in (MASKED, COPIED))
    try:
        _save_tables(output_root, previous, kept, records, start)
        where = MASKS_CSV
    except OutputError:
        names = ", ".join(path.name for path in journal_files(output_root)) or JOURNAL
        where = f"{names} (merged into {MASKS_CSV} by the next run)"
    if not done:
        return error
    what = getattr(error, "what", str(error))
    advice = getattr(error, "advice", "Fix the output folder")
    return OutputError(
        f"{what} The {done} image{'s' if done != 1 else ''} finished so far "
        f"{'are' if done != 1 else 'is'} kept and recorded in {where}. {advice}, then rerun the "
        "same command to resume."
    )


def _execute(
    tasks: list[tuple[int, str]],
    config: MaskConfig,
    records: list[dict],
    progress: ProgressCallback | None,
    summary: MaskSummary,
) -> None:
    """Process ``tasks`` and append their records in task order."""
    total = len(tasks)
    if progress is not None:
        progress(0, total)
    if not total:
        return
    workers = max(1, min(config.workers or available_cores(), total))
    summary.workers = workers
    load_started = time.perf_counter()
    worker = MaskWorker(config)
    worker.landmarker.load()  # in the parent: forked workers inherit the loaded models
    summary.model_load_s = time.perf_counter() - load_started

    started = time.perf_counter()
    if workers == 1:
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for task in tasks:
                records.append(worker.process(task))
                if progress is not None:
                    progress(len(records), total)
        finally:
            cv2.setNumThreads(threads)
            worker.journal.close()
    else:
        run_pool(tasks, config, workers, records, progress)
    summary.processing_s = time.perf_counter() - started


def _execute_on_cluster(tasks, config: MaskConfig, cluster, records: list[dict],
                        progress: ProgressCallback | None, summary: MaskSummary,
                        start: dict[str, int]) -> None:
    """Process ``tasks`` as Ray tasks; records arrive in the order shards finish."""
    from maskmtl_cli.masking.ray_pool import run_ray

    if progress is not None:
        progress(0, len(tasks))
    summary.workers = config.workers or cluster.cpus()
    # The workers use the paths as they are: every node sees the folders at the same paths.
    resolved = replace(config, input_dir=Path(summary.input_dir),
                       output_dir=Path(summary.output_dir))
    started = time.perf_counter()
    run_ray(tasks, resolved, cluster, records, progress, start)
    summary.processing_s = time.perf_counter() - started


def _count(summary: MaskSummary, records: list[dict]) -> None:
    reasons: Counter[str] = Counter()
    stage_totals = dict.fromkeys(STAGES, 0.0)
    for record in records:
        timings = record.pop("_timings", {})
        for stage in STAGES:
            stage_totals[stage] += timings.get(stage, 0.0)
        if record["status"] == MASKED:
            summary.masked += 1
            summary.faces_masked += int(record["faces"] or 0)
        else:
            summary.failed += 1
            reasons[record["reason"]] += 1
            if record["status"] == COPIED:
                summary.copied += 1
    summary.processed = len(records)
    summary.failures_by_reason = dict(sorted(reasons.items()))
    if records:
        summary.stage_ms = {
            stage: 1000.0 * seconds / len(records) for stage, seconds in stage_totals.items()
        }
    if summary.processing_s > 0:
        summary.images_per_s = summary.processed / summary.processing_s

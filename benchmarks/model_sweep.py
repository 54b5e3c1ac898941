"""Train and score candidate recipes on the validation split; print one Markdown table.

Each candidate is a named list of `maskmtl train` options on top of a shared base recipe. The
script trains every candidate that has not finished (resuming interrupted ones), evaluates it
on the validation split (`maskmtl eval RUN --split val -o RUN/eval-val`, never the test
split), and prints the figures docs/RESULTS.md records: gender and ethnicity accuracy,
"Others" recall, ethnicity macro-F1, age MAE, the share of faces that get the most common age
(the collapse of the old age head), and per-band age MAE and bias. It is safe to stop and
rerun at any point.

Usage:
    python benchmarks/model_sweep.py MANIFEST --project runs/sweep [--group age] [--only NAME]
    python benchmarks/model_sweep.py MANIFEST --project runs/sweep --list

Run one sweep at a time: each training uses every core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: The recipe of the shipped model before issue 12 (docs/RESULTS.md), shortened to 12 epochs,
#: with every option the candidates vary pinned to its value then (train's defaults have
#: since become the shipped recipe), so that the table reproduces.
BASE = ["--arch", "hierarchical", "--nonlocal", "--preset", "compact", "--color", "rgb",
        "--image-size", "48", "--batch-size", "64", "--epochs", "12", "--lr-schedule", "cosine",
        "--augment", "--age-loss", "l1", "--race-balance", "none", "--seed", "0"]

#: group -> candidate name -> options added to (or overriding) BASE.
CANDIDATES: dict[str, dict[str, list[str]]] = {
    "age": {
        "l1-w0.1": ["--age-loss", "l1", "--loss-weights", "age=0.1"],
        "l1-w0.3": ["--age-loss", "l1", "--loss-weights", "age=0.3"],
        "l1-w1": ["--age-loss", "l1", "--loss-weights", "age=1"],
        "log-l1-w1": ["--age-loss", "log-l1", "--loss-weights", "age=1"],
        "log-l1-w3": ["--age-loss", "log-l1", "--loss-weights", "age=3"],
        "ldl-w0.5": ["--age-loss", "ldl", "--loss-weights", "age=0.5"],
        "ldl-w1": ["--age-loss", "ldl", "--loss-weights", "age=1"],
        "ldl-w2": ["--age-loss", "ldl", "--loss-weights", "age=2"],
    },
    "arch": {
        "compact-gap-ldl": ["--age-loss", "ldl", "--preset", "compact-gap"],
        "wide-gap-ldl": ["--age-loss", "ldl", "--preset", "wide-gap"],
        "deep-ldl": ["--age-loss", "ldl", "--preset", "deep"],
        "wide-ldl": ["--age-loss", "ldl", "--preset", "wide"],
        "compact-gap64-ldl": ["--age-loss", "ldl", "--preset", "compact-gap", "--image-size",
                              "64"],
    },
    # On the best 12-epoch shape of "arch" (deep at 48x48): the age losses again with the
    # pooled head, then the class and age balancing, weight decay and a larger batch.
    "recipe": {
        "deep-l1": ["--preset", "deep", "--age-loss", "l1"],
        "deep-log-l1": ["--preset", "deep", "--age-loss", "log-l1"],
        "deep-ldl-rw": ["--preset", "deep", "--age-loss", "ldl", "--age-reweight", "sqrt-inv"],
        "deep-ldl-la": ["--preset", "deep", "--age-loss", "ldl", "--race-balance",
                        "logit-adjust"],
        "deep-ldl-rw-la-wd": ["--preset", "deep", "--age-loss", "ldl", "--age-reweight",
                              "sqrt-inv", "--race-balance", "logit-adjust", "--weight-decay",
                              "0.05"],
        "deep-ldl-b128": ["--preset", "deep", "--age-loss", "ldl", "--batch-size", "128",
                          "--lr", "2e-3"],
    },
    # 40 epochs: the best 12-epoch recipe, and it with milder class balancing plus the age
    # reweighting (which pulled the tails' bias in at 12 epochs but cost MAE in the middle).
    "final": {
        "deep-ldl-e40": ["--preset", "deep", "--age-loss", "ldl", "--epochs", "40"],
        "deep-ldl-la05-rw-e40": ["--preset", "deep", "--age-loss", "ldl", "--race-balance",
                                 "logit-adjust", "--race-tau", "0.5", "--age-reweight",
                                 "sqrt-inv", "--epochs", "40"],
        "deep-ldl-la025-e40": ["--preset", "deep", "--age-loss", "ldl", "--race-balance",
                               "logit-adjust", "--race-tau", "0.25", "--epochs", "40"],
    },
}


def merged(options: list[str]) -> list[str]:
    """BASE with ``options`` appended; an option given again replaces BASE's value."""
    given = {item for item in options if item.startswith("--")}
    result, skip = [], False
    for index, item in enumerate(BASE):
        if skip:
            skip = False
            continue
        if item in given:
            takes_value = index + 1 < len(BASE) and not BASE[index + 1].startswith("--")
            skip = takes_value
            continue
        result.append(item)
    return result + options


def maskmtl(*args: str, log: Path | None = None) -> int:
    """Run the CLI of this checkout (output to ``log``, or inherited)."""
    command = [sys.executable, "-m", "maskmtl_cli", *args]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if log is None:
        return subprocess.run(command, env=env).returncode
    with log.open("a") as stream:
        return subprocess.run(command, env=env, stdout=stream, stderr=stream).returncode


def train_and_evaluate(manifest: Path, project: Path, name: str, options: list[str]) -> None:
    """Train (or resume) one candidate and evaluate it on the validation split."""
    run = project / name
    log = project / f"{name}.log"
    summary = run / "summary.json"
    finished = summary.is_file() and json.loads(summary.read_text())["status"] != "interrupted"
    if not finished:
        if (run / "state.json").is_file():
            code = maskmtl("train", "--resume", str(run), "--no-progress", log=log)
        else:
            if run.exists():  # started but no epoch finished: start again
                import shutil

                shutil.rmtree(run)
            code = maskmtl("train", str(manifest), *merged(options), "--project", str(project),
                           "--name", name, "--no-progress", log=log)
        if code != 0:
            print(f"{name}: training failed (exit {code}); see {log}", file=sys.stderr)
            return
    metrics = run / "eval-val" / "metrics.json"
    if not metrics.is_file():
        maskmtl("eval", str(run), "--split", "val", "--bootstrap", "0", "-o",
                str(run / "eval-val"), log=log)


def row(name: str, run: Path) -> str | None:
    """One Markdown table row from a run's summary and validation metrics."""
    metrics_file = run / "eval-val" / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = json.loads(metrics_file.read_text())
    summary = json.loads((run / "summary.json").read_text())
    gender = metrics["classification"].get("gender", {})
    race = metrics["classification"].get("race", {})
    age = metrics.get("age") or {}
    others = next((c["recall"] for c in race.get("per_class", []) if c["class"] == "Others"),
                  None)
    bands = {band["band"]: band for band in age.get("bands", [])}

    def number(value, digits=4):
        return "" if value is None else f"{value:.{digits}f}"

    band_cells = [f"{number(bands[b]['mae'], 1)} / {number(bands[b]['bias'], 1)}"
                  if b in bands and bands[b]["n"] else "" for b in bands]
    collapse = (age.get("collapse") or {}).get("share")
    return " | ".join([
        name, f"{summary['parameters']:,}", str(summary["epochs_run"]),
        number(gender.get("accuracy")), number(race.get("accuracy")), number(others, 3),
        number(race.get("macro_f1"), 3), number(age.get("mae"), 2),
        "" if collapse is None else f"{collapse:.1%}", *band_cells,
        f"{summary['wall_seconds']:.0f}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--project", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--group", action="append", choices=sorted(CANDIDATES))
    parser.add_argument("--only", action="append", help="candidate names to run")
    parser.add_argument("--list", action="store_true", help="print the commands and stop")
    parser.add_argument("--table-only", action="store_true", help="train nothing")
    args = parser.parse_args()
    groups = args.group or sorted(CANDIDATES)
    chosen = {name: options for group in groups for name, options in CANDIDATES[group].items()
              if not args.only or name in args.only}
    args.project.mkdir(parents=True, exist_ok=True)
    for name, options in chosen.items():
        if args.list:
            print("maskmtl train", args.manifest, " ".join(merged(options)), "--name", name)
        elif not args.table_only:
            train_and_evaluate(args.manifest, args.project, name, options)
    if args.list:
        return
    bands = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80+"]
    print("| run | params | epochs | gender acc | ethnicity acc | Others recall | ethnicity "
          "macro-F1 | age MAE | top age share | " + " | ".join(f"{b} MAE / bias" for b in bands)
          + " | train s |")
    print("|" + "---|" * (10 + len(bands)))
    for name in chosen:
        line = row(name, args.project / name)
        if line:
            print(f"| {line} |")


if __name__ == "__main__":
    main()

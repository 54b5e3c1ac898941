"""The task schema: what a model predicts, the one home of task names, kinds and classes.

A task is one label column of the manifest that a model learns to predict, described by a
frozen ``TaskSpec``: its ``name`` (the column, and the model output of the same name), its
``kind`` ("classification" or "regression"), the class names of a classification task (index
``k`` of the output is ``classes[k]``), where its head ``attach``es in the hierarchical network,
and an optional loss ``weight``.

UTKFace's three tasks are the defaults (``UTKFACE_TASKS``): ``age`` (regression, years),
``gender`` (classes male/female, kept as one sigmoid output, P(female)) and ``race`` (UTKFace's
five ethnicity classes, on top of gender's branch). Any other column becomes a task by naming it:
``--tasks age,gender,expression`` (classification by default, ``score:regression`` for a number
to regress) or a task-spec file (``--task-spec tasks.yaml``, YAML or JSON)::

    age_group:                 # one entry per task, in order
      kind: classification
      classes: ["<10", "10-20", "20-40", ">40"]   # optional: the order of the outputs
      attach: block2           # optional: encoder | branch | branch:<task> | block1..3
      weight: 1.0              # optional loss weight
    gender:                    # a UTKFace task with its defaults

Attach points of a head (``hierarchical`` and ``hard`` networks):

- ``encoder``: directly on the shared encoder (like age);
- ``branch``: one more conv block of its own on the encoder (like gender);
- ``branch:<task>``: a conv block on top of another task's branch (like ethnicity on gender's);
  ``hard`` sharing reads this as ``branch``;
- ``block<k>``: on the output of encoder block ``k`` (1-3), a shallower tap (FGNET-MASK, Patel
  et al., J. Imaging 2021, taps heads at several depths).

Standard library only: the CLI and ``TrainConfig`` read it without importing numpy or Keras.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from maskmtl_cli.errors import InputError

CLASSIFICATION = "classification"
REGRESSION = "regression"
KINDS = (CLASSIFICATION, REGRESSION)

GENDER_NAMES = ("male", "female")
RACE_NAMES = ("White", "Black", "Asian", "Indian", "Others")


def class_names(task: str, count: int) -> tuple[str, ...]:
    """Display names of UTKFace's gender or race classes (``class k`` if ``count`` differs)."""
    names = GENDER_NAMES if task == "gender" else RACE_NAMES
    return tuple(names) if len(names) == count else tuple(f"class {k}" for k in range(count))


#: UTKFace's tasks, in their canonical order (the default of ``--tasks``).
UTKFACE_TASK_NAMES = ("age", "gender", "race")
#: Output name of the optional mask-segmentation head (``train --segmentation``).
SEGMENTATION = "segmentation"
#: Manifest column holding each image's ground-truth mask PNG (``split`` of a mask run).
MASK_COLUMN = "mask"
#: The output ``train`` adds when it trains on masked and bare faces (issue 21): does the face
#: wear a mask (free labels from the kind of each training face).
MASKED_TASK = "masked"
MASKED_CLASSES = ("no", "yes")
#: Manifest columns that are never labels.
NON_LABEL_COLUMNS = ("path", "filename", "sha1", "split", MASK_COLUMN)
#: Names a task cannot take: other outputs and fields of `predict --json` records.
RESERVED_NAMES = frozenset({*NON_LABEL_COLUMNS, SEGMENTATION, "image", "age_distribution",
                            "rescale", "non_local", "file", "face", "box", "detector",
                            "detector_score", "p_female", "ethnicity", "group", "n"})
#: A classification column with more distinct values than this is probably a number.
MAX_CLASSES = 100
ATTACH_HELP = "encoder | branch | branch:<task> | block1 | block2 | block3"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_BLOCK = re.compile(r"^block([123])$")
_SPEC_KEYS = ("kind", "classes", "attach", "weight")


@dataclass(frozen=True)
class TaskSpec:
    """One task a model predicts.

    Attributes:
        name: Label column of the manifest and name of the model output.
        kind: "classification" or "regression".
        classes: Class names of a classification task, in output order (empty until they are
            read from the labels; always empty for regression).
        attach: Where the head sits in the network (see the module docstring).
        weight: Loss weight; None uses the default of ``TrainConfig`` (1, age's by its loss).
    """

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    attach: str = ""
    weight: float | None = None

    def __post_init__(self):
        check_name(self.name)
        if self.kind not in KINDS:
            raise InputError(f"Task '{self.name}': unknown kind '{self.kind}'. Choose one of: "
                             f"{', '.join(KINDS)}.")
        object.__setattr__(self, "classes", tuple(str(name) for name in self.classes))
        if self.kind == REGRESSION and self.classes:
            raise InputError(f"Task '{self.name}' is a regression task; it takes no classes.")
        if len(set(self.classes)) != len(self.classes):
            raise InputError(f"Task '{self.name}' lists a class twice: {list(self.classes)}.")
        if not self.attach:
            object.__setattr__(self, "attach", default_attach(self.name, self.kind))
        check_attach(self.name, self.attach)
        if self.weight is not None:
            weight = _number(self.weight, f"Loss weight of task '{self.name}'")
            if weight < 0:
                raise InputError(f"Loss weight of task '{self.name}' must be 0 or more; "
                                 f"got {self.weight}.")
            object.__setattr__(self, "weight", weight)

    @property
    def output_width(self) -> int:
        """Width of the model output: 1 for regression and gender's sigmoid, else K."""
        if self.kind == REGRESSION or is_sigmoid(self):
            return 1
        return len(self.classes)

    def to_dict(self) -> dict:
        """JSON-ready form (``from_dict`` reads it back)."""
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "attach": self.attach, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: dict) -> "TaskSpec":
        """A spec from ``to_dict``'s form; InputError naming a bad entry."""
        if not isinstance(data, dict) or "name" not in data:
            raise InputError(f"Not a task description: {data!r}.")
        return cls(name=str(data["name"]), kind=str(data.get("kind", CLASSIFICATION)),
                   classes=tuple(data.get("classes") or ()), attach=data.get("attach") or "",
                   weight=data.get("weight"))


def to_spec(item, from_name) -> TaskSpec:
    """``item`` as a TaskSpec: a spec as it is, a dict through ``TaskSpec.from_dict``, anything
    else by its name through ``from_name``."""
    if isinstance(item, TaskSpec):
        return item
    if isinstance(item, dict):
        return TaskSpec.from_dict(item)
    return from_name(str(item))


def default_spec(name: str) -> TaskSpec | None:
    """The built-in spec of a UTKFace task (None for other names)."""
    return _DEFAULTS.get(name)


def is_sigmoid(spec: TaskSpec) -> bool:
    """Gender keeps its one sigmoid output, P(female), as every maskmtl model always had."""
    return spec.name == "gender" and spec.classes == GENDER_NAMES


def default_attach(name: str, kind: str) -> str:
    """age: encoder; gender: branch; race: branch:gender; others by kind."""
    defaults = {"age": "encoder", "gender": "branch", "race": "branch:gender"}
    if name in defaults:
        return defaults[name]
    return "branch" if kind == CLASSIFICATION else "encoder"


def check_name(name: str) -> None:
    """InputError unless ``name`` can name a task (a column and an output)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"Task name {name!r} must start with a letter and hold only letters, "
                         "digits and underscores (it names a manifest column and an output).")
    if name in RESERVED_NAMES:
        raise InputError(f"'{name}' cannot be a task: the name is taken by maskmtl "
                         f"({', '.join(sorted(RESERVED_NAMES))}). Rename the column.")


def check_attach(name: str, attach: str) -> None:
    """InputError unless ``attach`` is one of ``ATTACH_HELP``."""
    if attach in ("encoder", "branch") or _BLOCK.match(attach):
        return
    if attach.startswith("branch:"):
        other = attach.split(":", 1)[1]
        if other == name:
            raise InputError(f"Task '{name}' cannot attach on its own branch (branch:{name}).")
        check_name(other)
        return
    raise InputError(f"Task '{name}': unknown attach point '{attach}'. Choose one of: "
                     f"{ATTACH_HELP}.")


def attach_block(attach: str) -> int | None:
    """The encoder block number of a ``block<k>`` attach point, else None."""
    match = _BLOCK.match(attach)
    return int(match.group(1)) if match else None


def branch_parent(attach: str) -> str | None:
    """The task named by a ``branch:<task>`` attach point, else None."""
    return attach.split(":", 1)[1] if attach.startswith("branch:") else None


UTKFACE_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("age", REGRESSION),
    TaskSpec("gender", CLASSIFICATION, GENDER_NAMES),
    TaskSpec("race", CLASSIFICATION, RACE_NAMES),
)
_DEFAULTS = {spec.name: spec for spec in UTKFACE_TASKS}


def parse_task_list(text) -> tuple[TaskSpec, ...]:
    """``"age,gender,score:regression"`` (or a sequence of names/specs/dicts) -> specs.

    Names of UTKFace tasks get their built-in specs; other names are classification tasks
    unless written ``name:regression``. Their classes are read from the labels later.

    Raises:
        InputError: An empty list, a bad name or kind, or a task named twice.
    """
    items = [part.strip() for part in text.split(",") if part.strip()] \
        if isinstance(text, str) else list(text)
    specs = [to_spec(item, _spec_from_token) for item in items]
    if not specs:
        raise InputError(f"--tasks is empty. Choose any of: {', '.join(UTKFACE_TASK_NAMES)}, "
                         "or label columns of the manifest.")
    return order_tasks(specs)


def _spec_from_token(token: str) -> TaskSpec:
    name, _, kind = token.partition(":")
    name, kind = name.strip(), kind.strip()
    if kind and kind not in KINDS:
        raise InputError(f"--tasks {token!r}: unknown kind '{kind}'. Write NAME, "
                         "NAME:classification or NAME:regression.")
    builtin = default_spec(name)
    if builtin is not None:
        if kind and kind != builtin.kind:
            raise InputError(f"Task '{name}' is UTKFace's {builtin.kind} task; it cannot be "
                             f"trained as {kind}. Name a column of your own instead.")
        return builtin
    return TaskSpec(name, kind or CLASSIFICATION)


def order_tasks(specs) -> tuple[TaskSpec, ...]:
    """UTKFace tasks first in canonical order, then the others as given; no name twice."""
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise InputError(f"Task '{name}' is named twice. Name each task once.")
    builtin = [spec for name in UTKFACE_TASK_NAMES for spec in specs if spec.name == name]
    return tuple(builtin + [spec for spec in specs if spec.name not in UTKFACE_TASK_NAMES])


def read_task_spec(path: str | Path) -> tuple[TaskSpec, ...]:
    """Read a task-spec file (YAML, or JSON) mapping task names to their settings.

    Raises:
        InputError: The file is missing, unreadable, or describes a task badly.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Task-spec file not found: {path}. Pass a YAML or JSON file with "
                         "--task-spec.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as error:  # json.JSONDecodeError and yaml.YAMLError are ValueErrors
        raise InputError(f"Cannot read task-spec file {path}: {error}") from None
    except Exception as error:  # yaml.YAMLError is not a ValueError
        raise InputError(f"Cannot read task-spec file {path}: {str(error).splitlines()[0]}"
                         ) from None
    if not isinstance(data, dict) or not data:
        raise InputError(f"Task-spec file {path} must map task names to their settings, e.g. "
                         "'expression: {kind: classification}'.")
    return order_tasks([_spec_from_entry(str(name), entry, path) for name, entry in data.items()])


def _spec_from_entry(name: str, entry, path: Path) -> TaskSpec:
    entry = entry or {}
    if not isinstance(entry, dict):
        raise InputError(f"{path}: task '{name}' needs a mapping of {', '.join(_SPEC_KEYS)}; "
                         f"got {entry!r}.")
    unknown = sorted(set(entry) - set(_SPEC_KEYS))
    if unknown:
        raise InputError(f"{path}: task '{name}' has unknown setting(s) {', '.join(unknown)}. "
                         f"Allowed: {', '.join(_SPEC_KEYS)}.")
    builtin = default_spec(name)
    if builtin is not None:
        if entry.get("kind", builtin.kind) != builtin.kind or entry.get("classes"):
            raise InputError(f"{path}: '{name}' is UTKFace's {builtin.kind} task; only its "
                             "attach and weight can be set.")
        return replace(builtin, attach=entry.get("attach") or builtin.attach,
                       weight=entry.get("weight"))
    return TaskSpec(name, str(entry.get("kind", CLASSIFICATION)),
                    tuple(entry.get("classes") or ()), entry.get("attach") or "",
                    entry.get("weight"))


def resolve_tasks(tasks, task_spec: str | Path | None = None) -> tuple[TaskSpec, ...]:
    """The tasks of ``--tasks`` and ``--task-spec`` together (defaults < spec file < flags).

    Without ``--tasks`` the spec file's tasks are trained; with both, ``--tasks`` chooses the
    tasks and the file supplies the settings of those it describes.
    """
    if task_spec is None:
        return parse_task_list(UTKFACE_TASK_NAMES if tasks is None else tasks)
    described = {spec.name: spec for spec in read_task_spec(task_spec)}
    if tasks is None:
        return tuple(described.values())
    chosen = parse_task_list(tasks)
    return order_tasks([described.get(spec.name, spec) for spec in chosen])


def check_task_graph(specs, arch: str) -> None:
    """InputError for attach points the architecture cannot build.

    ``branch:<task>`` must name a trained task or a UTKFace task, and chains may not loop;
    ``block<k>`` needs shared encoder blocks (not ``--arch soft``).
    """
    by_name = {spec.name: spec for spec in specs}
    for spec in specs:
        if arch == "soft" and attach_block(spec.attach):
            raise InputError(f"Task '{spec.name}' attaches at {spec.attach}, which needs a "
                             "shared encoder: use --arch hierarchical or hard.")
        seen = [spec.name]
        parent = branch_parent(spec.attach)
        while parent is not None:
            if parent in seen:
                raise InputError(f"Attach points loop: {' -> '.join(seen + [parent])}. Attach "
                                 "one of them at encoder or branch.")
            owner = by_name.get(parent) or default_spec(parent)
            if owner is None:
                raise InputError(f"Task '{spec.name}' attaches at branch:{parent}, but "
                                 f"'{parent}' is not a task. Name a trained task.")
            seen.append(parent)
            parent = branch_parent(owner.attach)


def pooling_depth(spec: TaskSpec, specs, arch: str) -> int:
    """How many 2x2 poolings lie between the input and the head of ``spec``.

    The encoder has three; each branch conv block adds one (``hierarchical`` chains them along
    ``branch:<task>``; ``hard`` and ``soft`` put every branch on the encoder); ``block<k>``
    taps after ``k``.
    """
    by_name = {other.name: other for other in specs}

    def base(owner: TaskSpec) -> int:  # poolings below the block that a branch of owner reads
        parent = branch_parent(owner.attach)
        if arch == "hierarchical" and parent is not None:
            return branch(parent)
        return attach_block(owner.attach) or 3

    def branch(name: str) -> int:
        owner = by_name.get(name) or default_spec(name) or TaskSpec(name, REGRESSION)
        return base(owner) + 1

    if spec.attach == "encoder":
        return 3
    if attach_block(spec.attach):
        return attach_block(spec.attach)
    return 4 if arch == "soft" else branch(spec.name)


def specs_to_json(specs, segmentation: bool = False) -> str:
    """The JSON kept in ``tasks.json`` and in an ONNX file's metadata."""
    return json.dumps({"tasks": [spec.to_dict() for spec in specs],
                       "segmentation": bool(segmentation)}, indent=2)


def specs_from_json(text: str) -> tuple[tuple[TaskSpec, ...], bool]:
    """``specs_to_json``'s text back to (specs, segmentation); InputError when unusable."""
    try:
        data = json.loads(text)
        return (tuple(TaskSpec.from_dict(item) for item in data["tasks"]),
                bool(data.get("segmentation", False)))
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"Unreadable task description: {error}.") from None


def _number(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number; got {value!r}.") from None

"""Where each task's head reads its features: the attach points of ``maskmtl_cli.tasks``.

``FeatureSources`` holds the shared encoder's output and its block outputs, and builds task
branches (one conv block each, named ``<task>_branch``) the first time a head needs them, so
that a branch shared by two heads is built once: in the ``hierarchical`` network ethnicity's
branch (``branch:gender``) reads gender's, which is built even when gender itself is not
trained. With ``hard`` sharing every branch reads the encoder. Branches are built in the order
the heads ask for them, which for UTKFace's three tasks is the order the network always had.
"""

from __future__ import annotations

from typing import Callable

from maskmtl_cli.errors import InputError
from maskmtl_cli.models.segmentation import check_segmentation_size
from maskmtl_cli.schema import AGE_LOSSES, ARCHITECTURES
from maskmtl_cli.tasks import (
    CLASSIFICATION,
    UTKFACE_TASK_NAMES,
    TaskSpec,
    attach_block,
    branch_parent,
    check_task_graph,
    default_spec,
    order_tasks,
    pooling_depth,
)


def network_tasks(tasks) -> tuple[TaskSpec, ...]:
    """Task specs from specs or names (UTKFace's names get their built-in specs).

    Raises:
        InputError: No task, an unknown name, or a classification task without classes.
    """
    if isinstance(tasks, str):
        tasks = [part.strip() for part in tasks.split(",") if part.strip()]
    specs = []
    for item in tasks:
        spec = item if isinstance(item, TaskSpec) else default_spec(str(item))
        if spec is None:
            raise InputError(f"Unknown task '{item}'. Choose any of: "
                             f"{', '.join(UTKFACE_TASK_NAMES)}, or pass a TaskSpec for a task "
                             "of your own.")
        if spec.kind == CLASSIFICATION and len(spec.classes) < 2:
            raise InputError(f"Task '{spec.name}' has no classes yet: they are read from its "
                             "labels when training starts.")
        specs.append(spec)
    if not specs:
        raise InputError("A network needs at least one task.")
    return order_tasks(specs)


def min_image_size(arch: str, tasks) -> int:
    """Smallest input size whose feature maps survive every 2x2 pooling of the network."""
    specs = network_tasks(tasks)
    return 2 ** max(pooling_depth(spec, specs, arch) for spec in specs)


def checked_tasks(arch: str, tasks, image_size: int, color_mode: str, age_loss: str,
                   segmentation: bool) -> tuple[TaskSpec, ...]:
    """The network's task specs; InputError for any option ``build_network`` cannot build."""
    if arch not in ARCHITECTURES:
        raise InputError(f"Unknown arch '{arch}'. Choose one of: {', '.join(ARCHITECTURES)}.")
    specs = network_tasks(tasks)
    check_task_graph(specs, arch)
    if color_mode not in ("gray", "rgb"):
        raise InputError(f"Unknown colour mode '{color_mode}'. Choose one of: gray, rgb.")
    if age_loss not in AGE_LOSSES:
        raise InputError(f"Unknown age loss '{age_loss}'. Choose one of: {', '.join(AGE_LOSSES)}.")
    smallest = min_image_size(arch, specs)
    if image_size < smallest:
        raise InputError(
            f"Image size {image_size} is too small for --arch {arch} with tasks "
            f"{','.join(spec.name for spec in specs)}: its 2x2 poolings need at least "
            f"{smallest}x{smallest} pixels. Use --image-size {smallest} or more (48 is the "
            "default)."
        )
    if segmentation:
        check_segmentation_size(image_size)
    return specs


class FeatureSources:
    """Feature maps of a shared-encoder network, and the branches built on them.

    Args:
        features: The encoder output (after its non-local block, if any).
        blocks: The pooled outputs of encoder blocks 1, 2, 3.
        specs: The network's tasks.
        arch: "hierarchical" (branches chain along ``branch:<task>``) or "hard".
        conv_block: Builds one branch conv block: ``conv_block(tensor, name)``.
    """

    def __init__(self, features, blocks, specs, arch: str, conv_block: Callable):
        self.features = features
        self.blocks = list(blocks)
        self.specs = {spec.name: spec for spec in specs}
        self.arch = arch
        self.conv_block = conv_block
        self._branches: dict[str, object] = {}

    def for_task(self, spec: TaskSpec):
        """The tensor the head of ``spec`` reads."""
        block = attach_block(spec.attach)
        if block:
            return self.block(block, spec.name)
        if spec.attach == "encoder":
            return self.features
        return self.branch(spec.name)

    def block(self, index: int, task: str):
        """The pooled output of encoder block ``index`` (1-based)."""
        if not 1 <= index <= len(self.blocks):
            raise InputError(f"Task '{task}' attaches at block{index}, but the encoder has "
                             f"blocks 1-{len(self.blocks)}.")
        return self.blocks[index - 1]

    def branch(self, name: str):
        """The branch conv block ``<name>_branch``, built on first use."""
        if name not in self._branches:
            owner = self.specs.get(name) or default_spec(name) or TaskSpec(name, "regression")
            self._branches[name] = self.conv_block(self._branch_input(owner), f"{name}_branch")
        return self._branches[name]

    def _branch_input(self, owner: TaskSpec):
        parent = branch_parent(owner.attach)
        if parent is not None and self.arch == "hierarchical":
            return self.branch(parent)
        block = attach_block(owner.attach)
        return self.block(block, owner.name) if block else self.features

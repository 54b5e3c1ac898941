"""MaskMTL network builders: hierarchical, hard and soft parameter sharing.

Reference: P. Mukherjee et al., "MaskMTL: Attribute prediction in masked facial images with deep
multitask learning", PReMI 2021, and its released notebook.

Every network is a functional Keras model with one input ``image`` (float32, 0..255, shape
``(size, size, C)``) and a dict of outputs named after the tasks (``maskmtl_cli.tasks``):
``age`` (N, 1) in years, ``gender`` (N, 1) P(female), ``race`` (N, 5) softmax, any other
classification task (N, K) softmax over its classes and any other regression task (N, 1) in the
label's units; with ``segmentation`` also ``segmentation`` (N, size, size, 1), the probability
that a pixel is covered by a mask (``models.segmentation``). Rescaling to 0..1 happens inside
the model, and so does the de-normalisation of regression outputs: the age head predicts a
standardised age and a ``Rescaling(std, mean)`` layer turns it into years, which keeps an L1
loss in years well conditioned (other regression heads alike, with their labels' statistics).

Building blocks (widths come from a ``Preset``):

- encoder: three conv blocks, each 3x3 conv ('same' padding, bias) -> batch norm -> LeakyReLU
  -> 2x2 pooling (max or average);
- optional ``NonLocalBlock`` after the encoder;
- age head: flatten (or global average pooling) -> dense layers (ReLU or GELU, dropout) -> the
  age output of ``age_loss`` (``age_layers``: a standardised age, a standardised log-age, or a
  distribution over 0-116 years whose mean is the age);
- gender and race branches: one more conv block each, then the same kind of head -> output.

Training-only augmentation is not part of the network: ``MultiTaskTrainer`` applies it, so the
network is the inference graph that ``best.keras`` and ``best.onnx`` hold.

Each head sits at its task's attach point (``task_graph``): ``hierarchical``: the race
branch's conv block reads the (pooled) gender branch conv block (``branch:gender``), and any
``branch:<task>`` chains alike. ``hard``: every head reads the shared encoder (a branch has its
own conv block on it). ``soft``: one encoder per task (``encoder`` tasks such as age: encoder +
head; others: encoder + branch + head), tied by the L2 penalty of
``losses.soft_sharing_penalty`` over the groups ``soft_sharing_groups`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import keras
from keras import layers

from maskmtl_cli.errors import InputError
from maskmtl_cli.models.age_layers import AGE_BINS, AGE_DISTRIBUTION, ExpectedAge, LogAgeDecoder
from maskmtl_cli.models.non_local_block import NonLocalBlock
from maskmtl_cli.models.segmentation import segmentation_decoder
from maskmtl_cli.models.task_graph import (  # noqa: F401  (min_image_size: re-exported)
    FeatureSources,
    checked_tasks,
    min_image_size,
)
from maskmtl_cli.schema import ARCHITECTURES  # noqa: F401  (re-exported)
from maskmtl_cli.tasks import CLASSIFICATION, SEGMENTATION, UTKFACE_TASK_NAMES, TaskSpec, is_sigmoid

#: Batch-norm momentum. Keras' default (0.99) lets the moving variance forget its initial 1.0
#: only after thousands of steps; the first conv block's outputs have a variance near 0.005, so
#: with 0.99 the first epochs validated at chance level (docs/train.md).
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class Preset:
    """Layer widths and activations of one network size.

    Attributes:
        encoder_filters: Filters of the three encoder conv blocks.
        encoder_slopes: LeakyReLU negative slopes of the encoder blocks.
        encoder_pools: "max" or "avg" 2x2 pooling of each encoder block.
        branch_filters: Filters of the gender and race branch conv blocks.
        branch_slope: LeakyReLU slope of the branch conv blocks.
        branch_pool: Pooling of the branch conv blocks.
        dense_units: Units of each head's hidden dense layers (ReLU).
        dropout: Dropout rate after every hidden dense layer.
        convs_per_block: 3x3 conv -> batch norm -> LeakyReLU triples in each encoder block
            before its pooling (the paper's network has 1; 2 gives a VGG-style encoder); one
            count for every block, or one per block.
        head_pooling: How a head reads its feature map: "flatten" (the paper's) or "gap"
            (global average pooling: far fewer weights).
        head_activation: Activation of the heads' hidden dense layers, "relu" or "silu"
            (smooth and never flat, so a unit cannot die for good; see docs/RESULTS.md on the
            age collapse).
    """

    encoder_filters: tuple[int, int, int]
    encoder_slopes: tuple[float, float, float]
    encoder_pools: tuple[str, str, str]
    branch_filters: int
    branch_slope: float
    branch_pool: str
    dense_units: tuple[int, ...]
    dropout: float
    convs_per_block: int | tuple[int, int, int] = 1
    head_pooling: str = "flatten"
    head_activation: str = "relu"


#: The paper's ~0.3M-parameter convolutional feature extractor (shared encoder + gender and race
#: branch blocks: 292,448 parameters), narrow where feature maps are large so that it trains at
#: >300 images/s on a 2-core CPU (docs/train.md). The other presets differ from it as written.
_COMPACT = Preset(
    encoder_filters=(16, 32, 96),
    encoder_slopes=(0.3, 0.3, 0.1),
    encoder_pools=("max", "avg", "avg"),
    branch_filters=128,
    branch_slope=0.1,
    branch_pool="avg",
    dense_units=(128, 64),
    dropout=0.3,
)
#: Sweep candidates (issue 12): the compact and wide encoders with pooled SiLU heads.
_COMPACT_GAP = replace(_COMPACT, dense_units=(128,), head_pooling="gap", head_activation="silu")
_WIDE_FILTERS = (32, 64, 128)

PRESETS: dict[str, Preset] = {
    # The released MaskMTL notebook: 13,225,767 parameters (hierarchical, 3 tasks, 48x48 gray).
    "notebook": replace(_COMPACT, encoder_filters=(160, 192, 224), branch_filters=224,
                        dense_units=(896, 896), dropout=0.5),
    "compact": _COMPACT,
    # Twice the compact encoder's early widths (compute goes mostly to the first two blocks):
    # 1.8M parameters at 64x64 RGB, about 2.3x the compact preset's training time.
    "wide": replace(_COMPACT, encoder_filters=_WIDE_FILTERS),
    "compact-gap": _COMPACT_GAP,
    "wide-gap": replace(_COMPACT_GAP, encoder_filters=_WIDE_FILTERS),
    # A deeper compact encoder (two convs in blocks 2 and 3) with the pooled SiLU heads.
    "deep": replace(_COMPACT_GAP, convs_per_block=(1, 2, 2)),
    # Smallest sensible network: smoke tests and quick experiments.
    "tiny": replace(_COMPACT, encoder_filters=(8, 16, 16), branch_filters=16, dense_units=(16,),
                    dropout=0.2),
}


def get_preset(name: str) -> Preset:
    """Look a preset up by name; InputError listing the valid names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(
            f"Unknown preset '{name}'. Choose one of: {', '.join(PRESETS)}."
        ) from None


def build_network(
    arch: str = "hierarchical",
    tasks=UTKFACE_TASK_NAMES,
    preset: str | Preset = "compact",
    image_size: int = 48,
    color_mode: str = "gray",
    nonlocal_block: bool = False,
    age_loss: str = "l1",
    age_mean: float = 33.0,
    age_std: float = 20.0,
    name: str | None = None,
    segmentation: bool = False,
    regression_stats: dict[str, tuple[float, float]] | None = None,
) -> keras.Model:
    """Build a MaskMTL network (not compiled).

    Args:
        arch: "hierarchical", "hard" or "soft" (see the module docstring).
        tasks: ``TaskSpec``s, or names of UTKFace's tasks ("age", "gender", "race").
        preset: A ``PRESETS`` name or a ``Preset``.
        image_size: Input height and width in pixels.
        color_mode: "gray" (1 channel) or "rgb" (3 channels).
        nonlocal_block: Add a ``NonLocalBlock`` after the (each) encoder.
        age_loss: The age head's output (``age_layers``): "l1" (standardised age), "log-l1"
            (standardised log-age) or "ldl" (a distribution over 0-116 years).
        age_mean: Offset of the age head: the mean training age in years ("l1"), or the mean
            of ``log1p(age)`` ("log-l1"); unused by "ldl".
        age_std: Scale of the age head, in the same space as ``age_mean``.
        name: Model name; defaults to ``maskmtl_<arch>``.
        segmentation: Add the mask-segmentation decoder (output ``segmentation``).
        regression_stats: Mean and standard deviation of the labels of each regression task
            other than age (its head's offset and scale); (0, 1) when absent.

    Returns:
        A functional ``keras.Model`` with input ``image`` and outputs keyed by task (plus
        ``age_distribution`` for "ldl" and ``segmentation`` with ``segmentation``).

    Raises:
        InputError: Unknown arch, task, preset, colour mode or attach point, or an image too
            small.
    """
    specs = checked_tasks(arch, tasks, image_size, color_mode, age_loss, segmentation)
    widths = preset if isinstance(preset, Preset) else get_preset(preset)
    channels = 1 if color_mode == "gray" else 3
    image = keras.Input(shape=(image_size, image_size, channels), name="image", dtype="float32")
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(image)
    head = HeadSettings(widths, AgeOutput(age_loss, age_mean, age_std), regression_stats or {})
    outputs = {}
    if arch == "soft":
        for spec in specs:
            features, _ = _encoder(x, widths, nonlocal_block, prefix=f"{spec.name}_")
            if spec.attach != "encoder":
                features = _conv_block(features, widths, f"{spec.name}_branch")
            outputs.update(_head(features, spec, head))
        if segmentation:
            features, blocks = _encoder(x, widths, nonlocal_block, prefix=f"{SEGMENTATION}_")
    else:
        features, blocks = _encoder(x, widths, nonlocal_block, prefix="")
        sources = FeatureSources(features, [block for block, _ in blocks], specs, arch,
                                 lambda tensor, block_name: _conv_block(tensor, widths,
                                                                        block_name))
        for spec in specs:
            outputs.update(_head(sources.for_task(spec), spec, head))
    if segmentation:
        outputs[SEGMENTATION] = segmentation_decoder(
            features, [skip for _, skip in blocks], widths.encoder_filters, BN_MOMENTUM)
    return keras.Model(inputs=image, outputs=outputs, name=name or f"maskmtl_{arch}")


@dataclass(frozen=True)
class AgeOutput:
    """How the age head ends: its loss family and the offset and scale of its output."""

    loss: str
    mean: float
    std: float


@dataclass(frozen=True)
class HeadSettings:
    """What every head needs: the widths, the age output, other regression outputs' scales."""

    widths: "Preset"
    age_output: AgeOutput
    regression_stats: dict


def _conv_block(x, widths: Preset, name: str, filters=None, slope=None, pool=None, convs=1,
                with_activation: bool = False):
    """``convs`` x (3x3 conv ('same') -> batch norm -> LeakyReLU), then 2x2 pooling.

    With ``with_activation``, returns (pooled, the activation before pooling).
    """
    for index in range(1, convs + 1):
        suffix = "" if index == 1 else str(index)
        x = layers.Conv2D(filters or widths.branch_filters, 3, padding="same",
                          name=f"{name}_conv{suffix}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{suffix}")(x)
        x = layers.LeakyReLU(negative_slope=widths.branch_slope if slope is None else slope,
                             name=f"{name}_act{suffix}")(x)
    pool = pool or widths.branch_pool
    pooling = layers.MaxPooling2D if pool == "max" else layers.AveragePooling2D
    pooled = pooling(2, name=f"{name}_pool")(x)
    return (pooled, x) if with_activation else pooled


def _encoder(x, widths: Preset, nonlocal_block: bool, prefix: str):
    """The three shared conv blocks (named ``{prefix}block1..3``), plus the non-local block.

    Returns:
        The encoder output and, per block, (its pooled output, its activation before pooling).
    """
    convs = widths.convs_per_block
    counts = convs if isinstance(convs, (tuple, list)) else (convs,) * len(widths.encoder_filters)
    blocks = []
    for index, (filters, slope, pool, count) in enumerate(
        zip(widths.encoder_filters, widths.encoder_slopes, widths.encoder_pools, counts), start=1
    ):
        x, activation = _conv_block(x, widths, f"{prefix}block{index}", filters, slope, pool,
                                    convs=count, with_activation=True)
        blocks.append((x, activation))
    if nonlocal_block:
        x = NonLocalBlock(bn_momentum=BN_MOMENTUM, name=f"{prefix}non_local")(x)
    return x, blocks


def _head(x, spec: TaskSpec, settings: HeadSettings) -> dict:
    """Flatten or pool -> hidden dense layers with dropout -> the task's outputs (float32).

    Returns ``{task: tensor}``, and for an "ldl" age head also ``{AGE_DISTRIBUTION: tensor}``.
    """
    task, widths, age_output = spec.name, settings.widths, settings.age_output
    if widths.head_pooling == "gap":
        x = layers.GlobalAveragePooling2D(name=f"{task}_pool")(x)
    else:
        x = layers.Flatten(name=f"{task}_flatten")(x)
    for index, units in enumerate(widths.dense_units, start=1):
        x = layers.Dense(units, activation=widths.head_activation, name=f"{task}_dense{index}")(x)
        x = layers.Dropout(widths.dropout, name=f"{task}_dropout{index}")(x)
    if task == "age":
        if age_output.loss == "ldl":
            distribution = layers.Dense(AGE_BINS, activation="softmax", name=AGE_DISTRIBUTION,
                                        dtype="float32")(x)
            return {"age": ExpectedAge(name="age")(distribution), AGE_DISTRIBUTION: distribution}
        x = layers.Dense(1, name="age_standardised", dtype="float32")(x)
        if age_output.loss == "log-l1":
            return {"age": LogAgeDecoder(age_output.mean, age_output.std, name="age")(x)}
        return {"age": layers.Rescaling(scale=age_output.std, offset=age_output.mean, name="age",
                                        dtype="float32")(x)}
    if spec.kind != CLASSIFICATION:
        mean, std = settings.regression_stats.get(task, (0.0, 1.0))
        x = layers.Dense(1, name=f"{task}_standardised", dtype="float32")(x)
        return {task: layers.Rescaling(scale=float(std), offset=float(mean), name=task,
                                       dtype="float32")(x)}
    if is_sigmoid(spec):
        return {task: layers.Dense(1, activation="sigmoid", name=task, dtype="float32")(x)}
    return {task: layers.Dense(len(spec.classes), activation="softmax", name=task,
                               dtype="float32")(x)}


def soft_sharing_groups(network: keras.Model, tasks) -> list[list]:
    """Corresponding trainable weights of the per-task encoders of a ``soft`` network.

    Layers named ``{task}_{role}`` for two or more tasks (for example ``age_block1_conv`` and
    ``gender_block1_conv``, or ``gender_branch_conv`` and ``race_branch_conv``) form groups,
    one group per weight tensor. Returns an empty list for other architectures.
    """
    by_role: dict[str, list] = {}
    for layer in network.layers:
        for task in tasks:
            if layer.name.startswith(f"{task}_") and layer.trainable_weights:
                role = layer.name[len(task) + 1 :]
                if role.startswith(("block", "non_local", "branch")):
                    by_role.setdefault(role, []).append(layer)
    groups = []
    for role_layers in by_role.values():
        if len(role_layers) < 2:
            continue
        for weights in zip(*(layer.trainable_weights for layer in role_layers)):
            if len({tuple(weight.shape) for weight in weights}) == 1:
                groups.append(list(weights))
    return groups


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Trainable, non-trainable and total parameter counts of a model."""
    trainable = sum(int(keras.ops.size(weight)) for weight in model.trainable_weights)
    frozen = sum(int(keras.ops.size(weight)) for weight in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}

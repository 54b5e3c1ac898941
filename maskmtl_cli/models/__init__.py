"""MaskMTL networks, the non-local block, losses and the multi-task training wrapper.

Importing this package registers the custom Keras objects (``NonLocalBlock``,
``UncertaintyWeighting``, ``MultiTaskTrainer``) so that saved ``.keras`` files deserialize.
"""

from maskmtl_cli.models.architectures import (
    ARCHITECTURES,
    PRESETS,
    Preset,
    build_network,
    count_parameters,
    get_preset,
    min_image_size,
    soft_sharing_groups,
)
from maskmtl_cli.models.losses import UncertaintyWeighting, soft_sharing_penalty, task_losses
from maskmtl_cli.models.multi_task_trainer import MultiTaskTrainer
from maskmtl_cli.models.non_local_block import NonLocalBlock

__all__ = [
    "ARCHITECTURES",
    "MultiTaskTrainer",
    "PRESETS",
    "NonLocalBlock",
    "Preset",
    "UncertaintyWeighting",
    "build_network",
    "count_parameters",
    "get_preset",
    "min_image_size",
    "soft_sharing_groups",
    "soft_sharing_penalty",
    "task_losses",
]

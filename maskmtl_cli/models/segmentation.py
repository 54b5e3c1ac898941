"""The mask-segmentation head: which pixels a face mask covers, with its loss and IoU.

A small U-Net-style decoder (Ronneberger et al., "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015) reads the shared encoder's output (1/8 of the input size) and
climbs back to the input size in three steps; each step upsamples 2x (bilinear), concatenates the
encoder block's activation at that size (before its pooling: the skip connection that keeps the
mask's edges sharp), and applies a 3x3 conv -> batch norm -> ReLU. A 1x1 conv with a sigmoid
then gives ``segmentation``: ``(N, size, size, 1)``, the probability that a pixel is covered.

The loss is binary cross-entropy plus the soft Dice loss (Milletari et al., "V-Net", 3DV 2016),
``1 - (2 |P n Y| + 1) / (|P| + |Y| + 1)`` per image, so that the small mask area is not drowned
out by the background. ``iou`` scores binarised masks (threshold 0.5): ``|P n Y| / |P u Y|``,
1 for an image where both are empty.

Masks from ``maskmtl mask --save-masks`` are the training targets (255 = covered); the face
reconstruction work of Modak et al. (CDMA 2022) needs such a mask to know what to inpaint.
"""

from __future__ import annotations

from keras import layers, ops

from maskmtl_cli.tasks import SEGMENTATION

#: Largest number of filters of a decoder step (it mirrors the encoder's widths up to this).
MAX_DECODER_FILTERS = 32
#: Auxiliary output of ``MultiTaskTrainer`` during training: the (augmented) target mask.
SEGMENTATION_TARGET = "segmentation_target"
_SMOOTH = 1.0


def segmentation_decoder(features, skips, encoder_filters, bn_momentum: float = 0.9):
    """Build the decoder on ``features`` with the encoder's pre-pooling activations ``skips``.

    Args:
        features: The encoder output (after its non-local block, if any), 1/8 of the input.
        skips: The activations of encoder blocks 1, 2 and 3 before their pooling.
        encoder_filters: Filters of the encoder blocks (the decoder uses at most
            ``MAX_DECODER_FILTERS`` at each step).
        bn_momentum: Batch-norm momentum.

    Returns:
        The ``segmentation`` output tensor, float32 ``(N, size, size, 1)``.
    """
    x = features
    for step, (skip, filters) in enumerate(zip(reversed(skips), reversed(encoder_filters)),
                                           start=1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"segmentation_up{step}")(x)
        x = layers.Concatenate(name=f"segmentation_skip{step}")([x, skip])
        x = layers.Conv2D(min(filters, MAX_DECODER_FILTERS), 3, padding="same",
                          name=f"segmentation_conv{step}")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"segmentation_bn{step}")(x)
        x = layers.ReLU(name=f"segmentation_act{step}")(x)
    return layers.Conv2D(1, 1, activation="sigmoid", name=SEGMENTATION, dtype="float32")(x)


def segmentation_loss(y_true, y_pred):
    """Per-image binary cross-entropy (mean over pixels) plus soft Dice loss.

    Args:
        y_true: ``(N, H, W, 1)`` targets in 0..1.
        y_pred: ``(N, H, W, 1)`` predicted probabilities.

    Returns:
        ``(N,)`` float32 losses.
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0 - 1e-7)
    cross_entropy = -(y_true * ops.log(y_pred) + (1.0 - y_true) * ops.log(1.0 - y_pred))
    cross_entropy = ops.mean(ops.reshape(cross_entropy, (ops.shape(y_true)[0], -1)), axis=-1)
    intersection = ops.sum(ops.reshape(y_true * y_pred, (ops.shape(y_true)[0], -1)), axis=-1)
    total = ops.sum(ops.reshape(y_true + y_pred, (ops.shape(y_true)[0], -1)), axis=-1)
    dice = 1.0 - (2.0 * intersection + _SMOOTH) / (total + _SMOOTH)
    return cross_entropy + dice


def iou(y_true, y_pred, threshold: float = 0.5):
    """Per-image IoU of the masks binarised at ``threshold`` (1 where both are empty).

    Args:
        y_true: ``(N, H, W, 1)`` targets in 0..1.
        y_pred: ``(N, H, W, 1)`` predicted probabilities.
        threshold: Probability at or above which a pixel counts as covered.

    Returns:
        ``(N,)`` float32 scores.
    """
    true = ops.reshape(ops.cast(ops.cast(y_true, "float32") >= threshold, "float32"),
                       (ops.shape(y_true)[0], -1))
    predicted = ops.reshape(ops.cast(ops.cast(y_pred, "float32") >= threshold, "float32"),
                            (ops.shape(y_true)[0], -1))
    intersection = ops.sum(true * predicted, axis=-1)
    union = ops.sum(ops.maximum(true, predicted), axis=-1)
    return ops.where(union > 0, intersection / ops.maximum(union, 1.0), 1.0)


def check_segmentation_size(image_size: int) -> None:
    """InputError unless the decoder's three 2x steps get back to ``image_size`` exactly."""
    from maskmtl_cli.errors import InputError

    if image_size % 8:
        raise InputError(f"--segmentation needs an image size divisible by 8 (its decoder "
                         f"doubles the encoder's 1/8 three times); got {image_size}. Use "
                         f"--image-size {image_size - image_size % 8 or 8} or "
                         f"{image_size + 8 - image_size % 8}.")


__all__ = ["SEGMENTATION", "SEGMENTATION_TARGET", "check_segmentation_size", "iou",
           "segmentation_decoder", "segmentation_loss"]

"""The unmasking network: find the face mask, then paint the face back under it.

The third system maskmtl reproduces (Modak et al., "A Deep Learning Framework to Reconstruct Face
under Mask", CDMA 2022) segments the mask and inpaints the hidden face. Here both halves are one
small Keras network trained on the pixel-aligned triples that ``maskmtl mask --save-masks``
writes (masked face, exact mask, bare original):

- the **segmenter**, a U-Net (Ronneberger et al., MICCAI 2015) on the masked face, gives the
  probability that each pixel is covered (``mask_probability``);
- the **inpainter**, a U-Net whose hole pixels are blanked before it sees them (so what it paints
  does not depend on the mask's colour or texture) and whose bottleneck uses dilated 3x3
  convolutions (rates 2 and 4: at 1/8 of the input every position then sees the whole face, as
  in the context encoders of Iizuka et al., "Globally and Locally Consistent Image Completion",
  SIGGRAPH 2017), paints the face;
- the **composite** keeps the visible pixels and takes the painted ones inside the mask.

The inference graph has two inputs. ``image``: ``(N, S, S, 3)`` RGB in 0..255. ``mask``:
``(N, S, S, 1)`` with 1 = hidden, 0 = visible and any negative value = "let the segmenter
decide" for that pixel; the segmenter's decision is its probability >= 0.5, grown by
``ESTIMATE_GROWTH`` pixels (a ring of mask left in view would be copied into the face). Outputs:
``used_mask`` (the mask used, 0/1), ``mask_probability`` and ``face`` (the composite, 0..255).
"""

from __future__ import annotations

import keras
from keras import layers, ops

#: Input names of the inference graph.
IMAGE_INPUT, MASK_INPUT = "image", "mask"
#: Output names: the mask used, the segmenter's probability, the reconstructed face.
MASK_OUTPUT, PROBABILITY_OUTPUT, FACE_OUTPUT = "used_mask", "mask_probability", "face"
#: Pixels by which the segmenter's mask is grown before inpainting (a 3x3 max-pool each).
ESTIMATE_GROWTH = 1
#: Filters of the inpainter's four levels (1, 1/2, 1/4, 1/8 of the input) at width 1.
INPAINTER_FILTERS = (24, 48, 96, 160)
#: Filters of the segmenter's three levels.
SEGMENTER_FILTERS = (16, 32, 64)


def _conv(x, filters: int, name: str, strides: int = 1, dilation: int = 1):
    x = layers.Conv2D(filters, 3, strides=strides, dilation_rate=dilation, padding="same",
                      name=name)(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def build_segmenter(size: int) -> keras.Model:
    """U-Net: ``image`` (0..255) -> ``mask_probability`` ``(N, size, size, 1)``."""
    image = keras.Input((size, size, 3), name=IMAGE_INPUT)
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="segmenter_scale")(image)
    skips = []
    for level, filters in enumerate(SEGMENTER_FILTERS):
        if level:
            x = layers.MaxPooling2D(2, name=f"segmenter_pool{level}")(x)
        x = _conv(x, filters, f"segmenter_down{level}a")
        x = _conv(x, filters, f"segmenter_down{level}b")
        skips.append(x)
    for level in range(len(SEGMENTER_FILTERS) - 2, -1, -1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"segmenter_up{level}")(x)
        x = layers.Concatenate(name=f"segmenter_skip{level}")([x, skips[level]])
        x = _conv(x, SEGMENTER_FILTERS[level], f"segmenter_conv{level}")
    probability = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32",
                                name=PROBABILITY_OUTPUT)(x)
    return keras.Model(image, probability, name="segmenter")


def build_inpainter(size: int, width: float = 1.0) -> keras.Model:
    """U-Net: (``image`` 0..255, ``mask`` 0/1) -> the painted face, 0..255, every pixel.

    The hole is blanked (set to the middle grey) and the mask given as a fourth channel.
    """
    filters = [max(8, round(f * width)) for f in INPAINTER_FILTERS]
    image = keras.Input((size, size, 3), name=IMAGE_INPUT)
    hole = keras.Input((size, size, 1), name=MASK_INPUT)
    scaled = layers.Rescaling(1 / 127.5, offset=-1.0, name="inpainter_scale")(image)
    visible = layers.Rescaling(-1.0, offset=1.0, name="inpainter_visible")(hole)
    blanked = layers.Multiply(name="inpainter_blank")([scaled, visible])
    x = layers.Concatenate(name="inpainter_input")([blanked, hole])
    skips = []
    for level, count in enumerate(filters[:-1]):
        x = _conv(x, count, f"inpainter_down{level}a", strides=2 if level else 1)
        x = _conv(x, count, f"inpainter_down{level}b")
        skips.append(x)
    x = _conv(x, filters[-1], "inpainter_bottom", strides=2)
    x = _conv(x, filters[-1], "inpainter_context2", dilation=2)
    x = _conv(x, filters[-1], "inpainter_context4", dilation=4)
    for level in range(len(skips) - 1, -1, -1):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"inpainter_up{level}")(x)
        x = layers.Concatenate(name=f"inpainter_skip{level}")([x, skips[level]])
        x = _conv(x, filters[level], f"inpainter_conv{level}a")
        x = _conv(x, filters[level], f"inpainter_conv{level}b")
    x = layers.Conv2D(3, 3, padding="same", activation="tanh", dtype="float32",
                      name="inpainter_rgb")(x)
    painted = layers.Rescaling(127.5, offset=127.5, name="painted")(x)
    return keras.Model([image, hole], painted, name="inpainter")


@keras.saving.register_keras_serializable(package="maskmtl")
class MaskChoice(layers.Layer):
    """The mask the inpainter uses: the given one where it is >= 0, else the segmenter's.

    The segmenter's probability is thresholded at 0.5 and grown by ``growth`` pixels (3x3
    max-pools).

    Args:
        growth: Pixels by which the estimated mask is grown.
        **kwargs: Standard layer arguments.

    Call arguments:
        inputs: ``[given, probability]``, both ``(N, H, W, 1)``.

    Returns:
        ``(N, H, W, 1)`` float32, 0 or 1.
    """

    def __init__(self, growth: int = ESTIMATE_GROWTH, **kwargs):
        super().__init__(**kwargs)
        self.growth = growth

    def call(self, inputs):
        given, probability = inputs
        estimate = ops.cast(probability >= 0.5, "float32")
        for _ in range(self.growth):
            estimate = ops.max_pool(estimate, 3, strides=1, padding="same")
        chosen = ops.where(given >= 0.0, ops.cast(given >= 0.5, "float32"), estimate)
        return ops.cast(chosen, "float32")

    def get_config(self):
        return {**super().get_config(), "growth": self.growth}


def build_unmask_network(size: int = 64, width: float = 1.0) -> keras.Model:
    """The inference graph: (``image``, ``mask``) -> ``mask``, ``mask_probability``, ``face``.

    Args:
        size: Side of the aligned face crops (divisible by 8).
        width: Multiplier of the inpainter's filters.
    """
    segmenter, inpainter = build_segmenter(size), build_inpainter(size, width)
    image = keras.Input((size, size, 3), name=IMAGE_INPUT)
    given = keras.Input((size, size, 1), name=MASK_INPUT)
    probability = segmenter(image)
    used = MaskChoice(name="mask_used")([given, probability])
    painted = inpainter([image, used])
    face = _composite(image, used, painted)
    outputs = {MASK_OUTPUT: used, PROBABILITY_OUTPUT: layers.Identity(
        name=PROBABILITY_OUTPUT)(probability), FACE_OUTPUT: face}
    return keras.Model({IMAGE_INPUT: image, MASK_INPUT: given}, outputs, name="unmask")


def _composite(image, used, painted):
    """``painted`` inside the mask, ``image`` elsewhere."""
    return layers.Add(name=FACE_OUTPUT)([layers.Multiply(name="face_painted")([painted, used]),
                                         layers.Multiply(name="face_kept")(
                                             [image, layers.Rescaling(-1.0, offset=1.0,
                                                                      name="visible")(used)])])

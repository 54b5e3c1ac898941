"""The perceptual loss of `train-unmask --perceptual-weight`, with our attribute model as the
feature network.

Johnson, Alahi and Fei-Fei ("Perceptual Losses for Real-Time Style Transfer and
Super-Resolution", ECCV 2016) compare images by the features a fixed network computes from
them. Nothing may be downloaded at run time, so the features are those of maskmtl's own shipped
attribute model (trained on UTKFace faces): its encoder activations at 1/2 and 1/4 of its input
(``PERCEPTUAL_LAYERS``). The loss pushes a reconstruction to look, to that model, like the bare
face: what matters for predicting age, gender and ethnicity from it afterwards.
"""

from __future__ import annotations

import keras
from keras import ops

#: Layers of the shipped attribute model whose activations are compared.
PERCEPTUAL_LAYERS = ("block2_act2", "block3_act2")


@keras.saving.register_keras_serializable(package="maskmtl")
class PerceptualDistance(keras.layers.Layer):
    """Per face, the mean L1 distance of frozen attribute-model features of the composite (the
    painting inside the hole, the input elsewhere) and of the bare face.

    Args:
        **kwargs: Standard layer arguments.

    Call arguments:
        inputs: ``[painted, hole, image, bare]``, 0..255 images and the 0/1 hole.

    Returns:
        ``(N,)`` distances (the bare face's features carry no gradient).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        import maskmtl_cli.models  # noqa: F401  (registers the attribute model's layers)
        from maskmtl_cli.prediction.predict import DEFAULT_MODEL

        source = keras.saving.load_model(DEFAULT_MODEL.with_suffix(".keras"), compile=False)
        self.features = keras.Model(source.inputs, [source.get_layer(name).output
                                                    for name in PERCEPTUAL_LAYERS])
        self.features.trainable = False
        self.size = int(source.input_shape[1])

    def call(self, inputs):
        painted, hole, image, bare = inputs
        composite = painted * hole + image * (1.0 - hole)
        size = (self.size, self.size)
        ours = self.features(ops.image.resize(composite, size, antialias=True), training=False)
        theirs = self.features(ops.image.resize(bare, size, antialias=True), training=False)
        total = 0.0
        for mine, target in zip(ours, theirs):
            total = total + ops.mean(ops.abs(mine - ops.stop_gradient(target)), axis=(1, 2, 3))
        return total

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0],)

"""NonLocalBlock: shapes, the embedded-Gaussian formula, config round trip, .keras save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskmtl_cli.models.non_local_block import NonLocalBlock


def _features(shape=(2, 4, 5, 6), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("subsample", [False, True])
def test_output_shape_matches_input(subsample):
    block = NonLocalBlock(subsample=subsample)
    out = block(_features((3, 6, 6, 8)))
    assert tuple(out.shape) == (3, 6, 6, 8)
    assert block.compute_output_shape((None, 6, 6, 8)) == (None, 6, 6, 8)
    # theta/phi/g project to half the channels, W_z back to all of them.
    assert tuple(block.theta.kernel.shape) == (1, 1, 8, 4)
    assert tuple(block.w_z.kernel.shape) == (1, 1, 4, 8)


def test_starts_as_identity():
    """Zero-initialised BN scale (or W_z without BN): the block is the identity at first."""
    x = _features()
    for use_batch_norm in (True, False):
        out = NonLocalBlock(use_batch_norm=use_batch_norm)(x, training=False)
        np.testing.assert_allclose(np.asarray(out), x, atol=1e-6)


def test_matches_the_embedded_gaussian_formula():
    """z_i = x_i + W_z sum_j softmax_j(theta_i . phi_j) g_j, checked against numpy."""
    x = _features((2, 3, 4, 6))
    block = NonLocalBlock(use_batch_norm=False)
    block.build(x.shape)
    rng = np.random.default_rng(1)
    for conv in (block.theta, block.phi, block.g, block.w_z):
        conv.kernel.assign(rng.normal(size=conv.kernel.shape).astype("float32") * 0.3)
        conv.bias.assign(rng.normal(size=conv.bias.shape).astype("float32") * 0.1)

    def conv1x1(conv, values):
        return values @ np.asarray(conv.kernel)[0, 0] + np.asarray(conv.bias)

    flat = x.reshape(2, 12, 6)
    theta, phi, g = (conv1x1(c, flat) for c in (block.theta, block.phi, block.g))
    logits = theta @ phi.transpose(0, 2, 1)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = flat + conv1x1(block.w_z, weights @ g)
    out = np.asarray(block(x))
    np.testing.assert_allclose(out, expected.reshape(x.shape), rtol=1e-4, atol=1e-4)


def test_config_round_trip():
    block = NonLocalBlock(inter_channels=3, use_batch_norm=False, subsample=True,
                          bn_momentum=0.9, name="nl")
    config = block.get_config()
    assert config["inter_channels"] == 3 and config["subsample"] is True
    assert config["bn_momentum"] == 0.9
    clone = NonLocalBlock.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(block))
    assert isinstance(restored, NonLocalBlock) and restored.inter_channels == 3


def test_keras_save_and_load(tmp_path):
    inputs = keras.Input((6, 6, 8))
    outputs = NonLocalBlock(name="non_local")(inputs)
    model = keras.Model(inputs, outputs)
    block = model.get_layer("non_local")
    block.batch_norm.gamma.assign(np.full((8,), 0.5, dtype="float32"))  # not the identity
    x = _features((2, 6, 6, 8))
    before = np.asarray(model(x))
    assert not np.allclose(before, x)
    path = tmp_path / "nl.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("non_local"), NonLocalBlock)
    np.testing.assert_allclose(np.asarray(loaded(x)), before, rtol=1e-6, atol=1e-6)

"""The numpy runtime: parity with Keras on maskmtl networks, unsupported files, no Keras import."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from maskmtl_cli.errors import InputError, ModelError
from maskmtl_cli.inference import predict_arrays
from maskmtl_cli.models.architectures import PRESETS, build_network
from maskmtl_cli.models.non_local_block import NonLocalBlock
from maskmtl_cli.runtime import NumpyModel, UnsupportedModelError, load_numpy_model

SHIPPED_MODEL = (
    Path(__file__).parents[1] / "maskmtl_cli" / "assets" / "models" / "maskmtl_default.keras"
)
#: Largest allowed |numpy - keras| per output: age in years, probabilities.
TOLERANCE = {"age": 1e-3, "gender": 1e-5, "race": 1e-5}


def _images(model_shape, count=5, seed=0) -> np.ndarray:
    """Random uint8-valued float32 images of the model's input shape."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count,) + tuple(model_shape[1:])).astype("float32")


def _make_batch_norm_nontrivial(model: keras.Model, seed: int = 0) -> None:
    """Random BN scale/offset, then a few training-mode batches to move the moving statistics.

    The non-local block's BN scale starts at zero (identity block), so this also makes the
    block contribute to the outputs.
    """
    rng = np.random.default_rng(seed)
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    norms += [
        layer.batch_norm
        for layer in model.layers
        if isinstance(layer, NonLocalBlock) and layer.use_batch_norm
    ]
    for norm in norms:
        if norm.gamma is not None:
            norm.gamma.assign(rng.uniform(0.5, 1.5, norm.gamma.shape).astype("float32"))
        if norm.beta is not None:
            norm.beta.assign(rng.normal(0, 0.2, norm.beta.shape).astype("float32"))
    for step in range(3):
        model(_images(model.input_shape, 8, seed=100 + step), training=True)


def _save(model: keras.Model, folder: Path, name: str = "model.keras") -> Path:
    path = folder / name
    model.save(path)
    return path


def _assert_parity(path: Path, count: int = 5) -> dict[str, float]:
    """Compare the numpy runtime with Keras on one .keras file; return max |diff| per output."""
    reference = keras.saving.load_model(path, compile=False)
    model = load_numpy_model(path)
    images = _images(reference.input_shape, count)
    expected = {key: np.asarray(value) for key, value in reference.predict_on_batch(images).items()}
    actual = model.predict_on_batch(images)
    assert sorted(actual) == sorted(expected)
    assert model.output_names == list(reference.output_names)
    assert [spec.shape for spec in model.outputs] == [tuple(out.shape) for out in reference.outputs]
    assert model.input_shape == tuple(reference.input_shape)
    differences = {}
    for key, value in expected.items():
        assert actual[key].dtype == np.float32 and actual[key].shape == value.shape
        differences[key] = float(np.max(np.abs(actual[key] - value)))
        assert differences[key] <= TOLERANCE.get(key, 1e-4), (key, differences[key])
    return differences


def test_shipped_model_matches_keras():
    differences = _assert_parity(SHIPPED_MODEL, count=8)
    assert set(differences) == {"age", "gender", "race"}


def test_batches_run_in_parallel_chunks_with_the_same_results():
    """A batch of several chunks (threads) equals the faces predicted one by one, in order."""
    from maskmtl_cli.runtime import model as runtime_model

    model = load_numpy_model(SHIPPED_MODEL)
    images = _images(model.input_shape, 2 * runtime_model.CHUNK_SIZE + 5, seed=4)
    together = model.predict_on_batch(images)
    alone = [model.predict_on_batch(images[i : i + 1]) for i in range(len(images))]
    for task, values in together.items():
        assert len(values) == len(images)
        np.testing.assert_allclose(values, np.concatenate([one[task] for one in alone]),
                                   atol=TOLERANCE[task], rtol=0)  # float rounding only


def test_shipped_model_through_predict_arrays():
    """``inference.predict_arrays`` runs unchanged on a NumpyModel (including flip TTA)."""
    reference = keras.saving.load_model(SHIPPED_MODEL, compile=False)
    model = load_numpy_model(SHIPPED_MODEL)
    images = _images(model.input_shape, 7).astype("uint8")
    for flip in (False, True):
        expected = predict_arrays(reference, images, batch_size=3, flip=flip)
        actual = predict_arrays(model, images, batch_size=3, flip=flip)
        for task, value in expected.items():
            np.testing.assert_allclose(actual[task], value, atol=TOLERANCE[task], rtol=0)
    assert model.name == reference.name
    assert len(model.inputs) == 1 and model.inputs[0].shape == (None, 48, 48, 3)


@pytest.mark.parametrize("color_mode", ["gray", "rgb"])
@pytest.mark.parametrize("nonlocal_block", [False, True])
@pytest.mark.parametrize("arch", ["hierarchical", "hard", "soft"])
def test_built_networks_match_keras(tmp_path, arch, nonlocal_block, color_mode):
    network = build_network(
        arch, preset="tiny", image_size=32, color_mode=color_mode,
        nonlocal_block=nonlocal_block, augment=color_mode == "rgb", age_mean=30.0, age_std=15.0,
    )
    _make_batch_norm_nontrivial(network)
    _assert_parity(_save(network, tmp_path))


def test_compact_network_matches_keras(tmp_path):
    network = build_network("hierarchical", preset="compact", image_size=48, color_mode="gray",
                            nonlocal_block=True, augment=True)
    _make_batch_norm_nontrivial(network, seed=1)
    _assert_parity(_save(network, tmp_path))


def test_deeper_blocks_and_task_subsets_match_keras(tmp_path):
    """More conv/BN/act triples per block (when the preset has the field), two tasks only."""
    preset = PRESETS["tiny"]
    if "convs_per_block" in {field.name for field in dataclasses.fields(preset)}:
        preset = dataclasses.replace(preset, convs_per_block=2)
    network = build_network("hard", tasks=("age", "race"), preset=preset, image_size=32,
                            color_mode="rgb", nonlocal_block=True)
    _make_batch_norm_nontrivial(network, seed=2)
    _assert_parity(_save(network, tmp_path))


def test_every_supported_option_matches_keras(tmp_path):
    """Strides, 'same'/'valid' padding on odd sizes, pooling windows != strides, BN without
    center/scale, ReLU options, merges, a layer called twice, a subsampled non-local block."""
    image = keras.Input((33, 31, 2), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    a = layers.Conv2D(6, 5, strides=2, padding="valid", use_bias=False, activation="relu")(x)
    b = layers.Conv2D(6, 3, strides=2, padding="same", activation="swish")(x)
    b = layers.Conv2D(6, 3, padding="valid")(b)
    c = layers.Conv2D(6, 1, strides=2, activation="tanh")(x)
    c = layers.MaxPooling2D(3, strides=2, padding="same")(c)
    c = layers.AveragePooling2D(3, strides=1, padding="same")(c)
    a = layers.BatchNormalization(center=False, scale=False, epsilon=0.01)(a)
    a = layers.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.2)(a)
    merged = layers.Concatenate()([a, b])
    merged = layers.Add()([merged, layers.Conv2D(12, 1)(merged)])
    shared = layers.Conv2D(12, 3, padding="same", activation="elu")
    twice = shared(shared(merged))  # one layer, two nodes
    features = NonLocalBlock(inter_channels=5, use_batch_norm=False, subsample=True)(twice)
    features = layers.AveragePooling2D(2, strides=1)(features)
    pooled = layers.GlobalAveragePooling2D()(features)
    flat = layers.Flatten()(layers.MaxPooling2D(2, padding="same")(c))
    hidden = layers.Dense(8)(layers.Concatenate()([pooled, flat]))
    hidden = layers.Activation("relu6")(layers.BatchNormalization()(hidden))
    outputs = {
        "race": layers.Dense(5, activation="softmax", name="race")(hidden),
        "gender": layers.Dense(1, activation="sigmoid", name="gender")(hidden),
        "age": layers.Softmax(name="age")(layers.Dense(3)(hidden)),
    }
    network = keras.Model(image, outputs, name="kitchen_sink")
    _make_batch_norm_nontrivial(network, seed=3)
    _assert_parity(_save(network, tmp_path))


def test_unsupported_layer_is_named(tmp_path):
    image = keras.Input((8, 8, 1), name="image")
    x = layers.LayerNormalization(name="odd_norm")(image)
    network = keras.Model(image, {"age": layers.Dense(1, name="age")(layers.Flatten()(x))})
    with pytest.raises(UnsupportedModelError, match="LayerNormalization") as caught:
        load_numpy_model(_save(network, tmp_path))
    assert caught.value.layer_class == "LayerNormalization"
    assert isinstance(caught.value, (ValueError, ModelError))


def test_unsupported_option_is_named(tmp_path):
    image = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(image)
    network = keras.Model(image, {"age": layers.Dense(1, name="age")(layers.Flatten()(x))})
    with pytest.raises(UnsupportedModelError, match="dilated.*Conv2D.*dilation") as caught:
        load_numpy_model(_save(network, tmp_path))
    assert caught.value.layer_class == "Conv2D"


def test_truncated_file_raises(tmp_path):
    data = SHIPPED_MODEL.read_bytes()
    for size in (len(data) // 2, len(data) - 100, 10):
        truncated = tmp_path / f"truncated{size}.keras"
        truncated.write_bytes(data[:size])
        with pytest.raises(UnsupportedModelError):
            load_numpy_model(truncated)


def test_not_a_keras_zip_raises(tmp_path):
    plain = tmp_path / "notes.keras"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(UnsupportedModelError, match="not a readable .keras"):
        load_numpy_model(plain)
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsupportedModelError):
        load_numpy_model(garbage)
    sequential = tmp_path / "sequential.keras"
    with zipfile.ZipFile(sequential, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {}}))
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(UnsupportedModelError, match="Sequential"):
        load_numpy_model(sequential)


def test_corrupt_weights_raise(tmp_path):
    """A valid zip whose weights file is damaged."""
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(SHIPPED_MODEL) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            target.writestr(item, data[: len(data) // 3] if item.endswith(".h5") else data)
    with pytest.raises(UnsupportedModelError):
        load_numpy_model(broken)


def test_wrong_input_shape_raises():
    model = load_numpy_model(SHIPPED_MODEL)
    assert isinstance(model, NumpyModel)
    with pytest.raises(InputError, match=r"\(None, 48, 48, 3\)"):
        model.predict_on_batch(np.zeros((1, 32, 32, 3), "float32"))


def test_import_and_predict_do_not_load_keras():
    script = (
        "import sys, numpy as np\n"
        "from maskmtl_cli.runtime import load_numpy_model\n"
        f"model = load_numpy_model({str(SHIPPED_MODEL)!r})\n"
        "model.predict_on_batch(np.zeros((2, 48, 48, 3), 'float32'))\n"
        "heavy = ('keras', 'tensorflow', 'tf_keras', 'jax', 'torch')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

"""ONNX export: the inference graph, parity with Keras for every architecture and option."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from maskmtl_cli.errors import ModelError
from maskmtl_cli.inference import OnnxModel
from maskmtl_cli.models import PRESETS, build_network
from maskmtl_cli.models.export import PARITY_TOLERANCE, export_onnx, inference_network

#: (arch, tasks, nonlocal, colour, age loss, preset): every architecture, the task subsets,
#: both colour modes, every age head and every head and block option.
CASES = [
    ("hierarchical", ("age", "gender", "race"), True, "rgb", "ldl", "compact-gap"),
    ("hierarchical", ("age", "gender", "race"), False, "gray", "l1", "tiny"),
    ("hierarchical", ("race",), True, "rgb", "l1", "tiny"),
    ("hard", ("age", "gender", "race"), True, "gray", "log-l1", "tiny"),
    ("hard", ("age", "race"), False, "rgb", "ldl", "deep"),
    ("soft", ("age", "gender", "race"), True, "rgb", "l1", "tiny"),
    ("soft", ("gender",), False, "gray", "l1", "wide-gap"),
]


def trained_step(network, tasks, age_loss):
    """One training step, so batch-norm statistics and weights are no longer at their init."""
    from maskmtl_cli.models import MultiTaskTrainer

    trainer = MultiTaskTrainer(network, tasks, age_loss=age_loss)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    rng = np.random.default_rng(1)
    channels = network.input_shape[-1]
    images = rng.integers(0, 256, (8, *network.input_shape[1:3], channels)).astype("uint8")
    targets = {"age": rng.uniform(1, 90, 8).astype("float32"),
               "gender": rng.integers(0, 2, 8).astype("float32"),
               "race": rng.integers(0, 5, 8).astype("int32")}
    trainer.fit(images, {task: targets[task] for task in tasks}, batch_size=8, epochs=1,
                verbose=0)


@pytest.mark.parametrize("arch,tasks,nonlocal_block,colour,age_loss,preset", CASES)
def test_onnx_export_matches_keras(tmp_path, arch, tasks, nonlocal_block, colour, age_loss,
                                   preset):
    keras.utils.set_random_seed(0)
    network = build_network(arch, tasks=tasks, preset=preset, image_size=32, color_mode=colour,
                            nonlocal_block=nonlocal_block, age_loss=age_loss,
                            age_mean=3.3 if age_loss == "log-l1" else 30.0,
                            age_std=0.8 if age_loss == "log-l1" else 15.0)
    trained_step(network, tasks, age_loss)
    differences = export_onnx(network, tmp_path / "model.onnx")
    assert set(differences) == set(tasks)
    model = OnnxModel(tmp_path / "model.onnx")
    assert model.output_names == list(tasks) and model.input_shape[1:3] == (32, 32)
    images = np.random.default_rng(2).uniform(0, 255, (5, 32, 32, 1 if colour == "gray" else 3))
    expected = network.predict_on_batch(images.astype("float32"))
    got = model.predict_on_batch(images)
    for task in tasks:
        assert np.abs(np.asarray(expected[task]) - got[task]).max() <= PARITY_TOLERANCE[task]


def test_inference_network_drops_training_only_parts():
    network = build_network("hierarchical", preset="tiny", image_size=32, age_loss="ldl")
    assert "age_distribution" in network.output_names
    inference = inference_network(network)
    assert list(inference.output_names) == ["age", "gender", "race"]
    # Networks of older runs carry augmentation layers at their input: they become identities.
    inputs = keras.Input((32, 32, 1), name="image")
    x = keras.layers.RandomFlip("horizontal", name="augment_flip")(inputs)
    x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    old = keras.Model(inputs, {"gender": keras.layers.Dense(1, activation="sigmoid",
                                                            name="gender")(x)})
    cleaned = inference_network(old)
    kinds = {layer.name: type(layer).__name__ for layer in cleaned.layers}
    assert kinds["augment_flip"] == "Identity"
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(cleaned.predict_on_batch(images)["gender"],
                               old(images, training=False)["gender"], rtol=1e-6)
    plain = build_network("hierarchical", preset="tiny", image_size=32)
    assert inference_network(plain) is plain


def test_a_failed_parity_check_keeps_no_file(tmp_path, monkeypatch):
    from maskmtl_cli.models import export

    network = build_network("hierarchical", preset="tiny", image_size=32)
    monkeypatch.setattr(export, "PARITY_TOLERANCE", {"age": -1.0, "gender": 1.0, "race": 1.0})
    with pytest.raises(ModelError, match="disagrees with Keras on output 'age'"):
        export.export_onnx(network, tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_presets_are_distinct_shapes():
    assert PRESETS["deep"].convs_per_block == (1, 2, 2)
    assert replace(PRESETS["compact-gap"], head_pooling="flatten") != PRESETS["compact-gap"]

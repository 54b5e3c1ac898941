"""ONNX export: the inference graph, parity with Keras for every architecture and option."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from maskmtl_cli.errors import InputError, ModelError
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


def test_onnx_export_of_other_tasks_and_the_segmentation_head(tmp_path):
    from maskmtl_cli.model_schema import ONNX_METADATA_KEY
    from maskmtl_cli.models import MultiTaskTrainer
    from maskmtl_cli.tasks import UTKFACE_TASKS, TaskSpec, specs_from_json

    keras.utils.set_random_seed(0)
    tasks = (UTKFACE_TASKS[0], TaskSpec("expression", "classification", ("a", "b", "c")),
             TaskSpec("age_group", "classification", ("0", "1", "2", "3"), "block2"),
             TaskSpec("score", "regression"))
    network = build_network("hierarchical", tasks=tasks, preset="tiny", image_size=32,
                            color_mode="rgb", nonlocal_block=True, segmentation=True,
                            regression_stats={"score": (100.0, 40.0)})
    trainer = MultiTaskTrainer(network, [task.to_dict() for task in tasks], segmentation=True)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (8, 32, 32, 4)).astype("uint8")  # RGB + mask channel
    targets = {"age": rng.uniform(1, 90, 8).astype("float32"),
               "expression": rng.integers(0, 3, 8).astype("int32"),
               "age_group": rng.integers(0, 4, 8).astype("int32"),
               "score": rng.normal(100, 40, 8).astype("float32"),
               "segmentation": np.ones(8, "float32")}
    trainer.fit(images, targets, batch_size=8, epochs=1, verbose=0)
    differences = export_onnx(network, tmp_path / "model.onnx", specs=tasks)
    assert set(differences) == {"age", "expression", "age_group", "score", "segmentation"}
    assert differences["segmentation"] <= PARITY_TOLERANCE["segmentation"]
    model = OnnxModel(tmp_path / "model.onnx")
    assert model.task_specs == tasks
    metadata = model.session.get_modelmeta().custom_metadata_map[ONNX_METADATA_KEY]
    assert specs_from_json(metadata) == (tasks, True)
    assert model.output_ranks["segmentation"] == 4


def test_segmentation_decoder_shapes_and_keras_round_trip(tmp_path):
    from maskmtl_cli.models.segmentation import iou, segmentation_loss

    network = build_network("hierarchical", tasks=("gender",), preset="tiny", image_size=48,
                            segmentation=True)
    images = np.random.default_rng(0).uniform(0, 255, (2, 48, 48, 1)).astype("float32")
    masks = np.asarray(network(images)["segmentation"])
    assert masks.shape == (2, 48, 48, 1) and ((masks > 0) & (masks < 1)).all()
    names = {layer.name for layer in network.layers}
    assert {"segmentation_up1", "segmentation_skip3", "segmentation_conv3"} <= names
    network.save(tmp_path / "net.keras")
    again = keras.saving.load_model(tmp_path / "net.keras")
    np.testing.assert_allclose(np.asarray(again(images)["segmentation"]), masks, rtol=1e-6)
    clone = keras.Model.from_config(network.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in network.layers]
    truth = np.zeros((2, 4, 4, 1), "float32")
    truth[0, :2] = 1.0
    perfect = np.asarray(iou(truth, truth))
    np.testing.assert_allclose(perfect, [1.0, 1.0])  # an empty mask predicted empty counts 1
    half = truth.copy()
    half[0, :1] = 0.0
    assert float(iou(truth, half)[0]) == pytest.approx(0.5)
    losses = np.asarray(segmentation_loss(truth, np.clip(truth, 0.01, 0.99)))
    # Image 0: BCE -log(0.99); Dice 1 - (2 * 7.92 + 1) / (8 + 8 + 1), by hand.
    assert losses[0] == pytest.approx(-np.log(0.99) + 1 - 16.84 / 17, rel=1e-4)
    assert float(segmentation_loss(truth, 1 - truth)[0]) > 10 * losses[0]
    with pytest.raises(InputError, match="divisible by 8"):
        build_network("hierarchical", tasks=("gender",), preset="tiny", image_size=36,
                      segmentation=True)

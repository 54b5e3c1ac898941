"""Architectures, presets, losses and the training wrapper."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskmtl_cli.errors import InputError
from maskmtl_cli.models import (
    ARCHITECTURES,
    PRESETS,
    MultiTaskTrainer,
    UncertaintyWeighting,
    build_network,
    count_parameters,
    min_image_size,
    soft_sharing_groups,
    soft_sharing_penalty,
)
from maskmtl_cli.models import losses
from maskmtl_cli.training import config


def test_notebook_preset_has_the_released_parameter_count():
    model = build_network("hierarchical", preset="notebook", image_size=48, color_mode="gray")
    assert count_parameters(model)["total"] == 13_225_767
    assert model.count_params() == 13_225_767


def test_compact_feature_extractor_is_about_0_3m_parameters():
    model = build_network("hierarchical", preset="compact")
    conv_layers = [layer for layer in model.layers
                   if "block" in layer.name or "branch" in layer.name]
    conv_params = sum(layer.count_params() for layer in conv_layers)
    assert 250_000 <= conv_params <= 350_000


def test_convs_per_block_stacks_conv_triples_before_each_pooling():
    from dataclasses import replace

    two = replace(PRESETS["tiny"], convs_per_block=2)
    model = build_network("hierarchical", preset=two, image_size=32, color_mode="gray")
    names = {layer.name for layer in model.layers}
    for block in (1, 2, 3):
        assert {f"block{block}_conv", f"block{block}_conv2", f"block{block}_bn2",
                f"block{block}_act2"} <= names
    assert "gender_branch_conv2" not in names  # branches keep one conv
    # The second conv of block 1 maps 8 -> 8 channels: 3*3*8*8 weights + 8 biases.
    assert model.get_layer("block1_conv2").count_params() == 3 * 3 * 8 * 8 + 8
    one = build_network("hierarchical", preset="tiny", image_size=32, color_mode="gray")
    added = sum(model.get_layer(f"block{b}_{part}2").count_params()
                for b in (1, 2, 3) for part in ("conv", "bn"))
    assert count_parameters(model)["total"] == count_parameters(one)["total"] + added


def test_wide_preset_doubles_the_compact_early_widths():
    wide = build_network("hierarchical", preset="wide", image_size=64, color_mode="rgb",
                         nonlocal_block=True)
    assert wide.get_layer("block1_conv").filters == 32
    assert wide.get_layer("block2_conv").filters == 64
    assert count_parameters(wide)["total"] == 1_825_799  # ~7.3 MB as float32: under 10 MB


def test_config_lists_match_the_model_library():
    assert tuple(config.ARCHITECTURES) == ARCHITECTURES
    assert set(config.PRESET_NAMES) == set(PRESETS)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_outputs_follow_the_model_contract(arch):
    model = build_network(arch, preset="tiny", image_size=32, color_mode="rgb",
                          age_mean=30.0, age_std=10.0)
    assert model.input.name == "image" and tuple(model.input_shape) == (None, 32, 32, 3)
    outputs = model(np.zeros((2, 32, 32, 3), dtype="float32"))
    assert set(outputs) == {"age", "gender", "race"}
    assert tuple(outputs["age"].shape) == (2, 1) and tuple(outputs["race"].shape) == (2, 5)
    np.testing.assert_allclose(np.asarray(outputs["race"]).sum(axis=1), 1.0, rtol=1e-5)
    gender = np.asarray(outputs["gender"])
    assert ((gender > 0) & (gender < 1)).all()
    # The age head predicts a standardised age; the model turns it into years.
    dense = model.get_layer("age_standardised")
    dense.kernel.assign(np.zeros(dense.kernel.shape, dtype="float32"))
    dense.bias.assign(np.ones((1,), dtype="float32"))
    ages = np.asarray(model(np.zeros((2, 32, 32, 3), dtype="float32"))["age"])
    np.testing.assert_allclose(ages, 40.0)  # mean + 1 std


def test_task_subsets_build_only_what_they_need():
    race_only = build_network("hierarchical", tasks=("race",), preset="tiny", image_size=32)
    names = {layer.name for layer in race_only.layers}
    assert list(race_only.output_names) == ["race"]
    assert "gender_branch_conv" in names and "gender_dense1" not in names and "age" not in names
    hard = build_network("hard", tasks="race", preset="tiny", image_size=16)
    assert "gender_branch_conv" not in {layer.name for layer in hard.layers}
    age_only = build_network("hard", tasks=["age"], preset="tiny", image_size=8)
    assert list(age_only.output_names) == ["age"]


def test_bad_arch_task_and_size_are_input_errors():
    with pytest.raises(InputError, match="Choose one of: hierarchical, hard, soft"):
        build_network("pyramid")
    with pytest.raises(InputError, match="Unknown task 'mood'"):
        build_network(tasks=("age", "mood"))
    with pytest.raises(InputError, match="at least 32x32"):
        build_network("hierarchical", preset="tiny", image_size=24)
    assert min_image_size("hierarchical", ("age",)) == 8
    assert min_image_size("hard", ("age", "race")) == 16
    assert min_image_size("hierarchical", ("gender", "race")) == 32


def test_soft_sharing_penalty_vanishes_when_encoders_agree():
    model = build_network("soft", preset="tiny", image_size=32, nonlocal_block=True)
    groups = soft_sharing_groups(model, ("age", "gender", "race"))
    roles = {weights[0].path.split("/")[0].split("_", 1)[1] for weights in groups}
    assert {"block1_conv", "block3_bn", "non_local", "branch_conv"} <= roles
    assert float(soft_sharing_penalty(groups)) > 0
    for weights in groups:
        for weight in weights[1:]:
            weight.assign(weights[0])
    assert float(soft_sharing_penalty(groups)) == 0.0


def test_task_losses_match_their_definitions():
    y_true = {"age": np.array([20.0, 40.0], "float32"), "gender": np.array([0.0, 1.0], "float32"),
              "race": np.array([1, 4], "int32")}
    probs = np.array([[0.1, 0.6, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]], "float32")
    y_pred = {"age": np.array([[25.0], [37.0]], "float32"),
              "gender": np.array([[0.2], [0.9]], "float32"), "race": probs}
    age, gender, race = (float(v) for v in losses.task_losses(("age", "gender", "race"),
                                                               y_true, y_pred))
    assert age == pytest.approx(4.0)
    assert gender == pytest.approx(-(np.log(0.8) + np.log(0.9)) / 2, rel=1e-4)
    assert race == pytest.approx(-(np.log(0.6) + np.log(0.2)) / 2, rel=1e-4)
    assert float(losses.weighted_sum([age, gender], [0.1, 2.0])) == pytest.approx(
        0.4 + 2 * gender)


def test_uncertainty_weighting_follows_kendall():
    layer = UncertaintyWeighting(2)
    task_losses = [keras.ops.convert_to_tensor(2.0), keras.ops.convert_to_tensor(3.0)]
    assert float(layer(task_losses)) == pytest.approx(5.0)  # s = 0: plain sum
    layer.log_variances.assign(np.array([np.log(4.0), 0.5], "float32"))
    expected = 2.0 / 4.0 + np.log(4.0) + 3.0 * np.exp(-0.5) + 0.5
    assert float(layer(task_losses)) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(layer.task_weights(), [0.25, np.exp(-0.5)], rtol=1e-5)


def test_trainer_loss_and_config_round_trip():
    network = build_network("soft", tasks=("age", "race"), preset="tiny", image_size=16)
    trainer = MultiTaskTrainer(network, ("age", "race"), loss_weights=[0.5, 2.0], soft_l2=0.01)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1)).astype("uint8")
    targets = {"age": np.array([10, 20, 30, 40], "float32"), "race": np.array([0, 1, 2, 3])}
    predictions = trainer(images)
    expected = (0.5 * float(losses.task_losses(["age"], targets, predictions)[0])
                + 2.0 * float(losses.task_losses(["race"], targets, predictions)[0])
                + 0.01 * float(soft_sharing_penalty(soft_sharing_groups(network, ("age", "race")))))
    total = float(trainer.compute_loss(images, targets, predictions))
    assert total == pytest.approx(expected, rel=1e-5)
    clone = MultiTaskTrainer.from_config(trainer.get_config())
    assert clone.tasks == ["age", "race"] and clone.loss_weights == [0.5, 2.0]
    assert clone.soft_l2 == 0.01 and clone.network.count_params() == network.count_params()
    assert trainer.task_weights() == {"age": 0.5, "race": 2.0}


def test_evaluate_reports_the_per_image_age_mae_with_a_short_last_batch():
    keras.utils.set_random_seed(0)
    network = build_network("hierarchical", tasks=("age", "gender"), preset="tiny",
                            image_size=16, age_mean=30.0, age_std=10.0)
    trainer = MultiTaskTrainer(network, ("age", "gender"))
    trainer.compile(optimizer="adam", run_eagerly=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (10, 16, 16, 1)).astype("uint8")
    # Batches of 4, 4 and 2 with very different ages: an unweighted mean of the batch means
    # differs from the mean over the 10 images.
    targets = {"age": np.array([1, 2, 3, 4, 5, 6, 7, 8, 90, 95], "float32"),
               "gender": rng.integers(0, 2, 10).astype("float32")}
    reported = trainer.evaluate(images, targets, batch_size=4, verbose=0, return_dict=True)
    predicted = np.asarray(network(images.astype("float32"))["age"])[:, 0]
    assert reported["age_mae"] == pytest.approx(np.abs(predicted - targets["age"]).mean(),
                                                rel=1e-4)


def test_count_parameters_splits_trainable():
    model = build_network("hard", preset="tiny", image_size=16)
    counts = count_parameters(model)
    assert counts["total"] == model.count_params()
    batch_norm_stats = sum(2 * layer.gamma.shape[0] for layer in model.layers
                           if isinstance(layer, keras.layers.BatchNormalization))
    assert counts["non_trainable"] == batch_norm_stats


#: Layers of the default network (hierarchical, compact, 48x48 gray, UTKFace's three tasks) as
#: built before tasks became configurable (issue 17): saved models and runs depend on them.
DEFAULT_LAYERS = [
    "image", "rescale", "block1_conv", "block1_bn", "block1_act", "block1_pool", "block2_conv",
    "block2_bn", "block2_act", "block2_pool", "block3_conv", "block3_bn", "block3_act",
    "block3_pool", "gender_branch_conv", "gender_branch_bn", "gender_branch_act",
    "gender_branch_pool", "race_branch_conv", "race_branch_bn", "race_branch_act", "age_flatten",
    "race_branch_pool", "age_dense1", "gender_flatten", "race_flatten", "age_dropout1",
    "gender_dense1", "race_dense1", "age_dense2", "gender_dropout1", "race_dropout1",
    "age_dropout2", "gender_dense2", "race_dense2", "age_standardised", "gender_dropout2",
    "race_dropout2", "age", "gender", "race",
]


def test_the_default_network_keeps_its_layers_and_parameters():
    model = build_network()
    assert [layer.name for layer in model.layers] == DEFAULT_LAYERS
    assert count_parameters(model)["total"] == count_parameters(
        build_network(tasks=("age", "gender", "race")))["total"]
    outputs = model(np.zeros((2, 48, 48, 1), "float32"))
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "age": (2, 1), "gender": (2, 1), "race": (2, 5)}


def spec(name, kind="classification", classes=(), attach=""):
    from maskmtl_cli.tasks import TaskSpec

    return TaskSpec(name, kind, classes, attach)


def test_attach_points_place_each_head_where_asked():
    tasks = (spec("age"), spec("expression", classes=("happy", "neutral", "sad")),
             spec("age_group", classes=("a", "b", "c", "d"), attach="block2"),
             spec("glasses", classes=("no", "yes"), attach="branch:expression"),
             spec("score", "regression"))
    from maskmtl_cli.tasks import UTKFACE_TASKS

    model = build_network(tasks=(UTKFACE_TASKS[0], *tasks[1:]), preset="tiny", image_size=32,
                          regression_stats={"score": (50.0, 10.0)})
    names = {layer.name for layer in model.layers}
    assert {"expression_branch_conv", "glasses_branch_conv"} <= names
    assert "age_group_branch_conv" not in names and "score_branch_conv" not in names
    # glasses' branch reads expression's; age_group's head reads block 2's pooled output.
    glasses_input = model.get_layer("glasses_branch_conv").input
    assert glasses_input.shape[1:] == model.get_layer("expression_branch_pool").output.shape[1:]
    assert model.get_layer("age_group_flatten").input.shape[1:] == \
        model.get_layer("block2_pool").output.shape[1:]
    outputs = model(np.zeros((3, 32, 32, 1), "float32"))
    assert tuple(outputs["expression"].shape) == (3, 3)
    assert tuple(outputs["age_group"].shape) == (3, 4) and tuple(outputs["glasses"].shape) == (3, 2)
    dense = model.get_layer("score_standardised")
    dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
    dense.bias.assign(np.ones((1,), "float32"))
    np.testing.assert_allclose(np.asarray(model(np.zeros((1, 32, 32, 1), "float32"))["score"]),
                               60.0)  # mean + 1 std
    hard = build_network("hard", tasks=(UTKFACE_TASKS[0], *tasks[1:]), preset="tiny",
                         image_size=16)  # hard sharing: every branch on the encoder
    assert hard.get_layer("glasses_branch_conv").input.shape[1:] == \
        hard.get_layer("block3_pool").output.shape[1:]
    assert min_image_size("hierarchical", tasks[1:4]) == 32
    with pytest.raises(InputError, match="has no classes yet"):
        build_network(tasks=(spec("mood"),), preset="tiny", image_size=32)
    with pytest.raises(InputError, match="needs a shared encoder"):
        build_network("soft", tasks=tasks[2:3], preset="tiny", image_size=32)


def test_masked_losses_leave_missing_labels_out():
    from maskmtl_cli.tasks import UTKFACE_TASKS

    expression = spec("expression", classes=("a", "b", "c"))
    y_true = {"age": np.array([20.0, np.nan, 40.0], "float32"),
              "gender": np.array([1.0, 0.0, -1.0], "float32"),
              "expression": np.array([2, -1, -1], "int32"),
              "score": np.array([np.nan, 10.0, 30.0], "float32")}
    probs = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], "float32")
    y_pred = {"age": np.array([[25.0], [99.0], [37.0]], "float32"),
              "gender": np.array([[0.8], [0.4], [0.5]], "float32"), "expression": probs,
              "score": np.array([[0.0], [14.0], [26.0]], "float32")}
    tasks = (UTKFACE_TASKS[0], UTKFACE_TASKS[1], expression, spec("score", "regression"))
    age, gender, expression_loss, score = (
        float(v) for v in losses.task_losses(
            tasks, y_true, y_pred, losses.LossSpec(regression_scales=(("score", 2.0),))))
    assert age == pytest.approx(4.0)  # (5 + 3) / 2: the unknown age is left out
    assert gender == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2, rel=1e-4)
    assert expression_loss == pytest.approx(-np.log(0.5), rel=1e-4)  # one labelled face
    assert score == pytest.approx((4 / 2 + 4 / 2) / 2)  # L1 / std of the training labels
    nothing = {"expression": np.array([-1, -1, -1], "int32")}
    assert float(losses.task_losses([expression], nothing, y_pred)[0]) == 0.0


def test_trainer_with_segmentation_and_other_tasks_round_trips(tmp_path):
    from maskmtl_cli.tasks import UTKFACE_TASKS

    keras.utils.set_random_seed(0)
    tasks = (UTKFACE_TASKS[1], spec("expression", classes=("a", "b", "c")),
             spec("score", "regression"))
    network = build_network(tasks=tasks, preset="tiny", image_size=32, segmentation=True)
    trainer = MultiTaskTrainer(network, [task.to_dict() for task in tasks],
                               loss_weights=[1.0, 1.0, 1.0, 2.0], segmentation=True,
                               regression_scales={"score": 3.0}, augment=True)
    trainer.compile(optimizer="adam", run_eagerly=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 1)).astype("uint8")
    masks = np.zeros((8, 32, 32, 1), "uint8")
    masks[:, 16:] = 255
    targets = {"gender": rng.integers(0, 2, 8).astype("float32"),
               "expression": np.array([0, 1, 2, -1, 0, 1, 2, -1], "int32"),
               "score": rng.normal(0, 3, 8).astype("float32"),
               "segmentation": np.array([1, 1, 1, 1, 1, 1, 0, 0], "float32")}
    history = trainer.fit(np.concatenate([images, masks], axis=-1), targets, batch_size=4,
                          epochs=1, verbose=0)
    assert {"expression_acc", "score_mae", "segmentation_iou", "segmentation_loss"} <= \
        set(history.history)
    assert trainer.task_weights() == {"gender": 1.0, "expression": 1.0, "score": 1.0,
                                      "segmentation": 2.0}
    trainer.save(tmp_path / "last.keras")
    again = keras.saving.load_model(tmp_path / "last.keras")
    assert again.segmentation and again.regression_scales == {"score": 3.0}
    assert [task.classes for task in again.task_specs] == [task.classes for task in tasks]
    stacked = np.concatenate([images, masks], axis=-1).astype("float32")
    np.testing.assert_allclose(np.asarray(again(stacked)["segmentation"]),
                               np.asarray(trainer(stacked)["segmentation"]), rtol=1e-5)

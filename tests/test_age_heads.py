"""Age heads (l1, log-l1, ldl), their losses, logit adjustment and the collapse metric."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from maskmtl_cli.evaluation.metrics import collapse_summary, is_collapsed
from maskmtl_cli.models import MultiTaskTrainer, build_network
from maskmtl_cli.models import losses
from maskmtl_cli.models.age_layers import AGE_BINS, AGE_DISTRIBUTION, ExpectedAge, LogAgeDecoder


def test_expected_age_is_the_mean_of_the_distribution():
    distribution = np.zeros((3, AGE_BINS), "float32")
    distribution[0, 10] = 1.0
    distribution[1, [20, 40]] = 0.5
    distribution[2] = 1.0 / AGE_BINS
    ages = np.asarray(ExpectedAge()(distribution))
    np.testing.assert_allclose(ages[:, 0], [10.0, 30.0, (AGE_BINS - 1) / 2], rtol=1e-6)


def test_log_age_decoder_inverts_the_standardised_log_age():
    decoder = LogAgeDecoder(mean=3.0, std=0.5)
    ages = np.array([1.0, 4.0, 30.0, 90.0])
    z = ((np.log1p(ages) - 3.0) / 0.5).reshape(-1, 1).astype("float32")
    np.testing.assert_allclose(np.asarray(decoder(z))[:, 0], ages, rtol=1e-4)
    clone = LogAgeDecoder.from_config(decoder.get_config())
    assert (clone.mean, clone.std) == (3.0, 0.5)


def test_target_distribution_is_a_normalised_gaussian_around_the_age():
    target = np.asarray(losses.age_target_distribution(np.array([25.0, 0.0]), sigma=2.5))
    assert target.shape == (2, AGE_BINS)
    np.testing.assert_allclose(target.sum(axis=1), 1.0, rtol=1e-5)
    assert target[0].argmax() == 25 and target[1].argmax() == 0
    np.testing.assert_allclose((target[0] * np.arange(AGE_BINS)).sum(), 25.0, atol=1e-3)


def test_ldl_loss_is_smallest_for_the_true_distribution():
    y = np.array([30.0], "float32")
    exact = losses.age_target_distribution(y, 2.5)
    wrong = losses.age_target_distribution(np.array([35.0], "float32"), 2.5)
    exact_age = np.array([[30.0]], "float32")
    wrong_age = np.array([[35.0]], "float32")
    best = float(np.asarray(losses.age_ldl_loss(y, exact, exact_age, 2.5))[0])
    worse = float(np.asarray(losses.age_ldl_loss(y, wrong, wrong_age, 2.5))[0])
    assert best == pytest.approx(0.0, abs=1e-4)
    # KL of two Gaussians 5 years apart (sigma 2.5) is 5^2 / (2 * 2.5^2) = 2, plus 0.05 * 5.
    assert worse == pytest.approx(2.0 + losses.LDL_L1_WEIGHT * 5.0, rel=0.02)


def test_logit_adjustment_raises_the_loss_of_rare_classes():
    prior = np.log(np.array([0.45, 0.2, 0.15, 0.15, 0.05], "float32"))
    uniform = np.full((2, 5), 0.2, "float32")
    labels = np.array([0, 4])
    plain = np.asarray(losses.race_loss(labels, uniform))
    adjusted = np.asarray(losses.adjusted_race_loss(labels, uniform, prior))
    np.testing.assert_allclose(plain, np.log(5.0), rtol=1e-5)
    # With the prior added, a uniform prediction already favours class 0, so class 4 costs more.
    assert adjusted[0] < plain[0] and plain[1] < adjusted[1]
    np.testing.assert_allclose(adjusted[1], -np.log(0.05), rtol=1e-3)


@pytest.mark.parametrize("age_loss", ["l1", "log-l1", "ldl"])
@pytest.mark.parametrize("preset", ["tiny", "compact-gap"])
def test_every_age_head_trains_a_step_and_predicts_years(age_loss, preset):
    keras.utils.set_random_seed(0)
    network = build_network("hierarchical", preset=preset, image_size=32, color_mode="rgb",
                            age_loss=age_loss, age_mean=3.3 if age_loss == "log-l1" else 30.0,
                            age_std=0.8 if age_loss == "log-l1" else 15.0)
    assert (AGE_DISTRIBUTION in network.output_names) == (age_loss == "ldl")
    trainer = MultiTaskTrainer(network, ("age", "gender", "race"), age_loss=age_loss,
                               race_log_prior=np.log(np.full(5, 0.2)).tolist(), augment=True)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    targets = {"age": rng.uniform(1, 90, 8).astype("float32"),
               "gender": rng.integers(0, 2, 8).astype("float32"),
               "race": rng.integers(0, 5, 8).astype("int32")}
    history = trainer.fit(images, targets, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and history.history["age_mae"][0] > 0
    ages = np.asarray(network.predict_on_batch(images.astype("float32"))["age"])
    assert ages.shape == (8, 1) and (ages >= 0).all() and (ages <= 120).all()
    clone = MultiTaskTrainer.from_config(trainer.get_config())
    assert clone.age_loss == age_loss and clone.augment and clone.race_log_prior is not None


def test_collapse_summary_finds_a_constant_head_and_spares_confident_classes():
    rng = np.random.default_rng(0)
    healthy = rng.uniform(1, 90, 1000)
    assert collapse_summary("age", healthy)["share"] <= 0.005  # chance ties to 0.01 years
    collapsed = healthy.copy()
    collapsed[:170] = 26.5
    summary = collapse_summary("age", collapsed)
    assert summary["value"] == 26.5 and summary["share"] == pytest.approx(0.17)
    assert is_collapsed(summary) and not is_collapsed(collapse_summary("age", healthy))
    # Saturated probabilities (a confident model) coincide without being a collapse.
    confident = np.where(rng.random(1000) < 0.5, 1.0, 0.0)
    assert collapse_summary("gender", confident)["share"] == 0.0
    constant = np.full((100, 5), 0.2)
    assert collapse_summary("race", constant)["share"] == 1.0
    assert collapse_summary("gender", np.array([]))["n"] == 0


def test_age_balance_weights_favour_rare_ages_and_average_one():
    from maskmtl_cli.training.data import age_balance_weights

    rng = np.random.default_rng(0)
    ages = np.concatenate([rng.normal(28, 5, 900), rng.uniform(70, 90, 50)]).clip(0, 116)
    weights = np.array(age_balance_weights(ages))
    assert weights.shape == (AGE_BINS,)
    rounded = np.round(ages).astype(int)
    assert weights[rounded].mean() == pytest.approx(1.0)
    assert weights[80] > 2 * weights[28]
    assert weights.max() <= 10 * weights.min() + 1e-9
    # In the loss, each sample takes the weight of its rounded true age, in training only.
    spec = losses.LossSpec(age_bin_weights=tuple(weights))
    y = {"age": np.array([28.0, 80.0], "float32")}
    pred = {"age": np.array([[30.0], [70.0]], "float32")}
    trained = float(np.asarray(losses.task_losses(("age",), y, pred, spec)[0]))
    plain = float(np.asarray(losses.task_losses(("age",), y, pred, spec, training=False)[0]))
    assert plain == pytest.approx(6.0)
    assert trained == pytest.approx((2 * weights[28] + 10 * weights[80]) / 2, rel=1e-5)


def test_a_run_saved_before_the_new_settings_resumes_as_it_trained(tmp_path):
    import json

    from maskmtl_cli.training.config import LEGACY_SETTINGS, TrainConfig

    old = TrainConfig().to_dict()
    for key in LEGACY_SETTINGS:
        old.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = TrainConfig.load(tmp_path / "config.json")
    assert (loaded.age_loss, loaded.race_balance, loaded.age_reweight, loaded.weight_decay) == (
        "l1", "none", "none", 0.0)

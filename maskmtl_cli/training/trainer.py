"""The compiled ``MultiTaskTrainer`` of a run: built for a new run, reloaded to resume one."""

from __future__ import annotations

import math
from pathlib import Path

from maskmtl_cli.training import run_folder
from maskmtl_cli.training.config import TrainConfig


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int):
    """A float, or a cosine decay to 0 over all training steps."""
    import keras

    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            cfg.lr, decay_steps=max(1, cfg.epochs * steps_per_epoch)
        )
    return cfg.lr


def new_trainer(cfg: TrainConfig, data, steps_per_epoch: int, jit: bool):
    """Build the network and its compiled ``MultiTaskTrainer``."""
    import keras

    from maskmtl_cli.models import MultiTaskTrainer, build_network

    log_space = cfg.age_loss == "log-l1"
    network = build_network(
        arch=cfg.arch,
        tasks=cfg.tasks,
        preset=cfg.preset,
        image_size=cfg.image_size,
        color_mode=cfg.color_mode,
        nonlocal_block=cfg.nonlocal_block,
        age_loss=cfg.age_loss,
        age_mean=data.age_log_mean if log_space else data.age_mean,
        age_std=data.age_log_std if log_space else data.age_std,
        segmentation=cfg.segmentation,
        regression_stats=data.regression_stats,
    )
    race_log_prior = None
    if cfg.race_balance == "logit-adjust" and "race" in cfg.task_names:
        race_log_prior = [cfg.race_tau * math.log(share) for share in data.race_prior]
    age_bin_weights = None
    if cfg.age_reweight == "sqrt-inv" and "age" in cfg.task_names:
        from maskmtl_cli.training.data import age_balance_weights

        age_bin_weights = age_balance_weights(data.train_targets["age"])
    trainer = MultiTaskTrainer(
        network,
        [spec.to_dict() for spec in cfg.tasks],
        loss_weights=cfg.task_loss_weights(),
        uncertainty_weighting=cfg.uncertainty_weighting,
        soft_l2=cfg.soft_l2_strength,
        age_loss=cfg.age_loss,
        age_sigma=cfg.age_sigma,
        race_log_prior=race_log_prior,
        age_bin_weights=age_bin_weights,
        augment=cfg.augment,
        seed=cfg.seed,
        align_rotation=cfg.align_rotation,
        align_scale=cfg.align_scale,
        regression_scales={name: std for name, (_, std) in data.regression_stats.items()},
        segmentation=cfg.segmentation,
        name="trainer",
    )
    schedule = lr_schedule(cfg, steps_per_epoch)
    optimizer = (keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
                 if cfg.weight_decay > 0 else keras.optimizers.Adam(schedule))
    trainer.compile(
        optimizer=optimizer,
        jit_compile=jit and not cfg.run_eagerly,
        steps_per_execution=cfg.steps_per_execution,
        run_eagerly=cfg.run_eagerly,
    )
    return trainer


def resume_trainer(run_dir: Path, cfg: TrainConfig, steps_per_epoch: int, jit: bool):
    """Reload ``last.keras`` (network, loss weights, optimizer state) to continue a run."""
    import keras

    import maskmtl_cli.models  # noqa: F401  (registers the custom classes)
    from maskmtl_cli.errors import ModelError

    path = run_dir / run_folder.LAST_FILE
    try:
        trainer = keras.saving.load_model(path)
    except Exception as error:  # Corrupt or foreign files raise many types.
        raise ModelError(f"Cannot resume from '{path}': {error}. Start a new run.") from None
    trainer.run_eagerly = cfg.run_eagerly
    trainer.jit_compile = jit and not cfg.run_eagerly
    if cfg.lr_schedule == "cosine":  # --epochs may have been raised: stretch the decay.
        trainer.optimizer.learning_rate = lr_schedule(cfg, steps_per_epoch)
    return trainer



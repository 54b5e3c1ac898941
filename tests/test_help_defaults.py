"""Every default `--help` shows is the config's own, and every option shows its default.

The configs (``TrainConfig``, ``MaskConfig``, ``SplitConfig``, ``EvalConfig``,
``PredictConfig``, ``ServeConfig``) are the one home of the defaults; the help reads them. This
test builds each command's config defaults and compares them to what the help states, from the
Click parameters and from the rendered help (where unescaped ``[default: ...]`` markup would
vanish).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.data.split_config import SplitConfig
from maskmtl_cli.evaluation.config import EvalConfig
from maskmtl_cli.masking.config import DEFAULT_VARIANTS, MaskConfig
from maskmtl_cli.prediction.config import PredictConfig
from maskmtl_cli.serve.config import ServeConfig
from maskmtl_cli.training.config import DEFAULT_AGE_WEIGHT, DEFAULT_SOFT_L2, TrainConfig
from maskmtl_cli.unmasking.config import UnmaskConfig, UnmaskTrainConfig

_DEFAULT = re.compile(r"\[default: ([^\]]*)\]")


def _params(command: str) -> dict:
    return {param.name: param for param in typer.main.get_command(app).commands[command].params}


def _switch(param, on: bool) -> str:
    """How a --NAME/--no-NAME switch is named in the help: the option that is on."""
    return (param.opts if on else param.secondary_opts)[0].lstrip("-")


def shown_default(param) -> str | None:
    """The default the help states for ``param``, or None when it states none."""
    help_text = (param.help or "").replace("\\[", "[")
    found = _DEFAULT.search(help_text)
    if found:
        return found.group(1)
    if param.show_default is False or param.default is None:
        return None
    if getattr(param, "is_flag", False):
        return _switch(param, param.default) if param.secondary_opts else None
    return str(getattr(param.default, "value", param.default))


def _g(value) -> str:
    return f"{value:g}"


def _fields(config_class) -> dict:
    return {field.name: field.default for field in dataclasses.fields(config_class)}


def _train_expected() -> dict[str, str]:
    config = TrainConfig()
    params = _params("train")
    return {
        "manifest": config.manifest, "arch": config.arch,
        "nonlocal_block": _switch(params["nonlocal_block"], config.nonlocal_block),
        "tasks": ",".join(config.task_names),
        "segmentation": _switch(params["segmentation"], config.segmentation),
        "preset": config.preset, "image_size": str(config.image_size),
        "color": config.color_mode, "batch_size": str(config.batch_size),
        "epochs": str(config.epochs), "lr": _g(config.lr), "lr_schedule": config.lr_schedule,
        "early_stopping": str(config.early_stopping),
        "augment": _switch(params["augment"], config.augment),
        "face_mix": ",".join(f"{kind}={_g(share)}" for kind, share in config.face_mix.items()),
        "photometric": _g(config.photometric), "align_rotation": _g(config.align_rotation),
        "align_scale": _g(config.align_scale),
        "mask_task": _switch(params["mask_task"], config.mask_task),
        "age_loss": config.age_loss, "age_sigma": _g(config.age_sigma),
        "race_balance": config.race_balance, "race_tau": _g(config.race_tau),
        "age_reweight": config.age_reweight, "weight_decay": _g(config.weight_decay),
        "uncertainty_weighting": _switch(params["uncertainty_weighting"],
                                         config.uncertainty_weighting),
        "soft_l2": _g(DEFAULT_SOFT_L2), "missing_labels": config.missing_labels,
        "seed": str(config.seed), "steps_per_execution": str(config.steps_per_execution),
        "devices": str(config.devices), "project": config.project,
        "progress": "progress",
    }


def _mask_expected() -> dict[str, str]:
    defaults = _fields(MaskConfig)
    return {**{name: str(defaults[name]) for name in
               ("mask_type", "seed", "detector", "faces", "on_fail", "preview", "jpeg_quality")},
            "variants": str(DEFAULT_VARIANTS)}


def _split_expected() -> dict[str, str]:
    config = SplitConfig(data_dir=Path())
    params = _params("split")
    return {"output": str(config.output), "strategy": config.strategy,
            "ratios": ",".join(_g(share) for share in config.ratios), "seed": str(config.seed),
            **{name: _switch(params[name], getattr(config, name))
               for name in ("keep_duplicates", "keep_conflicts", "overwrite")}}


def _eval_expected() -> dict[str, str]:
    config = EvalConfig()
    return {"split": config.split, "batch_size": str(config.batch_size),
            "engine": config.engine, "bootstrap": str(config.metrics.bootstrap),
            "seed": str(config.metrics.seed), "min_group": str(config.metrics.min_group_size)}


def _predict_expected() -> dict[str, str]:
    config = PredictConfig(inputs=())
    return {"detector": config.detector, "faces": config.faces,
            "min_face": str(config.min_face), "batch_size": str(config.batch_size),
            "engine": config.engine, "every": str(config.every),
            "video_min_face": str(config.video_min_face)}


def _serve_expected() -> dict[str, str]:
    config = ServeConfig()
    return {"host": config.host, "port": str(config.port),
            "max_upload_mb": _g(config.max_upload_mb),
            "max_megapixels": _g(config.max_megapixels)}


def _unmask_expected() -> dict[str, str]:
    config = UnmaskConfig(inputs=(), out_dir=Path())
    return {"detector": config.detector, "min_face": str(config.min_face),
            "faces": config.faces}


def _train_unmask_expected() -> dict[str, str]:
    config = UnmaskTrainConfig(manifest=Path())
    return {"project": str(config.project), "epochs": str(config.epochs),
            "batch_size": str(config.batch_size), "image_size": str(config.image_size),
            "width": str(config.width), "learning_rate": str(config.learning_rate),
            "hole_weight": str(config.hole_weight), "bare_share": str(config.bare_share),
            "perceptual_weight": str(config.perceptual_weight), "seed": str(config.seed)}


EXPECTED = {"unmask": _unmask_expected, "train-unmask": _train_unmask_expected,
            "train": _train_expected, "mask": _mask_expected, "split": _split_expected,
            "eval": _eval_expected, "predict": _predict_expected, "serve": _serve_expected}

#: Options without a config default: inputs, outputs and switches that are off unless given,
#: and values decided at run time, which the help explains in words instead.
NO_DEFAULT = {
    "train": {"task_spec", "resume", "eager", "json_output", "drop_missing"},
    "mask": {"input_dir", "output_dir", "aligned", "save_masks", "overwrite", "as_json",
             "limit", "ray"},
    "split": {"data_dir", "labels", "parts", "json_output"},
    "eval": {"report", "json_output", "flip", "detect", "compare"},
    "predict": {"inputs", "aligned", "as_json", "as_csv", "annotate", "cam", "masks", "flip",
                "strict", "camera", "tracks"},
    "serve": set(),
    "unmask": {"paths", "model", "aligned", "side_by_side", "crops", "overwrite",
               "json_output"},
    "train-unmask": {"manifest", "name", "limit", "resume"},
}


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_help_defaults_are_the_configs(command):
    params = _params(command)
    shown = {name: shown_default(param) for name, param in params.items()}
    expected = EXPECTED[command]()
    assert {name: shown[name] for name in expected} == expected


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_every_option_states_its_default(command):
    """A default is shown as ``[default: ...]`` or said in the help text ("default: ...")."""
    unstated = [name for name, param in _params(command).items()
                if shown_default(param) is None and name not in NO_DEFAULT[command]
                and "default" not in (param.help or "").lower()]
    assert unstated == []


def test_cli_defaults_match_the_config_fields():
    """Where a command's option and its config share a name, they share the default."""
    pairs = {"mask": MaskConfig, "predict": PredictConfig, "split": SplitConfig,
             "unmask": UnmaskConfig, "train-unmask": UnmaskTrainConfig}
    for command, config_class in pairs.items():
        fields = _fields(config_class)
        for name, param in _params(command).items():
            if name in fields and fields[name] is not dataclasses.MISSING:
                default = getattr(param.default, "value", param.default)
                if name == "ratios":
                    default = tuple(float(share) for share in default.split(","))
                assert default == fields[name], (command, name)


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_rendered_help_shows_the_defaults(command):
    """Rich markup must not eat a ``[default: ...]`` (an unescaped one vanishes)."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    text = " ".join(line.strip(" │┃|") for line in result.output.splitlines())
    text = re.sub(r"\s+", " ", text)
    for name, value in EXPECTED[command]().items():
        param = _params(command)[name]
        if shown_default(param) is not None:
            assert f"[default: {value}]" in text, (command, name)


def test_loss_weight_default_names_the_age_loss():
    config = TrainConfig()
    help_text = _params("train")["loss_weights"].help.replace("\\[", "[")
    assert f"age={DEFAULT_AGE_WEIGHT[config.age_loss]:g} with --age-loss {config.age_loss}" \
        in help_text

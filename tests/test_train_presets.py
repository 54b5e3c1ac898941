"""`train --preset`: a preset brings the options its meaning depends on, unless they are given.

`--preset notebook` is the released notebook's network (13,225,767 parameters) only at 48x48
gray, without the non-local block and with the single-unit L1 age head; today's defaults (RGB,
ldl, non-local) would build another network. The training loop is replaced by a stand-in that
records the config, so these tests build networks but train nothing.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from maskmtl_cli.cli import app
from maskmtl_cli.schema import PRESET_NAMES, PRESET_SETTINGS
from maskmtl_cli.training.config import TrainConfig

runner = CliRunner()


@pytest.fixture()
def configs(monkeypatch):
    """The TrainConfig of each `maskmtl train` call, which then stops before training."""
    seen: list[TrainConfig] = []

    def record(config, **_):
        seen.append(config)
        return SimpleNamespace(summary={"run_dir": "runs/train"})

    monkeypatch.setattr("maskmtl_cli.training.loop.train", record)
    return seen


def train(*args: str):
    result = runner.invoke(app, ["train", "manifest.csv", "--json", *args])
    assert result.exit_code == 0, result.output
    return result


def parameters(config: TrainConfig) -> int:
    from maskmtl_cli.models import build_network, count_parameters

    network = build_network(arch=config.arch, tasks=config.tasks, preset=config.preset,
                            image_size=config.image_size, color_mode=config.color_mode,
                            nonlocal_block=config.nonlocal_block, age_loss=config.age_loss,
                            segmentation=config.segmentation)
    return count_parameters(network)["total"]


def test_notebook_preset_builds_the_released_network_and_says_what_it_set(configs):
    result = train("--preset", "notebook")
    config = configs[0]
    assert (config.image_size, config.color_mode, config.nonlocal_block, config.age_loss,
            config.arch, config.segmentation) == (48, "gray", False, "l1", "hierarchical", False)
    assert [spec.name for spec in config.tasks] == ["age", "gender", "race"]
    assert parameters(config) == 13_225_767
    assert ("Preset notebook sets --arch hierarchical --tasks age,gender,race --image-size 48 "
            "--color gray --no-nonlocal --age-loss l1 --no-segmentation") in result.stderr
    assert json.loads(result.stdout) == {"run_dir": "runs/train"}


def test_options_given_explicitly_win_over_the_preset(configs):
    result = train("--preset", "notebook", "--color", "rgb", "--nonlocal")
    config = configs[0]
    assert (config.color_mode, config.nonlocal_block) == ("rgb", True)
    assert (config.image_size, config.age_loss) == (48, "l1")
    assert "--color" not in result.stderr and "nonlocal" not in result.stderr
    assert "--image-size 48" in result.stderr
    assert parameters(config) != 13_225_767


def test_presets_without_settings_keep_the_defaults(configs):
    for preset in ("compact", "tiny"):
        result = train("--preset", preset)
        assert configs[-1] == TrainConfig(manifest="manifest.csv", preset=preset)
        assert "Preset" not in result.stderr
    train()
    assert configs[-1] == TrainConfig(manifest="manifest.csv")


def test_help_says_what_each_preset_sets():
    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).stdout
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())
    assert ("notebook sets --arch hierarchical --tasks age,gender,race --image-size 48 --color "
            "gray --no-nonlocal --age-loss l1 --no-segmentation unless given") in words
    for preset, settings in PRESET_SETTINGS.items():
        assert preset in PRESET_NAMES
        assert set(settings) <= set(TrainConfig.__dataclass_fields__)

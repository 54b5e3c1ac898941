"""The task schema (``maskmtl_cli.tasks``) and task labels from manifest columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from maskmtl_cli.data.task_labels import class_key, resolve_classes, task_targets
from maskmtl_cli.errors import DataError, InputError
from maskmtl_cli.tasks import (
    GENDER_NAMES,
    RACE_NAMES,
    UTKFACE_TASKS,
    TaskSpec,
    check_task_graph,
    parse_task_list,
    pooling_depth,
    read_task_spec,
    resolve_tasks,
    specs_from_json,
    specs_to_json,
)
from maskmtl_cli.training.config import TrainConfig


def test_utkface_defaults_keep_their_names_outputs_and_places():
    age, gender, race = UTKFACE_TASKS
    assert (age.kind, age.attach, age.output_width) == ("regression", "encoder", 1)
    assert gender.classes == GENDER_NAMES and gender.output_width == 1  # one sigmoid
    assert race.classes == RACE_NAMES and race.attach == "branch:gender"
    assert race.output_width == 5
    assert [pooling_depth(spec, UTKFACE_TASKS, "hierarchical") for spec in UTKFACE_TASKS] == \
        [3, 4, 5]
    assert [pooling_depth(spec, UTKFACE_TASKS, "hard") for spec in UTKFACE_TASKS] == [3, 4, 4]


def test_task_list_parsing_orders_and_types_tasks():
    specs = parse_task_list("expression, race,score:regression,age")
    assert [spec.name for spec in specs] == ["age", "race", "expression", "score"]
    assert specs[2] == TaskSpec("expression", "classification", attach="branch")
    assert specs[3].kind == "regression" and specs[3].attach == "encoder"
    for text, message in (("", "--tasks is empty"), ("age,age", "named twice"),
                          ("gender:regression", "UTKFace's classification task"),
                          ("mood:ordinal", "unknown kind"), ("2fast", "must start with"),
                          ("path", "cannot be a task")):
        with pytest.raises(InputError, match=message):
            parse_task_list(text)


def test_task_spec_files_in_yaml_and_json(tmp_path):
    yaml_file = tmp_path / "tasks.yaml"
    yaml_file.write_text("expression:\n  classes: [happy, neutral, unhappy]\n"
                         "race: {attach: branch, weight: 2}\nscore: {kind: regression}\n")
    specs = read_task_spec(yaml_file)
    assert [spec.name for spec in specs] == ["race", "expression", "score"]
    assert specs[0].attach == "branch" and specs[0].weight == 2.0
    assert specs[0].classes == RACE_NAMES
    json_file = tmp_path / "tasks.json"
    json_file.write_text(json.dumps({"glasses": {"attach": "block1"}}))
    assert read_task_spec(json_file)[0].attach == "block1"
    # --tasks picks from the file; tasks it does not describe get their defaults.
    chosen = resolve_tasks("age,expression", yaml_file)
    assert [spec.name for spec in chosen] == ["age", "expression"]
    assert chosen[1].classes == ("happy", "neutral", "unhappy")
    assert resolve_tasks(None, None) == UTKFACE_TASKS
    for text, message in (("expression: {colour: red}", "unknown setting"),
                          ("race: {classes: [a, b]}", "only its attach and weight"),
                          ("expression: {attach: sideways}", "unknown attach point"),
                          ("[a, b]", "must map task names"), ("a: [", "Cannot read")):
        yaml_file.write_text(text)
        with pytest.raises(InputError, match=message):
            read_task_spec(yaml_file)
    with pytest.raises(InputError, match="not found"):
        read_task_spec(tmp_path / "missing.yaml")


def test_attach_graph_checks_and_json_round_trip():
    specs = (TaskSpec("a", "classification", ("x", "y"), "branch:b"),
             TaskSpec("b", "classification", ("x", "y"), "branch:a"))
    with pytest.raises(InputError, match="loop"):
        check_task_graph(specs, "hierarchical")
    with pytest.raises(InputError, match="is not a task"):
        check_task_graph((TaskSpec("a", "regression", attach="branch:zzz"),), "hard")
    check_task_graph((TaskSpec("a", "regression", attach="branch:gender"),), "hierarchical")
    chained = (TaskSpec("a", "regression", attach="branch:race"),)
    assert pooling_depth(chained[0], chained, "hierarchical") == 6  # gender, race, then a's
    text = specs_to_json(UTKFACE_TASKS + specs[:1], segmentation=True)
    assert specs_from_json(text) == (UTKFACE_TASKS + specs[:1], True)


def test_train_config_keeps_names_on_disk_and_specs_in_memory(tmp_path):
    config = TrainConfig(tasks="age,expression,score:regression", segmentation=True,
                         loss_weights="score=0.5", age_loss="l1")
    assert config.task_names == ("age", "expression", "score")
    assert config.task_loss_weights() == [0.1, 1.0, 0.5, 1.0]  # then segmentation's
    config.save(tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["tasks"] == ["age", "expression", "score"] and saved["segmentation"]
    assert TrainConfig.load(tmp_path / "config.json") == config
    old = {"tasks": ["age", "gender"], "drop_missing": True}  # a run before issue 17
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = TrainConfig.load(tmp_path / "old.json")
    assert loaded.task_names == ("age", "gender") and loaded.missing_labels == "drop"
    with pytest.raises(InputError, match="Unknown task 'mood' in --loss-weights"):
        TrainConfig(loss_weights="mood=1")


def test_classes_come_from_the_labels_and_labels_become_indices():
    table = pd.DataFrame({"expression": ["happy", None, "sad", "happy"],
                          "glasses": [1.0, 0.0, np.nan, 1.0], "score": ["1.5", "", "x", "2"],
                          "gender": pd.array([0, 1, None, 1], dtype="Int64")})
    specs = resolve_classes(table, (TaskSpec("expression", "classification"),
                                    TaskSpec("glasses", "classification"), UTKFACE_TASKS[1]))
    assert specs[0].classes == ("happy", "sad") and specs[1].classes == ("0", "1")
    np.testing.assert_array_equal(task_targets(table, specs[0]), [0, -1, 1, 0])
    np.testing.assert_array_equal(task_targets(table, specs[1]), [1, 0, -1, 1])
    np.testing.assert_array_equal(task_targets(table, specs[2]), [0, 1, -1, 1])
    assert class_key(2.0) == "2" and class_key(" a ") == "a" and class_key(np.nan) is None
    with pytest.raises(DataError, match="is not a number"):
        task_targets(table, TaskSpec("score", "regression"))
    numbers = pd.DataFrame({"score": [1.5, 2.25, 3.0]})
    with pytest.raises(DataError, match="score:regression"):
        resolve_classes(numbers, (TaskSpec("score", "classification"),))
    with pytest.raises(DataError, match="not among its classes"):
        resolve_classes(table, (TaskSpec("expression", "classification", ("happy", "meh")),))
    with pytest.raises(DataError, match="not among the model's classes"):
        task_targets(table, TaskSpec("expression", "classification", ("happy", "meh")))

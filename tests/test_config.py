"""ExperimentConfig: round trip, the documented paths, and errors that name the field."""
import json

import pytest

from explorer.config.schema import ConfigError, ExperimentConfig, config_json, json_schema, parse_config


def test_round_trip_is_lossless():
    cfg = ExperimentConfig.model_validate({
        "seed": 7, "device": "cpu", "data": {"name": "moons", "noise": 0.3},
        "model": {"arch": "mlp", "hidden": [16, 8]},
        "train": {"epochs": 4, "batch_size": 32, "lr": 0.01, "optimizer": "sgd"},
        "weight_pruning": {"scope": "layer", "sparsity": {"fc1": 0.5, "fc3": 0.1}},
    })
    assert ExperimentConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert parse_config(config_json(cfg)) == cfg


def test_documented_paths_exist():
    d = json.loads(ExperimentConfig().model_dump_json())
    assert d["version"] == 2
    for path in ["seed", "device", "data.name", "model.arch", "model.hidden", "train.epochs", "train.batch_size",
                 "train.lr", "train.optimizer", "weight_pruning.scope", "weight_pruning.sparsity",
                 "weight_pruning.threshold"]:
        node = d
        for part in path.split("."):
            assert part in node, path
            node = node[part]


@pytest.mark.parametrize("raw, field", [
    ({"train": {"lr": -1}}, "train.lr"),
    ({"train": {"epochs": "many"}}, "train.epochs"),
    ({"train": {"optimizer": "rmsprop"}}, "train.optimizer"),
    ({"data": {"name": "cifar10"}}, "data.name"),
    ({"model": {"arch": "resnet"}}, "model.arch"),
    ({"model": {"arch": "lenet300100", "hidden": [10]}}, "model"),
    ({"model": {"arch": "cnn"}, "data": {"name": "spirals"}}, "model.arch"),
    ({"weight_pruning": {"sparsity": 2}}, "weight_pruning"),
    ({"weight_pruning": {"sparsity": {}}}, "weight_pruning"),
    ({"weight_pruning": {"sparsity": "half"}}, "weight_pruning.sparsity"),
    ({"weight_pruning": {"threshold": -0.1}}, "weight_pruning"),
    ({"weight_pruning": {"sparsity": 0.1, "threshold": 0.1}}, "weight_pruning"),
    ({"weight_pruning": {"scope": "global", "sparsity": {"fc1": 0.2}}}, "weight_pruning"),
    ({"weight_pruning": {"sparsity": {"conv1": 0.2}}}, "weight_pruning.sparsity"),  # a config for another model
    ({"train": {"epochs": 2, "colour": "red"}}, "train.colour"),
    ({"surprise": 1}, "surprise"),
    ({"version": 3}, "version"),
    ({"version": 0}, "version"),
])
def test_bad_values_name_the_field(raw, field):
    with pytest.raises(ConfigError) as err:
        parse_config(json.dumps(raw))
    assert str(err.value).startswith(field), str(err.value)
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize("text, words", [
    ("{", "not valid JSON"), ("[]", "JSON object"), (b"\xff\xfe\x00", "UTF-8"), ("", "not valid JSON"),
])
def test_malformed_files(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_config(text)


def test_per_layer_keys_checked_against_the_model():
    assert parse_config(json.dumps({"model": {"arch": "cnn"}, "weight_pruning": {"threshold": {"conv2": 0.1}}}))
    cfg = parse_config(json.dumps({"model": {"arch": "mlp", "hidden": [8, 8, 8]},
                                   "weight_pruning": {"sparsity": {"fc4": 0.3}}}))
    assert cfg.weight_pruning.sparsity == {"fc4": 0.3}


def test_schema_is_json_schema_with_the_sections():
    schema = json_schema()
    assert {"data", "model", "train", "weight_pruning"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_published_schema_file_is_in_sync():
    """explorer/config/schema.json is what `python -m explorer schema` prints; regenerate it with that command."""
    from helpers import ROOT
    published = json.loads((ROOT / "explorer" / "config" / "schema.json").read_text())
    assert published == json_schema(), "run: python -m explorer schema > explorer/config/schema.json"


def test_shared_link_round_trip_and_tampering():
    from explorer.config.links import decode_setup, encode_setup
    cfg = ExperimentConfig.model_validate({"seed": 3, "model": {"arch": "mlp", "hidden": [16]},
                                           "weight_pruning": {"sparsity": {"fc1": 0.5}}, "freeze": ["fc2"]})
    link = encode_setup(cfg)
    assert decode_setup(link) == cfg and len(link) < 200 and link.isascii()
    assert decode_setup(encode_setup(ExperimentConfig())) == ExperimentConfig()
    flipped = link[:10] + ("B" if link[10] != "B" else "C") + link[11:]
    for bad in ("garbage!!", link[:-6], flipped, ""):
        with pytest.raises(ConfigError, match="damaged|JSON"):
            decode_setup(bad)
    import base64
    import zlib
    bomb = base64.urlsafe_b64encode(zlib.compress(b" " * 10_000_000)).decode()
    with pytest.raises(ConfigError, match="damaged"):
        decode_setup(bomb)

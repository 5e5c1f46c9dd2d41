import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.config import ExperimentConfig  # noqa: E402


def tiny_config(**overrides) -> ExperimentConfig:
    """Default setup trained for few epochs: what most tests need, in well under a second."""
    raw = {"train": {"epochs": 3}}
    for k, v in overrides.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return ExperimentConfig.model_validate(raw)


@pytest.fixture(scope="session")
def trained_experiment_factory():
    """Trained experiments are cached per config JSON; each call returns a deep copy, so tests cannot leak state."""
    import copy

    from explorer.experiment import Experiment

    cache = {}

    def make(config: ExperimentConfig | None = None):
        config = config or tiny_config()
        key = config.model_dump_json()
        if key not in cache:
            exp = Experiment(config)
            exp.train_baseline()
            cache[key] = exp
        return copy.deepcopy(cache[key])

    return make

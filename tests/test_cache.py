"""The one cache policy (explorer.engine.cache.ViewCache): bounded per kind in entries and in bytes, least recently
used out, the newest value always kept; a long slider sweep on a large model keeps a session's views within the
bound."""
import numpy as np
import pytest
import torch
from helpers import tiny_config

from explorer.config.schema import WeightPruningConfig
from explorer.engine.cache import MB, ViewCache, nbytes
from explorer.experiment.facade import Experiment


def test_nbytes_counts_tensor_and_array_storage_through_containers():
    value = {"a": torch.zeros(1000, dtype=torch.float32), "b": [np.zeros(500, dtype=np.float64)]}
    assert 8000 <= nbytes(value) < 8000 + 2000


def test_a_kind_is_bounded_in_bytes_and_entries_and_keeps_the_newest():
    cache = ViewCache({"x": (100, 10_000), "y": (2, MB)})
    for i in range(20):
        cache.put(("x", i), np.zeros(1000, dtype=np.uint8))  # 1,000 bytes each
    assert sum(("x", i) in cache for i in range(20)) == 10  # 10 × 1,000 bytes
    assert ("x", 19) in cache and ("x", 0) not in cache
    cache.put(("x", "huge"), np.zeros(100_000, dtype=np.uint8))  # larger than the kind's bound: kept alone
    assert ("x", "huge") in cache and len([k for k in range(20) if ("x", k) in cache]) == 0
    for i in range(5):
        cache.put(("y", i), i)
    assert [i for i in range(5) if ("y", i) in cache] == [3, 4]
    assert cache.lookup(("x", "huge")) is not None  # another kind's sweep did not evict it


def test_lookup_makes_an_entry_recent():
    cache = ViewCache({"x": (2, MB)})
    cache.put(("x", 1), 1)
    cache.put(("x", 2), 2)
    cache.lookup(("x", 1))
    cache.put(("x", 3), 3)
    assert ("x", 1) in cache and ("x", 2) not in cache


@pytest.mark.slow  # a sweep over a large model: about 3 s on 2 cores
def test_a_slider_sweep_on_a_large_model_stays_within_the_sessions_bound():
    exp = Experiment(tiny_config(model={"arch": "mlp", "hidden": [1024, 1024]}, train={"epochs": 1}))
    exp.train_baseline()
    for i in range(40):
        exp.set_pruning(WeightPruningConfig(sparsity=round(i / 40, 4)))
    assert exp.views.nbytes() <= exp.views.max_bytes()
    assert exp.views.nbytes() > 16 * MB  # the bound is what holds it, not a small model: 1.1 M weights' masks


def test_wanda_calibration_runs_once_per_baseline(monkeypatch, trained_experiment_factory):
    """The pruning state, the criteria comparison and fine-tuning all read the one calibration of a baseline."""
    from explorer.experiment import criteria
    from explorer.methods import wanda

    calls = []
    real = wanda.input_norms
    monkeypatch.setattr(wanda, "input_norms", lambda *a, **k: calls.append(1) or real(*a, **k))
    exp = trained_experiment_factory(tiny_config(finetune={"epochs": 1}))
    for s in (0.3, 0.5, 0.7):
        exp.set_pruning(WeightPruningConfig(sparsity=s, criterion="wanda"))
        criteria.comparison(exp)
    exp.finetune()
    assert len(calls) == 1
    exp.train_baseline()  # a new baseline: calibrated anew
    exp.set_pruning(WeightPruningConfig(sparsity=0.5, criterion="wanda"))
    assert len(calls) == 2


def test_a_process_cache_is_bounded_in_bytes_and_keeps_no_failure():
    from explorer.engine.cache import LIMITS, process_cache

    made = []

    @process_cache("split")
    def block(i: int, fail: bool = False) -> np.ndarray:
        made.append(i)
        if fail:
            raise ValueError("refused")
        return np.zeros(8 * MB, dtype=np.uint8)

    for i in range(12):
        block(i)
    block(11)
    assert made == list(range(12))  # the newest is kept
    block(0)
    assert made[-1] == 0  # the oldest was evicted: 12 × 8 MB is over the kind's bytes
    assert LIMITS["split"][1] < 12 * 8 * MB
    for _ in range(2):
        with pytest.raises(ValueError):
            block(99, fail=True)
    assert made.count(99) == 2  # a failure is computed again, never kept

"""The one cache policy (explorer.experiment.cache.ViewCache): bounded per kind in entries and in bytes, least recently
used out, the newest value always kept; a long slider sweep on a large model keeps a session's views within the
bound."""
import numpy as np
import torch
from helpers import tiny_config

from explorer.config.schema import WeightPruningConfig
from explorer.experiment.cache import MB, ViewCache, nbytes
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


def test_a_slider_sweep_on_a_large_model_stays_within_the_sessions_bound():
    exp = Experiment(tiny_config(model={"arch": "mlp", "hidden": [1024, 1024]}, train={"epochs": 1}))
    exp.train_baseline()
    for i in range(40):
        exp.set_pruning(WeightPruningConfig(sparsity=round(i / 40, 4)))
    assert exp.views.nbytes() <= exp.views.max_bytes()
    assert exp.views.nbytes() > 16 * MB  # the bound is what holds it, not a small model: 1.1 M weights' masks

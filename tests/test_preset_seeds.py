"""Every preset's checked figures hold at seeds 0, 1 and 2 (issue 26), replayed as tests/test_presets.py replays them
(train_baseline, finetune unless the schedule is none, metrics) with only `config.seed` changed. Seed 0 of a preset is
here only where no other test checks its `expect` (test_presets.py's CHEAP list, test_mnist.py, test_lottery.py,
test_nm.py and test_wanda.py do); the MNIST presets' seeds are in test_preset_seeds_mnist.py and
test_preset_seeds_lenet5.py, so that pytest-xdist's two workers share them. The figures of every seed are printed by
`python benchmarks/preset_seeds.py` (the table is in benchmarks/README.md)."""
import pytest

from explorer.config.presets import check_expectations, load_presets
from explorer.experiment.facade import Experiment

PRESETS = load_presets()
MNIST = ("han2015_lenet5", "han2015_mnist_lenet300100")
# Fine-tuned within a point of the dense baseline, at every seed: Han's claim (the digits preset and the MNIST ones).
HAN = ("han2015", *MNIST)
SEED_0_HERE = ("han2015",)  # test_training.py replays it at seed 0 but checks its own figures, not `expect`
CASES = [(key, seed) for key in PRESETS if key not in MNIST for seed in (0, 1, 2)
         if seed != 0 or key in SEED_0_HERE]


def replay(key: str, seed: int) -> tuple[Experiment, dict]:
    """The preset `key` at `seed`, as `python -m explorer run` computes it: the experiment and its metrics.json."""
    preset = PRESETS[key]
    config = type(preset.config).model_validate({**preset.config.model_dump(), "seed": seed})
    exp = Experiment(config)
    exp.train_baseline()
    if config.finetune.schedule != "none":
        exp.finetune()
    return exp, exp.metrics().as_dict()


def check_preset_at_seed(key: str, seed: int) -> None:
    """The preset's `expect`, and the claim its paragraph makes beyond it, at `seed`."""
    exp, metrics = replay(key, seed)
    assert check_expectations(metrics, PRESETS[key].expect) == [], (key, seed)
    if key in HAN:
        assert metrics["finetuned"]["test_accuracy"] >= metrics["baseline"]["test_accuracy"] - 0.01, (key, seed)
    if key == "lottery":  # the ticket leads the re-initialisation at every round of 90 % sparsity or more
        high = [r for r in metrics["lottery"]["rounds"] if r["sparsity"] >= 0.9]
        assert len(high) >= 3 and all(r["ticket_test"] > r["reinit_test"] for r in high), (key, seed)
    if key == "wanda_vs_magnitude":  # measured: 25+ points ahead of magnitude at seeds 0-2 (28.6 at seed 2)
        from explorer.experiment import criteria

        assert criteria.comparison(exp).wanda_gain_points >= 25, (key, seed)


@pytest.mark.slow  # all of them: about 50 s on a busy 2-core machine
@pytest.mark.parametrize(("key", "seed"), CASES)
def test_preset_holds_at_seed(key, seed):
    check_preset_at_seed(key, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_before_pruning_keeps_more_than_l2_at_every_seed(seed):
    """The pair's point: the same cut costs the L2-trained network more (measured: 8 to 25 points)."""
    l1 = replay("l1_before_pruning", seed)[1]["pruned"]["test_accuracy"]
    l2 = replay("l2_before_pruning", seed)[1]["pruned"]["test_accuracy"]
    assert l1 >= l2 + 0.05, (seed, l1, l2)


def test_every_preset_is_checked_at_three_seeds():
    """Seeds 1 and 2 of every preset here or in the MNIST files; seed 0 here or in another test."""
    import test_preset_seeds_lenet5
    import test_preset_seeds_mnist

    here = set(CASES) | set(test_preset_seeds_mnist.CASES) | set(test_preset_seeds_lenet5.CASES)
    assert {(k, s) for k in PRESETS for s in (1, 2)} <= here
    assert {k for k, s in here if s == 0} == set(SEED_0_HERE)

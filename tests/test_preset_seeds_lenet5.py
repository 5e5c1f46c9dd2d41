"""The LeNet-5 Han preset at seed 2 (seed 0: test_mnist.py; seed 1: test_preset_seeds_mnist.py), in a file of its
own so that pytest-xdist's two workers share the minute-long LeNet-5 replays (`--dist loadfile`)."""
import pytest
from test_preset_seeds import check_preset_at_seed

CASES = [("han2015_lenet5", 2)]


@pytest.mark.slow  # about a minute on 2 cores
@pytest.mark.parametrize(("key", "seed"), CASES)
def test_lenet5_preset_holds_at_seed(key, seed):
    check_preset_at_seed(key, seed)

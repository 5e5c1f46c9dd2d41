"""The MNIST Han presets at seeds 1 and 2 (seed 0: test_mnist.py), replayed as test_preset_seeds.py replays every
preset: `expect`, and fine-tuned within a point of the dense baseline. LeNet-5's seed 2 is in
test_preset_seeds_lenet5.py, so that pytest-xdist's two workers share the two minute-long LeNet-5 replays."""
import pytest
from test_preset_seeds import check_preset_at_seed

CASES = [("han2015_mnist_lenet300100", 1), ("han2015_mnist_lenet300100", 2), ("han2015_lenet5", 1)]


@pytest.mark.slow  # LeNet-300-100: about 8 s each; LeNet-5: about a minute, on 2 cores
@pytest.mark.parametrize(("key", "seed"), CASES)
def test_mnist_preset_holds_at_seed(key, seed):
    check_preset_at_seed(key, seed)

"""The noise rule (explorer/engine/noise.py): a gap inside two binomial standard errors is within noise. Its band is
checked against a simulation of test splits (about 95 % of draws of n images land inside it), its one-image floor and
its words."""
import numpy as np
import pytest

from explorer.engine.noise import gap


@pytest.mark.parametrize(("p", "n"), [(0.955, 360), (0.9, 1000), (0.7, 200)])
def test_the_band_holds_about_95_percent_of_test_splits(p, n):
    draws = np.random.default_rng(0).binomial(n, p, size=20_000) / n
    band = gap(p, p, n).band / 100
    inside = np.mean(np.abs(draws - p) <= band)
    assert 0.93 <= inside <= 0.975, inside


def test_the_issue_s_examples():
    # Wanda vs magnitude at 50 % on the default model: 95.8 vs 95.3 % on 360 test images is 2 images.
    small = gap(0.958, 0.953, 360)
    assert small.within_noise and round(small.images) == 2 and "within noise" in small.words()
    # Pruning the classifier too: 90.8 vs 95.6 % is 17 images, a result.
    big = gap(0.908, 0.956, 360)
    assert not big.within_noise and round(big.images) == 17 and "more than noise" in big.words()


def test_one_image_is_never_a_result():
    # At 100 % the binomial error is 0; one image of 11 (9.1 points) must still read as noise.
    assert gap(1.0, 10 / 11, 11).within_noise
    assert gap(1.0, 1.0, 11).band == pytest.approx(100 / 11)


def test_a_bigger_split_narrows_the_band():
    assert gap(0.95, 0.95, 10_000).band < gap(0.95, 0.95, 360).band


def test_a_negative_split_is_refused():
    with pytest.raises(ValueError, match="positive number of images"):
        gap(0.9, 0.8, -1)


def test_compare_page_says_which_snapshots_are_within_noise(trained_experiment_factory):
    from helpers import app, no_exceptions

    exp = trained_experiment_factory()
    exp.snapshot("*dense*")
    exp.update(exp.config.with_section(weight_pruning=exp.config.weight_pruning.model_copy(update={"sparsity": 0.3})))
    exp.snapshot("thirty")
    at = app(exp, page="app_pages/export.py")
    no_exceptions(at)
    caption = next(c.value for c in at.caption if c.value.startswith("Noise:"))
    n = len(exp.data.y_test)
    assert f"({n:,} images)" in caption and "Within noise of the best" in caption
    assert "\\*dense\\*" in caption and "thirty" in caption  # both named; a name is escaped, never Markdown

"""The Playground's histogram and digit pictures (explorer/figures/pictures.py) read back from their SVG: bar heights
are the counts, the cut is where the threshold is (and absent for structured pruning), wrong predictions are marked, and
text is escaped."""
import xml.etree.ElementTree as ET

import numpy as np

from explorer.figures import pictures, plots
from explorer.figures.views import DigitPredictions, Histogram

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str, color: str) -> list[tuple[float, float, float]]:
    """(left %, width %, height px) of each bar of `color`."""
    return [(float(r.get("x").rstrip("%")), float(r.get("width").rstrip("%")), float(r.get("height")))
            for r in ET.fromstring(svg).findall(SVG + "rect") if r.get("fill") == color]


def dashed(svg: str) -> list[float]:
    return [float(ln.get("x1").rstrip("%")) for ln in ET.fromstring(svg).findall(SVG + "line")
            if ln.get("stroke-dasharray")]


HIST = Histogram(edges=list(np.linspace(-1, 1, 5)), kept=[4, 0, 0, 2], pruned=[0, 3, 1, 0], threshold=0.5)


def test_bars_are_the_counts_and_the_cut_is_at_the_threshold():
    svg = pictures.histogram_svg(HIST, "fc1 weights")
    kept, pruned = bars(svg, plots.KEPT), bars(svg, plots.PRUNED)
    unit = kept[0][2] / 4  # px per count (heights are drawn to 0.1 px)
    assert np.allclose([h / unit for _, _, h in kept], [4, 2], atol=0.02)  # empty bins draw nothing
    assert np.allclose([h / unit for _, _, h in pruned], [3, 1], atol=0.02)
    lefts = [x for x, _, _ in kept + pruned]
    assert sorted(lefts) == sorted({lefts[0], *lefts})  # one bar per bin
    cut = dashed(svg)  # at ±0.5 of [-1, 1]: a quarter and three quarters of the plot (2 % margins, 96 % wide)
    assert np.allclose(sorted(cut), [2 + 96 * 0.25, 2 + 96 * 0.75])
    assert "cut at |w| = 0.5" in svg


def test_structured_pruning_draws_no_magnitude_cut():
    assert dashed(pictures.histogram_svg(HIST, "fc1", structured=True)) == []


def test_wrong_digits_are_marked_and_counted():
    view = DigitPredictions(np.zeros((7, 8, 8)), labels=[1, 2, 3, 4, 5, 6, 7], predicted=[1, 2, 9, 4, 5, 6, 0])
    root = ET.fromstring(pictures.digits_svg(view))
    labels = {"".join(t.itertext()): t.get("fill") for t in root.iter(SVG + "text")}
    assert labels["9≠3"] == plots.PRUNED and labels["0≠7"] == plots.PRUNED
    assert labels["1"] == pictures.TEXT and "2 of 7 test digits wrong" in labels


def test_titles_are_escaped():
    svg = pictures.histogram_svg(HIST, "<script>x</script> weights")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and ET.fromstring(svg) is not None

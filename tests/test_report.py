"""The spurious-minima report on small synthetic maps whose diagnosis is known."""

import base64
import re
from dataclasses import replace

import numpy as np
import pytest

# The function behind the make_map fixture (module-scoped fixtures use it).
from conftest import build_map

from landscape import LandscapeError
from landscape.diagnosis import report as report_module
from landscape.diagnosis.spurious import OFF_DATA, SATURATED, Diagnosis, diagnose
from landscape.plots.tree import plot_tree
from landscape.io.records import MapContent
from landscape.diagnosis.report import (
    CLOSEST_CALLS,
    plot_energy_histogram,
    plot_nn_histogram,
    plot_worst_minima,
    worst_minima,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
SHAPE = (1, 4, 4)

# ----------------------------------------------------------------- synthetic cases


def make_content(minima: np.ndarray, energy: np.ndarray, hits: np.ndarray | None = None) -> MapContent:
    """One level, the main one: one basin per minimum (numbered by energy, as a map stores
    them); a barrier 1 above the higher minimum between consecutive minima."""
    return build_map(minima, energy, hits=hits, attrs={"minima": {"dataset": "toy"}})


def image_case(far: bool = True) -> tuple[MapContent, Diagnosis, np.ndarray]:
    """Ten noisy examples around each of three grey images; a minimum at each centre and,
    with ``far``, minimum 3: a black-and-white checkerboard of the lowest energy, off the
    data and saturated."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.5, 0.5, size=(3, *SHAPE))
    data = np.concatenate([c + rng.normal(scale=0.05, size=(10, *SHAPE)) for c in centres])
    minima, energy, hits = centres, np.array([-0.5, -0.4, -0.3]), np.array([10, 20, 10])
    if far:
        checker = np.where(np.indices(SHAPE[1:]).sum(0) % 2 == 0, 1.0, -1.0)[None]
        minima = np.concatenate([minima, checker[None]])
        energy, hits = np.append(energy, -2.0), np.append(hits, 10)
    content = make_content(minima, energy, hits)
    d = diagnose(minima, energy, data, rng.normal(scale=0.1, size=data.shape[0]), data_range=(-1.0, 1.0), images=True)
    return content, d, data


def point_case(dim: int) -> tuple[MapContent, Diagnosis, np.ndarray]:
    """Three clusters in R^dim with a minimum at each centre; minimum 3 far off at low energy."""
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=3.0, size=(3, dim))
    data = np.concatenate([c + rng.normal(scale=0.2, size=(40, dim)) for c in centres])
    minima = np.concatenate([centres, centres[:1] + 6.0])
    energy = np.array([-0.5, -0.4, -0.3, -2.0])
    return make_content(minima, energy), diagnose(minima, energy, data, np.zeros(data.shape[0])), data


def pngs(page: str) -> list[bytes]:
    """The decoded pictures embedded in a page."""
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def flagged_rows(page: str) -> list[int]:
    """The minimum indices listed in the page's table of flagged minima."""
    table = re.search(r'<table id="flagged-minima">(.*?)</table>', page, re.S)
    return [] if table is None else [int(i) for i in re.findall(r'<tr><td class="num">(\d+)</td>', table.group(1))]


@pytest.fixture(scope="module")
def image_report(tmp_path_factory):
    """The image case's report with one extra figure, written once for the tests that read it."""
    folder = tmp_path_factory.mktemp("image")
    content, d, data = image_case()
    extra = plot_nn_histogram(d, folder / "extra.png")
    path = write_report(folder / "report.html", content, d, data, extra_figures=[("funnel <probe>", extra)])
    return path, content, d, data, extra


# ------------------------------------------------------------------------ the page


def test_image_report_is_one_self_contained_page(image_report):
    path, content, d, data, extra = image_report
    assert d.reasons.tolist() == [0, 0, 0, OFF_DATA | SATURATED]  # the case is what it says
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    pictures = pngs(page)
    assert len(pictures) == 5  # worst minima, energies, distances, tree, the extra one
    assert all(p[:8] == PNG for p in pictures)
    assert pictures[-1] == extra.read_bytes()
    # Nothing outside the file: every source is inline, no script, no style sheet link.
    assert re.findall(r'src="(?!data:)', page) == []
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "<figcaption>funnel &lt;probe&gt;</figcaption>" in page  # text is escaped
    # The sections come in the documented order.
    ids = ["summary", "worst", "energy", "nn", "tree", "extra", "flagged"]
    where = [page.index(f'<section id="{s}">') for s in ids]
    assert where == sorted(where)


def test_title_is_escaped(image_report, tmp_path, monkeypatch):
    _, content, d, data, extra = image_report
    # Only the page's own text is under test: every picture is the fixture's.
    for name in ("plot_worst_minima", "plot_energy_histogram", "plot_nn_histogram", "plot_tree"):
        monkeypatch.setattr(report_module, name, lambda *args, **kwargs: extra)
    page = write_report(tmp_path / "r.html", content, d, data, title="Toy <model> & co").read_text(encoding="utf-8")
    assert "<title>Toy &lt;model&gt; &amp; co</title>" in page and "<h1>Toy &lt;model&gt; &amp; co</h1>" in page
    assert "<model>" not in page


def test_summary_counts_the_flagged_minima_chains_and_reasons(image_report):
    path, content, d, data, _ = image_report
    page = path.read_text(encoding="utf-8")
    summary = page[page.index('<section id="summary">') : page.index('<section id="worst">')]
    assert "<h1>Spurious minima: " in summary  # the default title
    assert "<tr><th>Minima</th><td>4 in 4 basins</td></tr>" in summary
    assert re.search(r"<tr><th>Compared with</th><td>\d+ (training examples|examples of \w+)</td></tr>", summary)
    assert "<tr><th>Flagged spurious</th><td>1 (25.0% of the minima)</td></tr>" in summary
    # Hits-weighted: 10 of the 50 chains end in minimum 3.
    assert "<tr><th>Chains ending in spurious minima</th><td>10 of 50 (20.0%)</td></tr>" in summary
    assert "<tr><th>Off the data</th><td>1</td></tr>" in summary
    assert "<tr><th>Saturated</th><td>1</td></tr>" in summary
    assert f"{d.nn_bar:.4g} = 1.5 x the data&#x27;s q99" in summary
    assert "<tr><th>Saturation bar</th><td>50.0% of the pixels" in summary
    assert "<b>Off the data</b>" in summary and "<b>Saturated</b>" in summary and "<b>Funnel sink</b>" in summary


def test_flagged_table_lists_the_flagged_minima_only(image_report):
    path, content, d, data, _ = image_report
    page = path.read_text(encoding="utf-8")
    assert flagged_rows(page) == [3]
    table = re.search(r'<table id="flagged-minima">(.*?)</table>', page, re.S).group(1)
    assert "off the data, saturated" in table and "<th>saturation</th>" in table
    assert f"{d.nn_distance[3] / d.nn_bar:.2f}x" in table
    assert "Closest calls" not in page


def test_tree_picture_marks_the_spurious_basins_without_touching_the_map(image_report, tmp_path):
    path, content, d, data, _ = image_report
    page = path.read_text(encoding="utf-8")
    tree = pngs(page[page.index('<section id="tree">') :])[0]
    # The report draws the map's tree with its diagnosis marked in red. Which tree
    # (over minima, plot_tree's default, or over the main level's basins, as the section's
    # caption says) is left open here: either is the marked picture, never the plain one.
    marked = {plot_tree(replace(content, diagnosis=d.to_data()), tmp_path / f"marked{b}.png", basins=b).read_bytes()
              for b in (False, True)}
    plain = {plot_tree(content, tmp_path / f"plain{b}.png", basins=b).read_bytes() for b in (False, True)}
    assert tree in marked and tree not in plain
    assert content.diagnosis is None


def test_basins_are_the_main_levels(tmp_path, make_partition):
    """A map whose main level groups the minima (0, 1 | 2, 3): the report counts and names
    that level's basins."""
    content, d, data = image_case()
    content.levels.append(make_partition(content.minima_energy, [0, 0, 1, 1], alpha=2.0, multiplier=2.0))
    content.main = 1
    page = write_report(tmp_path / "r.html", content, d, data).read_text(encoding="utf-8")
    assert "<tr><th>Minima</th><td>4 in 2 basins</td></tr>" in page
    # Minimum 3 (E = -2, the lowest) is in basin 0, basin 1 holds minima 0 and 1.
    assert content.minima_basin.tolist() == [1, 1, 0, 0]
    table = re.search(r'<table id="flagged-minima">(.*?)</table>', page, re.S).group(1)
    assert '<tr><td class="num">3</td><td class="num">0</td><td class="num">-2</td>' in table
    assert len(pngs(page)) == 4


def test_no_flagged_minimum_shows_the_closest_calls(tmp_path):
    content, d, data = image_case(far=False)
    assert not d.spurious.any()
    page = write_report(tmp_path / "r.html", content, d, data).read_text(encoding="utf-8")
    assert "No minimum is flagged spurious." in page
    assert '<h2 id="closest-calls">Closest calls: the 3 minima farthest from the data</h2>' in page
    assert '<table id="flagged-minima">' not in page and flagged_rows(page) == []
    assert len(pngs(page)) == 4


@pytest.mark.parametrize("dim", [2, 5])
def test_points_and_vectors_produce_reports(tmp_path, dim):
    content, d, data = point_case(dim)
    assert d.reasons.tolist() == [0, 0, 0, OFF_DATA]
    page = write_report(tmp_path / "r.html", content, d, data).read_text(encoding="utf-8")
    pictures = pngs(page)
    assert len(pictures) == 4 and all(p[:8] == PNG for p in pictures)
    assert flagged_rows(page) == [3]
    # Points and vectors have no saturation test.
    assert "<th>saturation</th>" not in page and "Saturation bar" not in page


# --------------------------------------------------------------- atomic writing


def test_failed_write_leaves_an_existing_report_untouched(image_report, tmp_path, monkeypatch):
    source, content, d, data, _ = image_report
    path = tmp_path / "report.html"
    path.write_bytes(source.read_bytes())
    before = path.read_bytes()
    with pytest.raises(LandscapeError, match="shape"):
        write_report(path, content, d, data[:, :, :, :3])  # examples of another shape
    with pytest.raises(LandscapeError, match="training examples"):
        write_report(path, content, d, data[:20])  # not the data the diagnosis used
    with pytest.raises(LandscapeError, match="cannot read"):
        write_report(path, content, d, data, extra_figures=[("gone", tmp_path / "missing.png")])

    def broken(*args, **kwargs):
        raise LandscapeError("the picture broke")

    # A failure after the page's head went into the temporary file.
    monkeypatch.setattr(report_module, "plot_worst_minima", broken)
    with pytest.raises(LandscapeError, match="the picture broke"):
        write_report(path, content, d, data)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# ------------------------------------------------------------------ the pieces


def test_worst_minima_are_the_flagged_lowest_first_or_the_farthest():
    n = 10
    content = make_content(np.zeros((n, 3)), np.linspace(-1.0, 1.0, n))
    reasons = np.zeros(n, dtype=np.uint8)
    reasons[[7, 2, 5]] = OFF_DATA
    distance = np.arange(n, dtype=np.float64)[::-1].copy()  # minimum 0 is the farthest
    d = Diagnosis(reasons=reasons, nn_distance=distance, nn_index=np.zeros(n, dtype=np.int64), saturation=None,
                  data_nn=np.ones(4), data_energy=np.zeros(4), nn_bar=1.0, energy_bar=0.0, data_saturation=None)
    shown, flagged = worst_minima(content, d, max_shown=2)
    assert flagged and shown.tolist() == [2, 5]  # energies rise with the index (each minimum its own basin)
    # One basin's near-copies do not fill the page: each basin's lowest flagged minimum
    # first (the demo's non-convergent report showed twelve 6s from two basins).
    content.minima_basin[:] = [0, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    reasons[[3, 4, 8, 9]] = OFF_DATA
    shown, _ = worst_minima(content, d, max_shown=4)
    assert shown.tolist() == [2, 7, 3, 4]
    d.reasons[:] = 0
    shown, flagged = worst_minima(content, d)
    assert not flagged and shown.tolist() == list(range(CLOSEST_CALLS))
    with pytest.raises(LandscapeError, match="max_shown"):
        worst_minima(content, d, max_shown=0)


def test_figures_write_pictures(image_report, tmp_path):
    _, content, d, data, extra = image_report
    assert extra.read_bytes()[:8] == PNG  # plot_nn_histogram, drawn by the fixture
    for path in (
        plot_worst_minima(content, d, data, tmp_path / "worst.png", max_shown=1),
        plot_energy_histogram(d, content, tmp_path / "energy.png"),
    ):
        assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["energy.png", "worst.png"]


def test_figures_reject_inputs_that_do_not_belong_together(tmp_path):
    content, d, data = image_case()
    other, other_d, _ = image_case(far=False)
    with pytest.raises(LandscapeError, match=r"shape \[1, 4, 3\] but the minima \[1, 4, 4\]"):
        plot_worst_minima(content, d, data[..., :3], tmp_path / "w.png")
    with pytest.raises(LandscapeError, match="not this map's"):
        plot_worst_minima(content, other_d, data, tmp_path / "w.png")
    with pytest.raises(LandscapeError, match="minima"):
        plot_energy_histogram(other_d, content, tmp_path / "e.png")
    with pytest.raises(LandscapeError, match="suffix"):
        plot_nn_histogram(d, tmp_path / "nn.txt")
    assert list(tmp_path.iterdir()) == []


def test_the_histograms_say_why_their_red_minima_are_flagged():
    from landscape.plots.common import new_figure
    from landscape.plots.report import draw_energy_histogram, draw_nn_histogram

    content, d, _ = image_case()
    ax1, ax2 = new_figure(8, 4).subplots(1, 2)
    draw_nn_histogram(d, ax1)
    draw_energy_histogram(d, content, ax2)
    why = ", ".join(f"{d.count(flag)} {name}" for flag, name in ((OFF_DATA, "off the data"), (SATURATED, "saturated"))
                    if d.count(flag))
    for ax in (ax1, ax2):
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert f"minima, flagged spurious ({int(d.spurious.sum())}: {why})" in labels, labels


def test_flagged_table_says_which_minimum_each_drains_into(tmp_path):
    # Two saturated checkerboards off the data, the second (E = -1.9) draining into the
    # first (E = -2) with no barrier: a state of one minimum and a point beside it.
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.5, 0.5, size=(3, *SHAPE))
    data = np.concatenate([c + rng.normal(scale=0.05, size=(10, *SHAPE)) for c in centres])
    checker = np.where(np.indices(SHAPE[1:]).sum(0) % 2 == 0, 1.0, -1.0)[None]
    nudged = checker.copy()
    nudged[0, 0, 0] = 0.9
    minima = np.concatenate([checker[None], nudged[None], centres])
    energy = np.array([-2.0, -1.9, -0.5, -0.4, -0.3])
    content = build_map(minima, energy, [(0, 1), (1, 2), (2, 3), (3, 4)], [-1.9, 0.5, 0.6, 0.7],
                        attrs={"minima": {"dataset": "toy"}})
    assert content.tree.flat().tolist() == [True, False, False, False]
    d = diagnose(minima, energy, data, rng.normal(scale=0.1, size=data.shape[0]), data_range=(-1.0, 1.0), images=True)
    assert d.spurious.tolist() == [True, True, False, False, False]
    page = write_report(tmp_path / "r.html", content, d, data).read_text(encoding="utf-8")
    table = re.search(r'<table id="flagged-minima">(.*?)</table>', page, re.S).group(1)
    assert "<th>drains into</th>" in table
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    rows = {int(c[0]): c for c in cells if c}
    assert rows[1][-2] == "0" and rows[0][-2] == "-"


def test_the_diagnose_summary_counts_the_flagged_states_and_lists_states_first(tmp_path):
    # The same two checkerboards (the second draining into the first) and, flagged too, a
    # third off the data behind a barrier: 3 flagged, 2 states of their own.
    from landscape.cli.diagnose_cmd import _summary, summary_lines

    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.5, 0.5, size=(3, *SHAPE))
    data = np.concatenate([c + rng.normal(scale=0.05, size=(10, *SHAPE)) for c in centres])
    checker = np.where(np.indices(SHAPE[1:]).sum(0) % 2 == 0, 1.0, -1.0)[None]
    nudged, other = checker.copy(), -checker
    nudged[0, 0, 0] = 0.9
    minima = np.concatenate([checker[None], nudged[None], other[None], centres])
    energy = np.array([-2.0, -1.9, -1.8, -0.5, -0.4, -0.3])
    content = build_map(minima, energy, [(0, 1), (0, 2), (2, 3), (3, 4), (4, 5)], [-1.9, 0.2, 0.5, 0.6, 0.7],
                        attrs={"minima": {"dataset": "toy"}})
    d = diagnose(minima, energy, data, rng.normal(scale=0.1, size=data.shape[0]), data_range=(-1.0, 1.0), images=True)
    assert d.spurious.tolist() == [True, True, True, False, False, False]
    text = "\n".join(summary_lines(tmp_path / "m.h5", content, d, "toy"))
    assert "3 saturated, 0 funnel sinks; 2 of them states of their own, the others draining into another minimum" in text
    listed = re.findall(r"^    #(\d+) ", text, re.M)
    assert listed == ["0", "2"]  # the states, lowest first: minimum 1 only drains into 0
    s = _summary(tmp_path / "m.h5", content, d, "toy", tmp_path / "r.html")
    assert s["spurious"] == 3 and s["spurious_states"] == 2
    assert [f["drains_into"] for f in s["flagged"]] == [None, 0, None]

"""`landscape compare` and :mod:`landscape.diagnosis.compare` on synthetic maps whose numbers are known.

Map A: ten image minima; a ladder at 1x, 3x, 10x the alpha unit (0.2) with 10, 5, 2
basins, the first (one basin per minimum) the main level; barriers 1..9 above the higher
minimum, at a sampling temperature T = 2 (0.5..4.5 kT; attraction-diffusion ran at 20,
which must not count); a funnel (score 0.9); 6 of 10 minima spurious. Map B: the same
minima; 10, 9, 8, 7 basins at 1x, 3x, 10x, 30x the unit 0.5 (multipliers from alpha /
alpha_unit, none stored); barriers 0.5; sampling temperature 0 (an energy function: kT
is then that of p ~ exp(-U), T = 1); score 0.1; nothing spurious.
"""

import json
import math
import os
import re
import struct

import h5py
import numpy as np
import pytest

# The functions behind the make_map / make_partition fixtures (module-scoped fixtures use them).
from conftest import build_map, partition

from landscape.cli.compare_cmd import compare_cmd
from landscape.cli.errors import run_guarded
from landscape.diagnosis.compare import compare_profiles, identical_maps, map_profile, summarize
from landscape.io.mapfile import DiagnosisData, FunnelData, read_map, write_map
from landscape.plots.compare import plot_comparison

PNG = b"\x89PNG\r\n\x1a\n"
N = 10


def ladder_map(counts, multipliers, heights, temperature, unit, store_multiplier, score, entropy, spurious, reasons,
               ad_temperature):
    """Minima with energies -10, -9, ..., -1; barrier of pair (i, i+1) at E[i+1] + heights[i]
    (so merge i of the tree over minima has relative height heights[i]). Level k (of
    ``counts[k]`` basins): minima 0..counts[k]-2 alone, the rest in the last basin."""
    energy = -10.0 + np.arange(N)
    x = np.random.default_rng(0).uniform(-1, 1, size=(N, 1, 8, 8)).astype(np.float32)
    pairs = [(i, i + 1) for i in range(N - 1)]
    content = build_map(
        x, energy, pairs, [energy[i + 1] + heights[i] for i in range(N - 1)], hits=np.arange(1, N + 1),
        attrs={"minima": {"temperature": temperature},
               "levels": {"alpha_unit": unit, "temperature": ad_temperature}},
    )
    content.levels = [
        partition(energy, np.minimum(np.arange(N), k - 1), alpha=m * unit, multiplier=m if store_multiplier else None)
        for k, m in zip(counts, multipliers)
    ]
    content.main = 0
    content.funnel = FunnelData(
        noise=np.array([0.0, 0.5, 1.0, 2.0]), occupancy=np.full((4, N), 1.0 / N), entropy=np.array(entropy),
        score=score, attrs={"reference_entropy": float(entropy[0])},
    )
    content.diagnosis = DiagnosisData(spurious=np.array(spurious), nn_distance=np.linspace(0.1, 1.0, N),
                                      reasons=np.array(reasons, dtype=np.uint8))
    return content


def map_a():
    # Multipliers stored as floats, as the mapper stores them.
    # Minima 4..9 spurious: all off the data (1), 7..9 also saturated (2), 9 also a funnel sink (4).
    return ladder_map([10, 5, 2], [1.0, 3.0, 10.0], np.arange(1.0, 10.0), 2.0, 0.2, True, 0.9,
                      [math.log(8), math.log(4), math.log(2), 0.1 * math.log(8)],
                      [False] * 4 + [True] * 6, [0] * 4 + [1, 1, 1, 3, 3, 7], ad_temperature=20.0)


def map_b():
    return ladder_map([10, 9, 8, 7], [1, 3, 10, 30], np.full(9, 0.5), 0.0, 0.5, False, 0.1,
                      [math.log(8), math.log(7.5), math.log(7), 0.9 * math.log(8)], [False] * N, [0] * N,
                      ad_temperature=0.25)


def map_2d():
    """Four 2-D minima, one level (alpha 0.3, unit 0.1, no multiplier stored), no funnel or
    diagnosis; a chain of pairs whose refined saddles lie below their estimate (0, 1), a
    little above it (1, 2) and far above it (2, 3); the sampling temperature (0.5) only in
    the config."""
    energy = np.array([-3.0, -2.0, -1.0, 0.0])
    content = build_map(
        np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), energy, [(0, 1), (1, 2), (2, 3)],
        [0.0, 1.0, 3.0], refined=[-0.5, 1.08, 9.0], hits=[5, 3, 2, 1],
        attrs={"levels": {"alpha_unit": 0.1, "temperature": 7.0}},
    )
    content.levels = [partition(energy, [0, 1, 2, 3], alpha=0.3, multiplier=None)]
    return content


def save(path, content, source=None, config=None):
    source = source or {"kind": "function", "spec": f"{path.stem}.py:energy"}
    return write_map(path, content, config=config or {}, source=source, tool_version="0.1.0")


def save_2d(path):
    return save(path, map_2d(), config={"temperature": 0.5, "chains": 4})


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    return save(folder / "A.h5", map_a()), save(folder / "B.h5", map_b())


def run(capsys, *args):
    code = run_guarded(compare_cmd, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern, expected=1):
    assert code == expected, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


def table(out):
    """The text table as {label: (A, B)}: columns by the header's positions; a line with
    no label continues the row above (long cells wrap)."""
    lines = out.splitlines()
    header = lines[0]
    names = header.split()
    a_at, b_at = header.index(names[0]), header.rindex(names[-1])
    rows, last = {}, None
    for line in lines[1:]:
        if not line.strip():
            break
        label, a, b = line[:a_at].strip(), line[a_at:b_at].strip(), line[b_at:].strip()
        if label:
            rows[label], last = [a, b], label
        elif last is not None:
            rows[last] = [" ".join(x for x in (old, new) if x) for old, new in zip(rows[last], (a, b))]
    return {k: tuple(v) for k, v in rows.items()}


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------ the library


def test_profiles_give_the_known_numbers(maps):
    a, b = (map_profile(read_map(p)) for p in maps)
    assert a["n_minima"] == 10 and a["n_basins"] == 10 and a["kind"] == "image"
    assert a["alpha"] == pytest.approx(0.2) and a["alpha_unit"] == pytest.approx(0.2)
    assert [(m, n) for m, _, n in a["levels"]] == [(1.0, 10), (3.0, 5), (10.0, 2)]
    # B's multipliers come from alpha / alpha_unit (none stored on its levels).
    assert [m for m, _, _ in b["levels"]] == pytest.approx([1.0, 3.0, 10.0, 30.0])
    assert [n for _, _, n in b["levels"]] == [10, 9, 8, 7]
    assert [alpha for _, alpha, _ in b["levels"]] == pytest.approx([0.5, 1.5, 5.0, 15.0])
    # kT at the model's own sampling temperature, not attraction-diffusion's (20 for A).
    assert a["temperature"] == 2.0 and a["temperature_from"] == "sampling"
    assert a["barriers"]["heights"] == pytest.approx(np.arange(1.0, 10.0))
    assert a["barriers"]["heights_kT"] == pytest.approx(np.arange(1.0, 10.0) / 2)
    assert (a["barriers"]["median_kT"], a["barriers"]["max_kT"], a["barriers"]["count"]) == pytest.approx((2.5, 4.5, 9))
    assert a["barriers"]["disconnected"] == 0
    # B sampled at T = 0 (an energy function): kT of p ~ exp(-U), T = 1 (not its AD T of 0.25).
    assert b["temperature"] == 1.0 and b["temperature_from"] == "p ~ exp(-U)"
    assert (b["barriers"]["median_kT"], b["barriers"]["max_kT"]) == pytest.approx((0.5, 0.5))
    assert a["funnel"]["score"] == pytest.approx(0.9) and a["funnel"]["funnel"]
    assert b["funnel"]["score"] == pytest.approx(0.1) and not b["funnel"]["funnel"]
    assert a["funnel"]["effective_basins"][:3] == pytest.approx([8.0, 4.0, 2.0])
    assert a["funnel"]["reference_basins"] == pytest.approx(8.0)
    d = a["diagnosis"]
    assert d["spurious"] == 6 and d["share_minima"] == pytest.approx(0.6)
    assert d["share_hits"] == pytest.approx(sum(range(5, 11)) / sum(range(1, 11)))  # 45 / 55 of the chains
    assert d["reasons"] == {"off the data": 6, "saturated": 3, "funnel sink": 1}
    assert b["diagnosis"]["share_minima"] == 0.0 and b["diagnosis"]["reasons"] == {
        "off the data": 0, "saturated": 0, "funnel sink": 0}


def test_profile_barriers_are_those_between_the_main_levels_basins(tmp_path):
    """A main level that groups minima: its basins are the map's, and the barriers are the
    merges of the tree over them (the pairs inside a basin do not count)."""
    content = map_a()
    content.funnel = None  # its occupancy is per basin of level 0
    content.main = 1  # minima 0..3 alone, 4..9 one basin (lowest minimum 4, E = -6)
    p = map_profile(read_map(save(tmp_path / "main1.h5", content)))
    assert p["n_basins"] == 5 and p["alpha"] == pytest.approx(0.6)
    assert [(m, n) for m, _, n in p["levels"]] == [(1.0, 10), (3.0, 5), (10.0, 2)]  # every level still listed
    # Basin 3 | basin 4 over pair (3, 4) at E[4] + 4 = -2, 4 above basin 4's -6; the
    # barriers 5..9 inside basin 4 are gone.
    assert p["barriers"]["heights"] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert p["barriers"]["heights_kT"] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    content.main = 2  # minimum 0 | the rest
    assert map_profile(content)["barriers"]["heights"] == pytest.approx([1.0])
    content.main = 0
    rows = {label: (va, vb) for label, va, vb in compare_profiles(map_profile(content), p)}
    assert rows["basins (main level)"] == ("10", "5")
    assert rows["barriers between main-level basins"] == ("9", "4")


def test_profile_of_a_bare_map_uses_its_one_level_and_the_trees_barriers(tmp_path):
    p = map_profile(read_map(save_2d(tmp_path / "w.h5")))
    assert p["kind"] == "2d"
    assert p["levels"] == [(pytest.approx(3.0), 0.3, 4)]  # alpha 0.3 / unit 0.1
    assert p["funnel"] is None and p["diagnosis"] is None
    # The tree's barriers (PairTable.best), relative to the higher side:
    # (0, 1): the saddle -0.5 lies below the estimate 0: taken, 1.5 above minimum 1 (-2);
    # (1, 2): the saddle 1.08 lies less than 5% of the climb (2) above the estimate 1: taken, 2.08;
    # (2, 3): the saddle 9 lies far above the estimate 3 (another pass): the estimate, 3 above 0.
    assert p["barriers"]["heights"] == pytest.approx([1.5, 2.08, 3.0])
    # The sampling temperature from the config (0.5), not attraction-diffusion's (7).
    assert p["temperature"] == 0.5 and p["temperature_from"] == "sampling"
    assert p["barriers"]["heights_kT"] == pytest.approx([3.0, 4.16, 6.0])


def test_profile_counts_disconnected_merges_apart():
    """Minimum 2 has no barrier to the others: the tree joins it at no finite height."""
    content = build_map(np.zeros((3, 2)), [-3.0, -2.0, -1.0], [(0, 1)], [0.0])
    p = map_profile(content)
    assert p["barriers"]["count"] == 1 and p["barriers"]["disconnected"] == 1
    assert p["barriers"]["heights"] == pytest.approx([2.0])
    assert p["temperature"] == 1.0 and p["temperature_from"] == "p ~ exp(-U)"  # no temperature recorded
    rows = {label: va for label, va, _ in compare_profiles(p, p)}
    assert rows["barriers between main-level basins"] == "1 (+1 with no path)"
    assert rows["barrier height median (kT)"] == "2"
    assert rows["kT: T"] == "1 (no sampling T: U in nats)"  # the table says what its kT is


def test_rows_and_summary_name_the_right_side(maps):
    a, b = (map_profile(read_map(p)) for p in maps)
    rows = {label: (va, vb) for label, va, vb in compare_profiles(a, b)}
    assert rows["basins at 3x alpha unit"] == ("5", "9")
    assert rows["basins at 10x alpha unit"] == ("2", "8")
    assert rows["basins at 30x alpha unit"] == ("-", "7")  # only B's ladder goes there
    assert rows["barrier height median (kT)"] == ("2.5", "0.5")
    assert rows["barrier height max (kT)"] == ("4.5", "0.5")
    assert rows["kT: T"] == ("2 (the model's sampling T)", "1 (no sampling T: U in nats)")
    assert rows["funnel score"] == ("0.90 (a funnel)", "0.10 (no funnel)")
    assert rows["spurious share (minima; chains)"] == ("60%; 82%", "0%; 0%")
    assert rows["spurious: saturated"] == ("3 (30%)", "0 (0%)")
    missing = {label: (va, vb) for label, va, vb in compare_profiles(a, None, missing=("no map", "no map (run: x)"))}
    assert missing["minima"] == ("10", "no map (run: x)")
    lines = summarize(a, b, ["A", "B"], ["non-convergent", "convergent"])
    assert lines[0] == "The long-run check calls A non-convergent and B convergent."
    assert "B has more basins" in lines[1] and "(8 vs 2 at 10x" in lines[1]
    # (B samples at T = 0: its barriers, in units of U, are not ranked against A's in kT)
    assert "barrier medians not compared (B samples at T = 0: barriers in units of U, not kT)" in lines[1]
    assert "A has the higher funnel score (0.90 vs 0.10" in lines[1]
    assert "A has the larger spurious share (60% vs 0%" in lines[1]
    # names are written as given, at the start of a sentence too
    lines = summarize(a, b, ["model_a", "model_b"], ["non-convergent", "convergent"])
    assert lines[1].startswith("model_b has more basins")
    assert summarize(b, b, ["a", "b"], [None, None])[0].startswith("The same number of basins")


def lone_chains_map():
    """Map B whose funnel probe's N chains per level each ended in a basin of their own at
    every level: its score of 0 says nothing (a trial's digits probe, 24 chains)."""
    content = map_b()
    content.funnel = FunnelData(noise=np.array([0.0, 1.0, 2.0]), occupancy=np.full((3, N), 1.0 / N),
                                entropy=np.full(3, math.log(N)), score=0.0,
                                attrs={"reference_entropy": math.log(N / 2), "chains_per_level": N,
                                       "funnel_threshold": 0.5})
    return content


def test_a_probe_with_too_few_chains_is_said_and_its_score_not_ranked(maps):
    # (compare printed "0.00 (no funnel)" and "n has the higher funnel score (0.24 vs 0.00)")
    a = map_profile(read_map(maps[0]))
    lone = map_profile(lone_chains_map())
    assert lone["funnel"]["verdict"] == "too few chains to tell" and lone["funnel"]["funnel"] is None
    assert a["funnel"]["verdict"] == "a funnel" and a["funnel"]["funnel"] is True
    rows = {label: (va, vb) for label, va, vb in compare_profiles(a, lone)}
    assert rows["funnel score"] == ("0.90 (a funnel)", "too few chains to tell (every chain in a basin of its own; "
                                                       "score 0.00)")
    text = summarize(a, lone, ["A", "B"])[-1]
    assert "funnel score" not in text.replace("funnel scores not compared", ""), text
    assert "B's funnel probe had too few chains to tell a funnel (funnel scores not compared)" in text
    both = summarize(lone, lone, ["A", "B"])[-1]
    assert "neither funnel probe had chains enough to tell a funnel" in both and "equal funnel scores" not in both
    # two probes under the bar: their scores are not ranked (0.10 vs 0.03 is noise, neither a funnel)
    b = map_profile(map_b())
    other = dict(b, funnel=dict(b["funnel"], score=0.03, chains=4))
    text = summarize(b, other, ["A", "B"])[-1]
    assert "neither is a funnel (scores 0.10 and 0.03)" in text and "higher funnel score" not in text, text
    # the chains a verdict rests on, where the probe says (4 a level say "no funnel" too)
    rows = {label: (va, vb) for label, va, vb in compare_profiles(b, other)}
    assert rows["funnel score"] == ("0.10 (no funnel)", "0.03 (no funnel; 4 chains a level)")
    # a probe whose data's chains filled about one basin, scored 1.00 before that was undefined: not a funnel
    one = map_b()
    one.funnel = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.array([[0.97, 0.03], [1.0, 0.0]]),
                            entropy=np.array([0.134, 0.0]), score=1.0,
                            attrs={"reference_entropy": 0.134, "chains_per_level": 30, "funnel_threshold": 0.5})
    p = map_profile(one)
    assert p["funnel"]["score"] is None and p["funnel"]["verdict"] == "score undefined"
    assert "higher funnel score" not in summarize(a, p, ["A", "B"])[-1]

    # the figure's panel says it too, and draws the ceiling B's curve sits on (N chains a level)
    assert lone["funnel"]["chains"] == N and a["funnel"]["chains"] is None  # (A's probe does not record it)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from landscape.plots.compare import draw_funnel_scores

    ax = draw_funnel_scores([a, lone], ["A", "B"], Figure().add_subplot())
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["A (score 0.90)", "B (score 0.00: too few chains to tell)"]
    flat = [tuple(line.get_ydata()) for line in ax.get_lines() if len(set(line.get_ydata())) == 1]
    assert (N, N) in flat and ax.get_ylim()[1] > N
    assert [t.get_text() for t in ax.texts] == [f"B: at most {N}"]


def test_identical_maps_are_said_to_be_identical_first(maps, tmp_path, capsys, monkeypatch):
    # (two copies of one map read "The same number of basins at every shared magnetization")
    a, b = maps
    (tmp_path / "copy").mkdir()
    twin = tmp_path / "copy" / a.name
    twin.write_bytes(a.read_bytes())
    with h5py.File(twin, "r+") as f:  # attributes (a creation date, a source path) are not what is compared
        f.attrs["created"] = "2030-01-01T00:00:00+00:00"
    assert identical_maps(a, twin) and not identical_maps(a, b)
    code, out, err = run(capsys, a, twin, "--out", tmp_path / "twin.png", "--quiet")
    assert code == 0, err
    summary = out.split("\n\n", 1)[1].splitlines()
    assert summary[0] == f"The maps of {a.parent.name}/A and copy/A are identical (the same datasets): the landscapes do " \
                         "not differ.", summary
    code, out, err = run(capsys, a, twin, "--out", tmp_path / "twin.png", "--quiet", "--json", "--force")
    assert code == 0, err
    assert json.loads(out)["identical_maps"] is True and "identical" in json.loads(out)["summary"][0]
    code, out, err = run(capsys, a, b, "--out", tmp_path / "ab.png", "--quiet", "--json")
    assert json.loads(out)["identical_maps"] is False and "identical" not in " ".join(json.loads(out)["summary"])
    monkeypatch.chdir(a.parent)  # a side named in the current folder is labelled by its folder too (not "/A")
    code, out, err = run(capsys, a.name, twin, "--out", tmp_path / "twin.png", "--quiet", "--force")
    assert code == 0 and out.split()[:2] == [f"{a.parent.name}/A", "copy/A"], out
    with h5py.File(twin, "r+") as f:  # one energy changed: no longer the same map
        f["minima/energy"][0] = f["minima/energy"][0] - 1.0
    assert not identical_maps(a, twin)


def test_help_says_a_and_b_must_be_two_files(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "the same file twice, or two checkpoints whose maps are the same file, is an error" in text
    assert "the summary says first that the maps are identical" in text


def test_figure_has_picture_rows_for_image_maps_only(maps, tmp_path):
    a, b = (read_map(p) for p in maps)
    flat = read_map(save_2d(tmp_path / "w.h5"))
    both = plot_comparison(a, b, ["A", "B"], tmp_path / "both.png")
    one = plot_comparison(a, flat, ["A", "W"], tmp_path / "one.png")
    none = plot_comparison(flat, None, ["W", "X"], tmp_path / "none.png")
    (w2, h2), (w1, h1), (w0, h0) = png_size(both), png_size(one), png_size(none)
    assert w2 == w1 == w0 and h2 > h1 > h0  # a row of pictures per image map, none for 2-D
    samples = plot_comparison(flat, None, ["W", "X"], tmp_path / "s.png",
                              samples={"X": np.zeros((20, 1, 8, 8))})
    assert png_size(samples)[1] == h1  # samples give a side without a map its row
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.png", "none.png", "one.png", "s.png", "w.h5"]


# ----------------------------------------------------------------------------- the CLI


def test_text_table_puts_each_number_on_its_side(maps, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *maps, "--quiet")
    assert code == 0, err
    rows = table(out)
    assert rows["basins at 1x alpha unit"] == ("10", "10")
    assert rows["basins at 3x alpha unit"] == ("5", "9")
    assert rows["basins at 10x alpha unit"] == ("2", "8")
    assert rows["barrier height median (kT)"] == ("2.5", "0.5")
    assert rows["funnel score"] == ("0.90 (a funnel)", "0.10 (no funnel)")
    assert rows["spurious share (minima; chains)"] == ("60%; 82%", "0%; 0%")
    assert rows["spurious: off the data"] == ("6 (60%)", "0 (0%)")
    assert rows["check verdict"] == ("no checkpoint to check", "no checkpoint to check")
    assert out.splitlines()[0].split() == ["A", "B"]
    assert "A has the higher funnel score" in out and "B has more basins" in out
    picture = tmp_path / "compare_A_vs_B.png"
    assert f"picture: {picture.name}" in out and picture.read_bytes()[:8] == PNG
    before = picture.read_bytes()
    # a rerun compares again and keeps the earlier figure at its default name, with a note
    code, again, err = run(capsys, *maps, "--quiet")
    assert code == 0, err
    assert table(again) == rows and "picture: compare_A_vs_B.png (kept from an earlier compare)" in again
    assert err.strip() == ("note: compare_A_vs_B.png exists from an earlier compare: it is kept, not redrawn "
                           "(--force redraws it, --out names another)")
    code, said, err = run(capsys, *maps, "--quiet", "--json")
    assert code == 0 and json.loads(said)["picture"] is None, err  # (none drawn this time)
    later = picture.stat().st_mtime + 10  # (map A made again since: the figure may show the earlier one)
    os.utime(maps[0], (later, later))
    code, _, err = run(capsys, *maps, "--quiet")
    assert code == 0 and f"kept, not redrawn, though {maps[0].name} changed since it was drawn: it may show the " \
                         "earlier file (--force" in err, err
    assert picture.read_bytes() == before
    # one named with --out that exists is refused, and left as it was
    code, _, err = run(capsys, *maps, "--quiet", "--out", picture)
    assert_one_line_error(code, err, r"^error: \S*compare_A_vs_B.png exists: pass --force")
    assert picture.read_bytes() == before
    code, _, err = run(capsys, *maps, "--quiet", "--force", "--names", "base,tuned")
    assert code == 0, err
    assert (tmp_path / "compare_base_vs_tuned.png").exists()


def test_json_holds_both_profiles_rows_and_verdicts(maps, tmp_path, capsys):
    out_png = tmp_path / "cmp.png"
    code, out, err = run(capsys, *maps, "--json", "--names", "base,tuned", "--out", out_png, "--quiet")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["names"] == ["base", "tuned"]
    assert payload["profiles"]["base"]["levels"] == [[1.0, pytest.approx(0.2), 10], [3.0, pytest.approx(0.6), 5],
                                                     [10.0, pytest.approx(2.0), 2]]
    assert payload["profiles"]["tuned"]["funnel"]["score"] == pytest.approx(0.1)
    assert payload["profiles"]["base"]["diagnosis"]["share_minima"] == pytest.approx(0.6)
    rows = {r[0]: r[1:] for r in payload["rows"]}
    assert rows["basins at 10x alpha unit"] == ["2", "8"]
    assert payload["verdicts"] == {"base": None, "tuned": None}
    assert payload["picture"] == str(out_png) and out_png.read_bytes()[:8] == PNG


def test_bad_inputs_are_one_line_errors(maps, tmp_path, capsys):
    a, b = maps
    out = tmp_path / "x.png"
    code, _, err = run(capsys, a, a, "--out", out)
    assert_one_line_error(code, err, r"^error: A and B are the same file")
    code, _, err = run(capsys, a, tmp_path / "missing.pt", "--out", out)
    assert_one_line_error(code, err, r"^error: .*missing\.pt: no such file")
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    code, _, err = run(capsys, text, b, "--out", out)
    assert_one_line_error(code, err, r"^error: .*notes\.txt is neither an ebm-landscape checkpoint nor a map")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    code, _, err = run(capsys, tmp_path / "other.h5", b, "--out", out)
    assert_one_line_error(code, err, r"^error: .*other\.h5 is not an ebm-landscape map")
    code, _, err = run(capsys, a, b, "--names", "only-one", "--out", out)
    assert code == 2 and "two comma-separated names" in err
    assert not out.exists()


@pytest.mark.slow
def test_checkpoint_side_runs_the_check_and_finds_its_map(tmp_path, monkeypatch, capsys):
    from landscape.cli.train_cmd import train_cmd
    from landscape.train.checkpoint import sha256_of

    monkeypatch.chdir(tmp_path)
    ckpt = "d.pt"  # relative, as a user types it in the folder
    code = run_guarded(train_cmd, ["--preset", "digits-nonconvergent", "--out", ckpt, "--steps", "3",
                                   "--batch-size", "20", "--quiet", "--set", "model.kwargs.hidden=[16]",
                                   "--set", "sampler.steps=5"])
    capsys.readouterr()
    other = save(tmp_path / "B.h5", map_b())
    assert code == 0 and (tmp_path / ckpt).exists()
    code, out, err = run(capsys, ckpt, other, "--multiples", "1,2", "--chains", "8", "--json", "--quiet")
    assert code == 0, err
    payload = json.loads(out)
    check = payload["checks"]["d"]
    assert check["n_chains"] == 8 and [s["multiple"] for s in check["stages"]["data"]][:2] == [1.0, 2.0]
    assert payload["verdicts"]["d"] in ("convergent", "non-convergent") and payload["checks"]["B"] is None
    rows = {r[0]: r[1:] for r in payload["rows"]}
    assert rows["trained regime"][0] == "non-convergent"
    assert rows["check verdict"][0] == payload["verdicts"]["d"] + " (agrees with the regime)"
    assert rows["check evidence"] == [check["explanation"], "-"]
    assert rows["minima"] == ["no map (run: landscape map d.pt)", "10"]
    assert payload["profiles"]["d"] is None

    # A map beside the checkpoint, made of it (same sha256), is its map.
    save(tmp_path / "d.h5", map_a(), {"kind": "checkpoint", "path": "d.pt", "sha256": sha256_of(tmp_path / ckpt)})
    code, out, err = run(capsys, ckpt, other, "--no-check", "--force", "--quiet")
    assert code == 0, err
    rows = table(out)
    assert rows["basins at 3x alpha unit"] == ("5", "9")
    assert rows["check verdict"][0] == "not run (--no-check)"
    assert rows["source"][0] == "checkpoint d.pt, map d.h5"
    # A map names its checkpoint: the map side gets the regime (and would get the check).
    code, out, err = run(capsys, "d.h5", other, "--no-check", "--force", "--quiet")
    assert code == 0, err
    assert table(out)["trained regime"] == ("non-convergent", "unknown")
    # A checkpoint and its own map are one model.
    code, _, err = run(capsys, ckpt, "d.h5", "--no-check", "--force", "--quiet")
    assert_one_line_error(code, err, r"^error: A and B have the same map")
    # A map of another model under the checkpoint's name is not its map.
    save(tmp_path / "d.h5", map_a(), {"kind": "checkpoint", "path": "d.pt", "sha256": "ab" * 32})
    code, out, err = run(capsys, ckpt, other, "--no-check", "--force", "--quiet")
    assert code == 0, err
    assert table(out)["minima"][0].startswith("no map of this checkpoint (d.h5 is of another model")


def test_a_diagnosis_of_points_says_saturation_was_not_tested_and_names_its_data():
    # (a 2-D map showed "saturated 0 (0%)", as if tested; a diagnosis against another data
    # set than the model's did not say which)
    points = map_2d()
    points.diagnosis = DiagnosisData(spurious=np.array([False, True, False, False]), nn_distance=np.linspace(0.1, 1, 4),
                                     reasons=np.array([0, 1, 0, 0], dtype=np.uint8), attrs={"dataset": "8gaussians"})
    rows = {name: (x, y) for name, x, y in compare_profiles(map_profile(points), map_profile(map_a()))}
    assert rows["spurious: saturated"] == ("not tested (not images)", "3 (30%)")
    assert rows["spurious share (minima; chains)"][0].endswith("(against 8gaussians)")


def test_caveats_say_what_a_comparison_cannot_tell(maps, tmp_path, capsys):
    # (compare of one checkpoint mapped with --alpha 2, or with another seed, said "ck1500 has
    # more top-level basins (32 vs 1)" as if the models differed; a T = 0 model's barriers
    # in "kT" were ranked against a sampling model's; 32 minima of 32 chains, one each, were
    # compared as the landscape's)
    from landscape.diagnosis.compare import caveats

    one = {"kind": "checkpoint", "path": "m.pt", "sha256": "ab" * 32}
    a = read_map(save(tmp_path / "a.h5", map_a(), source=one, config={"seed": 0, "alpha": 0.1}))
    b = read_map(save(tmp_path / "b.h5", map_b(), source=one, config={"seed": 1, "alpha": 2.0}))
    lines = caveats(a, b, ("a", "b"))
    assert lines == ["Both maps are of one model (checkpoint sha256 abababababab): what differs comes of the maps' "
                     "settings (seed 0 vs 1; alpha 0.1 vs 2; alpha unit 0.2 vs 0.5, chosen by each map) and their random draws, not "
                     "of the model."], lines
    assert caveats(a, b, ("a", "b"), identical=True) == [] and caveats(a, None, ("a", "b")) == []
    ca, cb = read_map(maps[0]), read_map(maps[1])
    lines = caveats(ca, cb, ("A", "B"))
    assert len(lines) == 1 and lines[0].startswith("B samples at T = 0: its barriers are in units of U itself"), lines
    lone = map_a()
    lone.minima_hits = np.ones(N, dtype=np.int64)  # each chain a minimum of its own
    lone.attrs["minima"]["chains"] = N
    rings = map_2d()
    lines = caveats(read_map(save(tmp_path / "lone.h5", lone, config={"chains": 10})),
                    read_map(save(tmp_path / "r.h5", rings, config={"chains": 4, "temperature": 0.5})), ("lone", "r"))
    assert lines[0] == ("The maps were made with other settings (chains 10 vs 4; temperature default vs 0.5): counts "
                        "that follow them (minima follow the chains; basins the ladder and alpha) differ for that alone.")
    assert lines[1] == "The models are of other data (shapes (1, 8, 8) vs (2,)): their counts and barriers are not on one scale."
    assert lines[-1].startswith("lone's minima are a sample of the minima: a tenth or more of the exploration chains each "
                                "found one no other chain did (lone: 10 of 10)"), lines
    code, out, err = run(capsys, tmp_path / "a.h5", tmp_path / "b.h5", "--out", tmp_path / "c.png", "--quiet")
    assert code == 0, err
    assert "\nCaution: Both maps are of one model (checkpoint sha256 abababababab)" in out
    code, out, err = run(capsys, tmp_path / "a.h5", tmp_path / "b.h5", "--out", tmp_path / "c.png", "--quiet",
                         "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["caveats"][0].startswith("Both maps are of one model")


def test_a_map_whose_checkpoint_changed_says_so_not_not_found_or_changed(tmp_path, monkeypatch, capsys):
    from landscape.io.files import sha256_of

    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"as mapped")
    save(tmp_path / "m.h5", map_a(), source={"kind": "checkpoint", "path": "m.pt", "sha256": sha256_of(ckpt)})
    save(tmp_path / "other.h5", map_b())
    ckpt.write_bytes(b"trained further")
    code, out, err = run(capsys, tmp_path / "m.h5", tmp_path / "other.h5", "--no-check", "--json", "--quiet")
    assert code == 0, err
    source = dict((r[0], r[1]) for r in json.loads(out)["rows"])["source"]
    assert source == f"map {tmp_path / 'm.h5'} (its checkpoint m.pt is changed since the map was made (another sha256))"
    ckpt.unlink()
    code, out, err = run(capsys, tmp_path / "m.h5", tmp_path / "other.h5", "--no-check", "--json", "--quiet", "--force")
    assert dict((r[0], r[1]) for r in json.loads(out)["rows"])["source"].endswith("(its checkpoint m.pt is not found)")


def test_a_median_of_few_barriers_says_how_few():
    # ("arch64 has the higher median barrier (3.16 vs 0.753 kT)": its median was of one barrier)
    a, b = map_profile(map_a()), map_profile(map_b())
    b["temperature_from"] = "sampling"  # (as if B sampled at T = 1: its barriers then compare)
    a["barriers"]["count"], a["barriers"]["refined"], b["barriers"]["refined"] = 1, 1, 9  # (all refined)
    line = summarize(a, b, ("A", "B"))[-1]
    assert "A has the higher median barrier (2.5 vs 0.5 kT; of 1 and 9 barriers)" in line, line
    a["barriers"]["count"] = a["barriers"]["refined"] = 9
    assert "(2.5 vs 0.5 kT)" in summarize(a, b, ("A", "B"))[-1]


# ------------------------------------------------- what compares, and what the check asks


def test_barriers_of_a_model_at_t0_are_not_ranked_nor_set_on_one_kt_axis(maps, tmp_path):
    # ("digits_convergent has the higher median barrier (0.762 vs 0.00542 kT)", then a Caution
    # that digits_nonconvergent samples at T = 0 so barriers do not compare; the figure put
    # both CDFs on one "barrier height / kT" axis with no word of it)
    from conftest import new_axes

    from landscape.plots.compare import draw_barrier_spectra

    a, b = (map_profile(read_map(p)) for p in maps)  # A samples at T = 2, B at T = 0 (kT at T = 1)
    text = summarize(a, b, ("A", "B"))[-1]
    assert "higher median barrier" not in text, text
    assert "barrier medians not compared (B samples at T = 0: barriers in units of U, not kT)" in text, text
    ax = draw_barrier_spectra([a, b], ["A", "B"], new_axes())
    assert "units differ" in ax.get_title()
    assert "(B: / U, T = 0)" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].endswith("median 2.5 kT)") and labels[-1].endswith("median 0.5 U)"), labels
    from landscape.diagnosis.compare import unscaled_barriers

    assert unscaled_barriers(a, b, ("A", "B")) == ["B"]
    # Both maps of one model (one U): the barriers compare, and are ranked.
    one = {"kind": "checkpoint", "path": "m.pt", "sha256": "ab" * 32}
    a1, b1 = (map_profile(read_map(save(tmp_path / f"{n}.h5", m(), source=one))) for n, m in (("a", map_a),
                                                                                              ("b", map_b)))
    assert a1["sha256"] == "ab" * 32 and unscaled_barriers(a1, b1, ("A", "B")) == []
    assert "A has the higher median barrier (2.5 vs 0.5 kT" in summarize(a1, b1, ("A", "B"))[-1]
    ax = draw_barrier_spectra([a1, b1], ["A", "B"], new_axes())
    assert "units differ" not in ax.get_title() and ax.get_xlabel().startswith("barrier height / kT\n")
    # (the Caution line follows the same rule)
    from landscape.diagnosis.compare import caveats

    assert not any("T = 0" in line for line in caveats(read_map(tmp_path / "a.h5"), read_map(tmp_path / "b.h5"),
                                                       ("A", "B")))


def test_the_barrier_spectrum_says_how_many_barriers_are_at_refined_saddles(tmp_path):
    # (compare's spectrum of the digits maps was 28 of 194 and 16 of 35 barriers at refined
    # saddles, the rest straight-line estimates, and neither the table nor the figure said so)
    from conftest import new_axes

    from landscape.plots.compare import draw_barrier_spectra

    w, a = map_profile(read_map(save_2d(tmp_path / "w.h5"))), map_profile(map_a())  # (W at T = 0.5)
    # map_2d: pairs (0, 1) and (1, 2) at refined saddles (1.5, 2.08 above the higher minimum),
    # (2, 3) at its estimate (the saddle lies far above it): 3.
    rows = {label: (va, vb) for label, va, vb in compare_profiles(w, a)}
    assert rows.get("of which at refined saddles") == (
        "2 of 3 (median 3.58 kT); the other 1 estimate (median 6 kT)", "none of 9 (all estimates)"), rows
    assert w["barriers"]["at_refined"] == [True, True, False] and w["barriers"]["refined"] == 2
    assert a["barriers"]["refined"] == 0 and a["barriers"]["at_refined"] == [False] * 9  # (no saddle refined)
    text = summarize(a, w, ("A", "W"))[-1]
    assert "W has the higher median barrier (4.16 vs 2.5 kT; 2 of 3 and 0 of 9 barriers at refined saddles, " \
           "the others estimates)" in text, text
    ax = draw_barrier_spectra([w, a], ["W", "A"], new_axes())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["W (3, 2 refined; median 4.16 kT)", "W, refined only (median 3.58 kT)",
                      "A (9, all estimates; median 2.5 kT)"], labels
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", "--", "-"]


def test_compare_runs_the_check_with_the_settings_of_landscape_check(maps, tmp_path, monkeypatch, capsys):
    # (compare checked with 64 chains per start, check with 100: the same model got another
    # verdict line from each, 2.7x against 2.4x, since the check's yardsticks follow the
    # number of chains)
    import inspect
    from types import SimpleNamespace

    import landscape.train.check as check_module
    import landscape.train.checkpoint as checkpoint_module
    from landscape.cli.check_cmd import check_cmd
    from landscape.errors import LandscapeError

    real = check_module.convergence_check
    asked = []

    def record(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        asked.append({k: v for k, v in bound.arguments.items() if k not in ("checkpoint", "progress")})
        raise LandscapeError("stopped by the test")

    ckpt = {"regime": "convergent", "sampler": {"steps": 5}}
    monkeypatch.setattr(check_module, "convergence_check", record)
    monkeypatch.setattr(checkpoint_module, "load_checkpoint", lambda path, *a, **k: ckpt)
    monkeypatch.setattr(checkpoint_module, "energy_from_checkpoint",
                        lambda path, *a, **k: (SimpleNamespace(shape=(1, 8, 8)), ckpt))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.pt").write_bytes(b"a checkpoint")
    code, _, err = run(capsys, "m.pt", maps[1], "--quiet", "--device", "cpu")
    assert code == 1 and "stopped by the test" in err, err
    code = run_guarded(check_cmd, ["m.pt", "--quiet", "--device", "cpu"])
    capsys.readouterr()
    assert code == 1 and len(asked) == 2
    compared, checked = asked
    assert compared == checked, (compared, checked)
    assert compared["n_chains"] == 100 and compared["multiples"] == (1.0, 3.0, 10.0, 30.0)


def test_points_that_drain_flat_do_not_make_a_map_a_sample():
    # Six minima, five found by one chain each, but four of them drain into the other two
    # with no barrier (points along a plateau): two states, each found by three chains or
    # more. Counted by minima the maps were "a sample"; by states they are not.
    from landscape.diagnosis.compare import caveats

    def drained(hits):
        return build_map(np.arange(12, dtype=np.float32).reshape(6, 2), [0.0, 0.5, 0.7, 1.0, 1.2, 1.4],
                         [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], [0.5, 0.7, 3.0, 1.2, 1.4], hits=hits,
                         attrs={"minima": {"chains": int(sum(hits))}})

    flat = drained([1, 1, 1, 3, 1, 1])
    assert not any("a sample" in line for line in caveats(flat, drained([1, 1, 1, 3, 1, 1]), ("a", "b")))
    lines = caveats(flat, drained([1, 0, 0, 1, 0, 0]), ("a", "b"))  # (b: each state found once)
    assert lines[-1].startswith("b's minima are a sample of the minima: a tenth or more of the exploration chains each "
                                "found one no other chain did (b: 2 of 2)"), lines

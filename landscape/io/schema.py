"""The map file's schema, declared once: every dataset, its dtype, shape and meaning.

The writer and the reader (:mod:`landscape.io.mapfile`) take dtypes, which datasets are
required, and each dataset's ``description`` and ``units`` attributes from :data:`DATASETS`;
``landscape info --datasets`` prints it; ``docs/map-schema.md`` is generated from it
(:func:`markdown`, checked by the tests). Shapes name their dimensions:

- ``N`` minima, ``B`` basins of the main level, ``B_k`` basins of level ``k``, ``E`` minima
  pairs with a barrier, ``N-1`` merges of the tree, ``P`` points per refined path;
- ``K`` noise levels, ``C`` chains per noise level, ``S`` sinks recorded per level;
- ``G`` grid points per axis; ``*shape`` the shape of one example.

Schema 2 (this one) puts every minimum in the tree as a leaf. Schema 1 maps (a tree over
the basins of one magnetization) are still read (:func:`landscape.io.mapfile.read_map`).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA = "ebm-landscape/map"
SCHEMA_VERSION = 2
#: The dtype of points in data space: float32, or float64 in a map made in float64 (its
#: minima and saddles where the mapping found them, not rounded to float32: near x = 1000
#: float32 steps by 6e-5).
COORDINATES = "float32 or float64"


@dataclass(frozen=True)
class Dataset:
    """One dataset of the schema.

    ``path`` is relative to the file's root; ``<k>`` stands for a level's index.
    ``group``: the optional part it belongs to (None: always present when ``required``).
    """

    path: str
    dtype: str
    shape: str
    description: str
    units: str = ""
    required: bool = True
    group: str | None = None


DATASETS: tuple[Dataset, ...] = (
    Dataset("minima/x", COORDINATES, "[N, *shape]", "local minima: quenched end points of the exploration chains",
            "data space"),
    Dataset("minima/energy", "float64", "[N]",
            "energy U of each minimum, lowest first (minima a funnel probe added follow, sorted among themselves); "
            "sorted by the energy rounded to a multiple of the /tree attr flat_atol, the map's energy tie, so "
            "energies closer than that may stand in either order",
            "energy"),
    Dataset("minima/hits", "int64", "[N]", "exploration chains that ended in each minimum (0 for minima a funnel probe added)", "chains"),
    Dataset("minima/basin", "int64", "[N]", "basin of each minimum at the main level (index into /basins)"),
    Dataset("basins/representative", "int64", "[B]", "index into /minima of each basin's lowest minimum"),
    Dataset("basins/energy", "float64", "[B]", "energy of each basin's lowest minimum, ascending (ties as in /minima/energy)",
            "energy"),
    Dataset("barriers/pairs", "int64", "[E, 2]", "minima pairs whose barrier was estimated (i < j, indices into /minima)"),
    Dataset("barriers/energy", "float64", "[E]",
            "estimate: the highest energy on the best path found between the pair (a straight segment's maximum, "
            "or an attraction-diffusion chain's highest sampled point, raised to the top of the polyline through its "
            "recorded points where the tree rests on it); +inf where none was found. It can lie a little below the "
            "pair's higher minimum (float32 rounding, or a chain that arrived without climbing): the tree reads it "
            "as that minimum's energy", "energy"),
    Dataset("barriers/refined", "float64", "[E]",
            "string-method saddle energy between the pair; NaN where not refined. The tree takes it unless it lies "
            "above the estimate by more than 5 % (straight-segment estimate: alpha NaN) or 25 % (a chain's: alpha "
            "set) of the estimate's height above the pair's higher minimum, plus 1e-6 of the estimate's absolute value: the string "
            "went over a higher pass, and the tree keeps the estimate (attr refined_above_estimate counts them)",
            "energy"),
    Dataset("barriers/alpha", "float64", "[E]",
            "pull of the attraction-diffusion chain behind the estimate; NaN for a straight-segment estimate",
            "1 / distance in data space: alpha multiplies the distance ‖x - b‖ in U / T_AD + alpha ‖x - b‖, whose "
            "U / T_AD has no unit"),
    Dataset("barriers/source", "uint8", "[E]",
            "where the pair came from, flags: value 1 a nearest neighbour in space, value 2 attraction-diffusion "
            "connected it (3: both; /barriers/alpha says whether the estimate is that chain's)"),
    Dataset("barriers/saddle_point", "bool", "[E]",
            "true where /barriers/refined is the energy of a saddle point: where the barrier lies on the refined "
            "path (its climbing image, or its polyline's top), the gradient vanishes to within what a Newton step "
            "would move the energy by, 0.1 % of the barrier's height (exact Hessian-vector products; energies "
            "without second derivatives: the string's own gradient test); false where it does not (on "
            "piecewise-linear networks the gradient vanishes nowhere: still a real path's top, an upper bound on "
            "the barrier), or not refined; absent in maps of earlier versions", required=False, group="barriers"),
    Dataset("tree/linkage", "float64", "[N-1, 4]",
            "scipy linkage over the minima (leaves in /minima order), one row per merge, lowest first: columns 0 and 1 "
            "the two nodes it joins (node i < N is minimum i, node N + k the merge of row k), column 2 its barrier "
            "minus the attr energy_offset (so scipy accepts it as stored), column 3 the minima below it",
            "column 2: energy (columns 0, 1: node ids; 3: a count)"),
    Dataset("tree/barrier", "float64", "[N-1]", "absolute barrier energy of each merge; +inf where not connected",
            "energy"),
    Dataset("tree/connected", "bool", "[N-1]",
            "false where no path was found between the two sides (the merge is drawn above everything: its "
            "linkage height is a placeholder above every finite one)"),
    Dataset("tree/refined", "bool", "[N-1]", "true where the merge's height is a string-method saddle"),
    Dataset("tree/pair", "int64", "[N-1]", "row of /barriers whose barrier made the merge; -1 where not connected"),
    Dataset("tree/saddle", COORDINATES, "[N-1, *shape]",
            "where each refined merge's barrier lies (U there is /tree/barrier): the refined path's saddle image, or "
            "the top of the path between its images where that is higher; NaN elsewhere; absent in a map of one "
            "minimum (no merges)",
            "data space", required=False, group="tree"),
    Dataset("tree/path", COORDINATES, "[N-1, P, *shape]",
            "refined path of each refined merge, from the first minimum of its pair to the second, its last finite "
            "row (a shorter path is padded with NaN rows); NaN rows elsewhere. Kept "
            "within a budget of 20 million numbers: dimensions x 2 x the string's images (MapConfig.refine_images, "
            "24; a string run again has twice as many) x merges (N-1) at most, so at the default dimensions x "
            "merges up to 416,666 (784-pixel images: up to 531 merges); a funnel probe that adds minima keeps the "
            "map's. Absent above the budget, with --no-refine and in a map of one minimum", "data space", required=False, group="tree"),
    Dataset("levels/<k>/minima/basin", "int64", "[N]", "basin of each minimum at magnetization alpha_k"),
    Dataset("levels/<k>/basins/representative", "int64", "[B_k]", "index into /minima of each basin's lowest minimum"),
    Dataset("levels/<k>/basins/energy", "float64", "[B_k]", "energy of each basin's lowest minimum, ascending (ties as in "
            "/minima/energy)", "energy"),
    Dataset("grid/x", "float64", "[G]", "grid coordinates along the first axis (2-D energies)", "data space",
            required=False, group="grid"),
    Dataset("grid/y", "float64", "[G]", "grid coordinates along the second axis", "data space",
            required=False, group="grid"),
    Dataset("grid/energy", "float64", "[G, G]", "U(x[j], y[i]) at row i, column j", "energy",
            required=False, group="grid"),
    Dataset("funnel/noise", "float64", "[K]", "noise levels tau probed", "tau (absolute: --noise times its unit)",
            required=False, group="funnel"),
    Dataset("funnel/occupancy", "float64", "[K, B]", "share of chains ending in each basin, per noise level",
            required=False, group="funnel"),
    Dataset("funnel/entropy", "float64", "[K]", "entropy of each level's occupancy (attr score: the funnel score)",
            "nats", required=False, group="funnel"),
    Dataset("funnel/sinks", "int64", "[K, S]",
            "per level, the fullest basins, fullest first, taken until they hold half the chains, at most 5 (-1 "
            "padded); where the cut falls inside a group of basins of equal share, which of them are listed is only "
            "their order: the commands leave the listed members of that group out (funnel --json's sinks, with "
            "the group in sink_ties; diagnose)", required=False,
            group="funnel"),
    Dataset("funnel/occupancy_data", "float64", "[K, B]", "occupancy of the chains started from data",
            required=False, group="funnel"),
    Dataset("funnel/occupancy_noise", "float64", "[K, B]", "occupancy of the chains started from noise",
            required=False, group="funnel"),
    Dataset("funnel/chain_minimum", "int64", "[K, C]", "the minimum each chain ended in (index into /minima)",
            required=False, group="funnel"),
    Dataset("funnel/chain_start", "int8", "[C]", "where each chain started: 0 data, 1 noise", required=False,
            group="funnel"),
    Dataset("diagnosis/spurious", "bool", "[N]", "the minimum is flagged spurious", required=False, group="diagnosis"),
    Dataset("diagnosis/nn_distance", "float64", "[N]",
            "distance to the nearest training example (attrs: the data's own quantiles and the bar)", "data space",
            required=False, group="diagnosis"),
    Dataset("diagnosis/reasons", "uint8", "[N]", "bit flags: 1 off the data, 2 saturated, 4 funnel sink",
            required=False, group="diagnosis"),
    Dataset("diagnosis/nn_index", "int64", "[N]", "index of the nearest training example in the data set",
            required=False, group="diagnosis"),
    Dataset("diagnosis/saturation", "float64", "[N]", "share of pixels at the ends of the data range (images; absent for points)",
            required=False, group="diagnosis"),
)

#: Root attributes.
ROOT_ATTRS: tuple[tuple[str, str], ...] = (
    ("schema", f'"{SCHEMA}"'),
    ("schema_version", f"{SCHEMA_VERSION}"),
    ("created", "ISO 8601 time (UTC) the map was written"),
    ("updated", "ISO 8601 time (UTC) of the last change by funnel or diagnose (optional)"),
    ("tool_version", "the ebm-landscape version that wrote it (+g<commit> from a git checkout)"),
    ("source", "JSON: what was mapped (checkpoint path and sha256, or an energy spec); a record, never run"),
    ("config", "JSON: the mapping settings as given (null: chosen from the landscape)"),
    ("settings", "JSON: the settings the map chose and used (temperatures, steps, alpha unit, ...)"),
    ("seconds", "JSON: wall time per stage, stage -> seconds: minima, neighbours, basins_<k> (the "
                "attraction-diffusion of the ladder's rungs run together from rung k on: basins_0 the ladder, "
                "basins_5 say a rung added above it, basins_r0 the rungs inserted into it), refine; `landscape info "
                "--json` and `tree --json` sum the basins_<k> into one stage, basins"),
    ("ranks", "processes (torchrun ranks) of the run that made the map; 1: one process (absent in older maps)"),
    ("work_split", "JSON: how the ranks shared the work: split_from (the batch size from which that run split "
                   "each batch of energy evaluations into one slice of rows per rank; null: it split none, every "
                   "rank evaluated every batch), stages (minima, neighbours, basins, refine -> ranks: the rank "
                   "counts that worked on it, more than one where a resume ran on another count; rows_split and "
                   "rows_whole: rows of its energy evaluations split over the ranks and evaluated whole on every "
                   "rank, by runs of 2 or more ranks, null where one process did it all) (absent in older maps)"),
)

#: Group attributes (the writer may add statistics beside them).
GROUP_ATTRS: tuple[tuple[str, str], ...] = (
    ("/tree", "energy_offset: the lowest minimum energy (linkage heights are relative to it); flat_rtol: a merge "
              "less than this share of the energy's magnitude (the merge's, or the largest absolute energy of a minimum if larger) "
              "above its higher side is flat, no barrier the energy's precision resolves (1e-5 in float32, "
              "1.9e-14 in float64; 1e-5 where absent); flat_atol: a merge no more than this above its higher side "
              "is flat whatever the magnitude, the map's energy tie (grad_tol x merge_radius: what its quenches "
              "leave unresolved; 0 where absent); refined_merges, connected_merges"),
    ("/levels", "count, main (the main level's index), alpha_unit, alpha_unit_rule (what set it: barriers, spread, "
                "temperature, single, arrival or given; absent in older maps), temperature, delta, eps (of "
                "attraction-diffusion), extended (rungs added above the ladder), inserted (rungs inserted where a "
                "pull's step lost most basins at once; absent in older maps), note (what the ladder's ends leave "
                "unresolved: basins left at the strongest pull, or the weakest already joining minima across a "
                "quarter or more of the tree's barriers of 2 T_AD or more, with the `--ad-temperature` or "
                "`--ladder` to try; empty where neither), settings_rounds (2 where the "
                "refinement lowered the barriers the settings came from by more than half, and they and the "
                "ladder were chosen again; absent in older maps)"),
    ("/levels/<k>", "alpha, multiplier (alpha in alpha units), basins (their count), trials, chain_steps, batches, "
                    "seconds (of the whole batch where levels ran together: the same on each), levels_together (levels run "
                    "in one batch with it); drain_placed: minima placed without trials, draining into a lower one "
                    "with no barrier along the paths known before attraction-diffusion (absent in older maps); "
                    "failed_above: pairs of minima that placing them took as not connected without trials, as no "
                    "chain connected them at a stronger pull of the levels run together (absent in older maps); "
                    "drained: basins "
                    "emptied when every minimum that drains into a lower one with no barrier (the tree's flat merges) "
                    "was put in the basin its drainage ends in (absent in older maps); nested: minima "
                    "moved to the basin their basin's lowest minimum at the next weaker pull went to, so that "
                    "every basin of a weaker pull lies whole in one of a stronger (absent in older maps); added: "
                    "minima a funnel probe mapped into it"),
    ("/basins, /levels/<k>/basins", "count; /basins also alpha and multiplier (the main level's)"),
    ("/minima", "count, temperature, chains, rounds of the exploration, grad_norm_max (the largest gradient norm "
                "at a minimum), held_by_box (minima on the box's faces with the energy still falling beyond them), "
                "precision (warnings, one per line, where float32 does not resolve the energy's values or the box's "
                "coordinates at their magnitude; absent in older maps), "
                "data_range (the box), dataset (chains from data: its name; an empty string where none, as is an "
                "empty precision); funnel_added: "
                "minima a funnel probe appended"),
    ("/barriers", "count, neighbours (per minimum), refined, refined_above_estimate (kept at the estimate in the "
                  "tree), saddle_points (refined barriers at a saddle point: /barriers/saddle_point), retried, "
                  "strings_at_budget (the refinement's strings, over all its passes, that ran out of iterations "
                  "rather than converged or stopped moving; absent in older maps)"),
    ("/funnel", "config (JSON: the probe's settings), temperature (tau^2 per level), eps, steps, chains_per_level, "
                "new_minima and new_basins (what the probe added to the map), reference_entropy and reference (the "
                "occupancy the score compares with), score_rule, funnel_threshold, seconds, noise_unit and "
                "noise_unit_source (the unit --noise was given in, and where it came from, in words; absent in older "
                "probes)"),
    ("/diagnosis", "dataset, data_examples, rule (JSON: the thresholds, nn_quantile, nn_factor, energy_quantile, "
                   "saturation_excess, funnel_score; maps of earlier versions hold a Python dict's text, which "
                   "read_map reads), energy_bar and data_energy_q10/q50/q90 (the "
                   "data's energies), data_saturation and saturation_bar (images), off_data, saturated, sinks and "
                   "spurious (counts), reason_bits (what /diagnosis/reasons' bits mean), sink_basins (where there "
                   "are sinks)"),
)


def dataset(path: str) -> Dataset:
    """The schema entry of ``path`` (a level's path may name its index, e.g. ``levels/2/minima/basin``)."""
    parts = path.strip("/").split("/")
    if len(parts) > 1 and parts[0] == "levels" and parts[1].isdigit():
        parts[1] = "<k>"
    key = "/".join(parts)
    for entry in DATASETS:
        if entry.path == key:
            return entry
    raise KeyError(f"{path} is not in the map schema")


def markdown() -> str:
    """The schema as markdown tables (``docs/map-schema.md``)."""
    lines = [
        f"# Map file schema (`{SCHEMA}`, version {SCHEMA_VERSION})",
        "",
        "Generated from `landscape/io/schema.py` (the writer, the reader and `landscape info --datasets` use the",
        "same table). Every dataset carries its `description` (and `units`) as attributes. Shapes: `N` minima,",
        "`B` basins of the main level, `B_k` basins of level k, `E` minima pairs, `N-1` tree merges, `P` points",
        "per path, `K` noise levels, `C` chains per level, `S` sinks, `G` grid points, `*shape` one example.",
        "Points in data space (`/minima/x`, `/tree/saddle`, `/tree/path`) are float32, or float64 in a map made in",
        "float64 (`--float64`): there they keep the precision they were found to.",
        "",
        "## Root attributes",
        "",
        "| attribute | content |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {text} |" for name, text in ROOT_ATTRS]
    lines += ["", "## Datasets", "", "| dataset | dtype | shape | required | description | units |",
              "|---|---|---|---|---|---|"]
    for d in DATASETS:
        required = "yes" if d.required else f"with /{d.group}"
        lines.append(f"| `/{d.path}` | {d.dtype} | `{d.shape}` | {required} | {d.description} | {d.units} |")
    lines += ["", "## Group attributes", "", "| group | attributes |", "|---|---|"]
    lines += [f"| `{g}` | {text} |" for g, text in GROUP_ATTRS]
    lines += ["", "Schema 1 maps (whose tree's leaves are the basins of one magnetization) still open for reading;",
              "`landscape info` and `landscape tree` say so.", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # regenerate the docs: python -m landscape.io.schema > docs/map-schema.md
    print(markdown(), end="")

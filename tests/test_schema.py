"""The map schema, declared once (landscape/io/schema.py), and its generated docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape.io.schema import (
    COORDINATES,
    DATASETS,
    GROUP_ATTRS,
    ROOT_ATTRS,
    SCHEMA,
    SCHEMA_VERSION,
    dataset,
    markdown,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "map-schema.md"


def test_the_table_is_well_formed():
    paths = [d.path for d in DATASETS]
    assert len(paths) == len(set(paths))
    for d in DATASETS:
        assert d.dtype in {"float32", "float64", "int64", "int8", "uint8", "bool", COORDINATES}, d.path
        assert d.shape.startswith("[") and d.shape.endswith("]") and d.description, d.path
        # Optional datasets name the part they belong to; required ones belong to none.
        assert (d.group is None) == d.required, d.path
    required = {d.path for d in DATASETS if d.required}
    assert {"minima/x", "minima/energy", "barriers/pairs", "tree/linkage", "tree/connected",
            "levels/<k>/minima/basin"} <= required
    assert SCHEMA == "ebm-landscape/map" and SCHEMA_VERSION == 2


def test_dataset_finds_entries_by_path():
    assert dataset("minima/x").dtype == COORDINATES
    assert dataset("/tree/linkage").shape == "[N-1, 4]"
    assert dataset("levels/12/basins/energy").path == "levels/<k>/basins/energy"
    assert dataset("levels/0/minima/basin").description != dataset("minima/basin").description
    with pytest.raises(KeyError, match="not in the map schema"):
        dataset("minima/nothing")
    with pytest.raises(KeyError):
        dataset("levels/main/minima/basin")


def test_markdown_lists_every_dataset_and_attribute():
    text = markdown()
    assert text.startswith(f"# Map file schema (`{SCHEMA}`, version {SCHEMA_VERSION})")
    for d in DATASETS:
        assert f"| `/{d.path}` | {d.dtype} | `{d.shape}` |" in text, d.path
        assert d.description in text
    for name, _ in ROOT_ATTRS:
        assert f"| `{name}` |" in text
    for group, _ in GROUP_ATTRS:
        assert f"| `{group}` |" in text
    assert "Schema 1" in text and text.endswith("\n")


def test_docs_map_schema_is_generated_from_the_table():
    if not DOCS.exists():
        pytest.skip("docs/map-schema.md is not generated yet: write landscape.io.schema.markdown() to it")
    assert DOCS.read_text(encoding="utf-8") == markdown(), (
        "docs/map-schema.md is out of date: regenerate it from landscape.io.schema.markdown()"
    )


def test_the_schema_says_the_path_budget_the_units_of_alpha_and_the_linkage_and_the_stages_timed():
    from landscape.mapping.pipeline import _PATH_BUDGET
    from landscape.mapping.settings import MapConfig

    # /tree/path is kept within a budget of numbers, not "for small minima"
    path = dataset("tree/path").description
    images = MapConfig().refine_images
    assert "small minima" not in path
    assert f"{_PATH_BUDGET / 1e6:g} million numbers" in path and f"refine_images, {images}" in path
    assert f"{_PATH_BUDGET // (2 * images):,}" in path  # (dimensions x merges at the default)
    # alpha multiplies a distance and is added to U / T_AD: 1 / distance
    alpha = dataset("barriers/alpha").units
    assert alpha.startswith("1 / distance") and "T_AD *" not in alpha and "|" not in alpha
    # the linkage's energy is its column 2 only
    linkage = dataset("tree/linkage")
    assert linkage.units.startswith("column 2: energy") and "column 3" in linkage.description
    assert "|" not in linkage.units + linkage.description
    # the root attr seconds keeps basins_<k>, which info --json sums
    seconds = dict(ROOT_ATTRS)["seconds"]
    assert "basins_<k>" in seconds and "basins_0" in seconds and "sum" in seconds
    # the diagnosis rule is JSON (old maps' Python text still read)
    assert "rule (JSON" in dict(GROUP_ATTRS)["/diagnosis"]
    assert "rule (JSON" in markdown() and "20 million numbers" in markdown()

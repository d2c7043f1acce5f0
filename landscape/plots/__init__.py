"""Pictures of maps: the tree, the basins, the levels, the funnel probe."""

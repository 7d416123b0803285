"""The warehouse itself: compaction of the DuckLake on a schedule."""

"""Background work: enrichment now; consolidation and forgetting jobs build on the same runner."""

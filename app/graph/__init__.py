"""Memory graph: enrichment (keywords, entities, times), the linker, and traversal."""

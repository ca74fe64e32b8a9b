"""Fine-mode retrieval: the fusion of dense, BM25, SPLADE, time and graph channels over a cube's indexes."""

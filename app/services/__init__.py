"""Use cases. Each public method owns its transaction; the FAISS index is touched only after commit."""

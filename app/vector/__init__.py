"""Embeddings and the FAISS index derived from Postgres."""

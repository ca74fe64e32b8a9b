"""Activation memory: KV caches of rendered prefixes, kept in GPU / CPU / disk tiers and reused at generation.

``model`` loads the causal LM behind a small protocol, ``fingerprint`` names exactly which model (and
tokenizer and dtype) a cache belongs to, ``kv`` moves caches between precisions and devices, ``store`` keeps
them in budgeted tiers, and ``generate`` runs the decoding loop that reuses them.
"""

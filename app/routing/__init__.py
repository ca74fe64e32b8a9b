"""Budget-tier routing (issue 10): memory processing as modules (retrieval, context assembly, extraction at
write, answer), each offered in Low / Mid / High tiers that report their own cost, a query-aware policy that
picks a tier per module (``policy``, trained by ``train``), a semantic result cache, and budget checks.
"""

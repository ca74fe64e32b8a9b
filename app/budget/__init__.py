"""Budget-tier routing policy: the tiers each module offers, how a request's budget narrows them, the query features,
the rules and the learned router that pick a tier, the semantic result cache and the routing stats. Pure policy:
nothing here calls a service; the tiers themselves run in ``app.services.routing``."""

"""Budget-tier routing as a use case: ``RoutingService`` (search, context, answer under a budget) and the tier
implementations of each module (retrieval, context assembly, extraction at write, answer)."""

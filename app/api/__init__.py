"""HTTP layer: thin routes, auth dependencies, and the one mapping of domain errors to HTTP."""

"""SQL only: each function takes a Session and neither commits nor knows about HTTP."""

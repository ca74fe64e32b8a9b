"""One lock around every model load in the process.

transformers builds a model on the meta device, through process-wide patches, while it loads weights; two loads at
once (SPLADE for enrichment while a search, the generation model or a distillation loads another) can leave the
second model's tied weights on the meta device, and every later forward pass fails with "Tensor on device meta is
not on the expected device cpu". Loads are rare and short next to the process's life, so they simply take turns.
"""

from __future__ import annotations

import threading

LOADING = threading.RLock()  # re-entrant: a conversion loads a model while another load holds it

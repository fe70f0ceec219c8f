"""One compatibility point per upstream library.

Every name the project takes from an upstream library that has changed, or may,
is resolved here — by feature detection on the object at hand, never by a
version string — so a rename upstream is one edit in one file:

* :mod:`.transformers` — how a causal LM takes and returns its KV cache, the
  cache's own methods, the generation config's resolved special tokens;
* :mod:`.diffusers` — scheduler and guider attributes the interop reads;
* :mod:`.torchdiffeq` — the solver registry;
* :mod:`.onednn` — torch's internal oneDNN matrix product, probed before use.

Lightning's hooks are resolved in :mod:`unified_guidance.training.compat` (only
``training/`` imports lightning). ``make test-latest`` runs the suite on the newest
releases, so the next rename shows up there before users meet it.
"""

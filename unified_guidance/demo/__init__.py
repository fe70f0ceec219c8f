"""The demo behind ``unified-guidance demo``: the guidance dial on real digits, as a report with figures.

:func:`~.run.run_demo` trains (or loads) each paradigm through its runner
(:mod:`.runners`), samples the sweep of :mod:`.sweep` through ``Trainer.predict``,
measures each setting (:mod:`.evaluate`), draws :mod:`.figures` and writes
:mod:`.report` atomically (:mod:`.io`); :mod:`.cli` is the console script.

An application on top of the library's public API, its top layer: nothing in the library
imports it, and it imports no private name (docs/demo.md, "Where the demo lives"). Imported
lazily: ``import unified_guidance`` does not load it.
"""

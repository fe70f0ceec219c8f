"""The demo behind ``unified-guidance demo``: the guidance dial on real digits, as a report with figures.

:func:`~.run.run_demo` trains (or loads) each paradigm through its runner
(:mod:`.runners`), samples the sweep of :mod:`.sweep` through ``Trainer.predict``,
measures each setting (:mod:`.evaluate`), draws :mod:`.figures` and writes
:mod:`.report` atomically (:mod:`.io`). Imported lazily: ``import unified_guidance``
does not load it.
"""

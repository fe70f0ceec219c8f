"""The LightningCLI recipes, shipped with the package: one module per paradigm and its YAML.

``python -m unified_guidance.recipes.train_diffusion fit`` (``train_flow``,
``train_autoregressive``), or the console scripts ``ug-train-diffusion``,
``ug-train-flow``, ``ug-train-autoregressive``. The top layer: nothing in the package
imports it.
"""

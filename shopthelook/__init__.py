"""Shop The Look: the top of the house and the ground beneath it.

``shopthelook.core`` is the ground every stage stands on (settings, types, errors, images,
taxonomy, datasets). The stages are the top-level packages ``detector``, ``embedder``,
``catalog``, ``ranker`` and ``web``. This package's own modules sit above them: the
``ShopTheLook`` pipeline (``shopthelook.pipeline``), the batch and Dask jobs, evaluation, and
the CLI (``shopthelook.cli``, ``shopthelook.commands``). See ARCHITECTURE.md.
"""

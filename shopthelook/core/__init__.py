"""The ground under every stage: settings, shared types, errors, safe image reading, the
catalog taxonomy, table readers, dataset adapters and the shared YOLO network.

Nothing here imports a stage (detector, embedder, catalog, ranker, web) or the pipeline;
import-linter keeps it so.
"""

"""Training machinery (layer between the torch modules and the AnnData-facing tools).

The sentence-transformers Trainer subclass, the frozen-text caption cache, callbacks, checkpoints,
what ``mmc.tl.train`` reads from a built dataset, and the fit loops of the classifier head and the
reranker. Nothing here writes into an AnnData; ``mmc.tl`` calls it.
"""

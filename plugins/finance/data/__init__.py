"""Finance data: records, dataset loaders, splits, synthetic statements, corpora for text adaptation."""

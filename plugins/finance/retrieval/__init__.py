"""Evidence retrieval: the ranker of a report's sentences and rows, and its logistic model."""

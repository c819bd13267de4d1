"""The program generator: inputs, model, training, decoding, weak-label search and beam re-ranking."""

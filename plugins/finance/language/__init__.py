"""The FinQA program language: expressions, the executor, programs, number parsing."""

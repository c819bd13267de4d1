"""Financial question answering over tables and text: FinQA, TAT-QA and ConvFinQA."""

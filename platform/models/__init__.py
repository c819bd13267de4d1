"""Pretrained models by reference: a Hugging Face id, a local folder, or a packaged offline model."""

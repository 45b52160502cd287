"""Answer generators: local Hugging Face models and OpenAI-compatible APIs."""

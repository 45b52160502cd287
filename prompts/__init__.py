"""Prompt templates, exact token counting and the context-window budget."""

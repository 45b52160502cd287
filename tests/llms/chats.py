"""Chats the tests send to the models."""

from __future__ import annotations

from llms.base import Message

CHAT: list[Message] = [{"role": "user", "content": "What is the capital of France?"}]
POEM: list[Message] = [
    {"role": "system", "content": "You are a poet."},
    {"role": "user", "content": "Write a poem about the sea."},
]
STORY: list[Message] = [{"role": "user", "content": "Tell me a long story about a dragon."}]

"""Session summaries: extractive without an LLM, written by the configured one otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.config import Settings
from app.llm import chat
from app.memory.text import SENTENCE, content_words, indexed_text
from app.models import Memory


class Summariser:
    """Session summaries: the most central turns (extractive), or an OpenAI-compatible chat model."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sentences = settings.summary_sentences

    @property
    def configured(self) -> bool:
        return self.settings.llm_base_url is not None

    def extractive(self, turns: Sequence[Memory]) -> str:
        vecs = np.stack([np.frombuffer(t.embedding, dtype=np.float32) for t in turns])
        centroid = vecs.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        length = np.array([min(1.0, len(content_words(t.content)) / 12) for t in turns])
        score = vecs @ centroid + 0.3 * length  # central and informative; chit-chat is short
        top = sorted(np.argsort(-score)[: self.sentences].tolist())
        parts = []
        for i in top:
            text = " ".join(SENTENCE.split(indexed_text(turns[i].content, turns[i].meta).strip())[:2])
            parts.append(text if len(text) <= 300 else text[:297] + "...")
        return " ".join(parts)

    def llm(self, turns: Sequence[Memory]) -> str:
        transcript = "\n".join(indexed_text(t.content, t.meta) for t in turns)[:24_000]
        text, _ = chat(self.settings, self.settings.llm_model, [
            {"role": "system", "content": "Summarise this conversation session in at most "
                                          f"{self.sentences} sentences of durable facts: who did what, when, "
                                          "preferences, plans. Name people. No preamble."},
            {"role": "user", "content": transcript},
        ])
        if not text:
            raise ValueError("the LLM returned an empty summary")
        return text[:4000]


def summariser_from(settings: Settings) -> Summariser:
    return Summariser(settings)

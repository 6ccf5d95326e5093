"""A conversation: what a tuning example and a chat request are made of.

A :class:`Conversation` is an optional system instruction and ordered :class:`Turn` s, each a
``user`` or ``model`` turn (Google's role names; OpenAI's ``assistant`` is ``model`` here) with
its text. A model turn may carry a ``weight``: 1 learn from this turn, 0 do not (OpenAI's
per-message ``weight``); ``None`` is the default, learn. The old single-turn example
(``text_input`` → ``output``) is the simplest conversation, :meth:`Conversation.single`.

This module only holds the data and its JSON form (Google's ``contents`` shape). The rules a
conversation must pass (roles in order, limits) live in :mod:`tunesmith.data`; how it becomes
a model's tokens lives in :mod:`tunesmith.engine.prompting`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

USER = "user"
MODEL = "model"
ROLES = (USER, MODEL)


@dataclasses.dataclass(frozen=True)
class Turn:
    role: str
    """``user`` or ``model``."""
    text: str
    weight: int | None = None
    """Model turns only: 1 learn from this turn, 0 do not; None: the default (learn)."""


@dataclasses.dataclass(frozen=True)
class Conversation:
    turns: tuple[Turn, ...]
    system_instruction: str = ""

    def __init__(self, turns: Iterable[Turn], system_instruction: str | None = ""):
        object.__setattr__(self, "turns", tuple(turns))
        object.__setattr__(self, "system_instruction", system_instruction or "")

    @classmethod
    def single(cls, text_input: str, output: str) -> Conversation:
        """The old single-turn example: one user turn, one model turn."""
        return cls((Turn(USER, text_input), Turn(MODEL, output)))

    @classmethod
    def ask(cls, text: str) -> Conversation:
        """A one-turn request for generation (a plain prompt)."""
        return cls((Turn(USER, text),))

    @property
    def is_single(self) -> bool:
        """One user turn then one model turn, and no system instruction: the shape of an old
        ``text_input`` / ``output`` example."""
        return (
            not self.system_instruction
            and len(self.turns) == 2
            and self.turns[0].role == USER
            and self.turns[1].role == MODEL
        )

    def learns_from(self, index: int) -> bool:
        """Whether training puts loss on turn ``index`` (a model turn not weighted out)."""
        turn = self.turns[index]
        return turn.role == MODEL and turn.weight != 0

    def last_turn_only(self) -> Conversation:
        """The same conversation learning from its last model turn only."""
        last = max((i for i, t in enumerate(self.turns) if t.role == MODEL), default=-1)
        turns = [
            dataclasses.replace(t, weight=0 if i != last else t.weight) if t.role == MODEL else t
            for i, t in enumerate(self.turns)
        ]
        return Conversation(turns, self.system_instruction)

    def messages(self) -> list[dict[str, str]]:
        """The turns as chat-template messages (``system`` / ``user`` / ``assistant``)."""
        out = [{"role": "system", "content": self.system_instruction}]
        out = out if self.system_instruction else []
        for t in self.turns:
            out.append({"role": "assistant" if t.role == MODEL else "user", "content": t.text})
        return out

    def to_json(self) -> dict:
        """Google's shape: ``{"systemInstruction": {"parts": [{"text"}]}, "contents": [{"role",
        "parts": [{"text"}], "weight"?}]}`` (``weight`` is tunesmith's, only where set)."""
        contents = []
        for t in self.turns:
            content: dict = {"role": t.role, "parts": [{"text": t.text}]}
            if t.weight is not None:
                content["weight"] = t.weight
            contents.append(content)
        out: dict = {"contents": contents}
        if self.system_instruction:
            out["systemInstruction"] = {"parts": [{"text": self.system_instruction}]}
        return out

    @classmethod
    def from_json(cls, value: dict) -> Conversation:
        """The inverse of :meth:`to_json`, for values this module wrote (no checking: data
        from outside goes through :mod:`tunesmith.data`)."""
        system = value.get("systemInstruction") or {}
        return cls(
            (
                Turn(c["role"], "".join(p["text"] for p in c["parts"]), c.get("weight"))
                for c in value["contents"]
            ),
            "".join(p["text"] for p in system.get("parts", ())),
        )


__all__ = ["MODEL", "ROLES", "USER", "Conversation", "Turn"]

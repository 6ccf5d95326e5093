"""One rule for turning a conversation into the model's tokens, used by training and generation
alike (a tuned model must see at serving time what it saw in training).

A conversation is cut into *segments* of text, each either learned from (a model turn's text
plus its end-of-turn token, when the turn is weighted in) or not (everything else: the system
instruction, user turns, the template's role markers). Each segment is tokenised on its own and
the ids are joined, so a learned segment's tokens are exactly its text's tokens, and the prompt
that generation tokenises is, token for token, the prefix that training saw.

How the segments are made, in order of preference:

1. **The one-turn template** (``{input}``): a single user turn then a model turn, with no
   system instruction, renders as ``template`` with the user text in place of ``{input}``,
   then the answer and the end-of-sequence token. The template is the base model's configured
   ``prompt_template``, or the base tokenizer's chat template rendered for one user turn, or
   ``"{input}\\n"``; a tuned model keeps the one it learned beside its adapter
   (``tunesmith_prompt.json``). This is the old ``text_input`` / ``output`` rule, unchanged.
2. **The base's chat template** (``tokenizer.apply_chat_template``) for every other
   conversation: system instruction as a ``system`` message, model turns as ``assistant``.
   A model turn's segment starts where the template's generation prompt for it ends, and
   covers its text and the special token the template puts right after it (its end of turn).
3. **The plain format**, for bases without a chat template: rule 1's template for each user
   turn, so with the default template ``"{input}\\n"``::

       {system instruction}\\n\\n        (when there is one)
       {user text}\\n                    (each user turn: the template with its text)
       {model text}{eos}                (each model turn)

   A single turn without a system instruction is then ``{input}\\n{output}{eos}``, rule 1's
   own rendering. Exports carry these rules as a Jinja chat template
   (:mod:`.export.templates`), so other runtimes render conversations as training did.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidArgument
from ..records.conversations import MODEL, Conversation

_FORMAT_FILE = "tunesmith_prompt.json"
IGNORE = -100
"""The label of a token that is not learned from (PyTorch's cross-entropy ignore index)."""

Segments = list[tuple[str, int | None]]  # (text, the model turn it is, or None)


class PromptFormat:
    """``template`` has one ``{input}``; the target is the output plus ``eos``."""

    def __init__(self, template: str | None, tokenizer):
        self.chat = bool(getattr(tokenizer, "chat_template", None))
        if template is None:
            if self.chat:
                marker = "\x00INPUT\x00"
                template = tokenizer.apply_chat_template(
                    [{"role": "user", "content": marker}],
                    tokenize=False,
                    add_generation_prompt=True,
                ).replace(marker, "{input}")
            else:
                template = "{input}\n"
        self.template = template
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token or ""

    def prompt(self, text_input: str) -> str:
        return self.template.replace("{input}", text_input)

    def target(self, output: str) -> str:
        return output + self.eos

    # -- conversations ----------------------------------------------------------------

    def segments(self, conv: Conversation) -> Segments:
        """The conversation as segments: (text, index of the model turn it holds) or (text,
        None) for everything between model turns. A conversation that ends on a user turn
        ends with the prompt for the model's answer (what generation sends). Where segments
        start and end does not depend on weights, so training and serving cut alike."""
        ask = conv.turns[-1].role != MODEL
        if conv.is_single or (ask and len(conv.turns) == 1 and not conv.system_instruction):
            segments: Segments = [(self.prompt(conv.turns[0].text), None)]
            if not ask:
                segments.append((self.target(conv.turns[1].text), 1))
            return segments
        if self.chat:
            return self._chat_segments(conv, ask)
        return self._plain_segments(conv, ask)

    def encode(self, conv: Conversation, max_len: int) -> tuple[list[int], list[int]]:
        """Token ids and labels for training: only learned segments are targets (other
        labels are -100). Too long: the end is kept (the last answer), the start cut."""
        ids: list[int] = []
        labels: list[int] = []
        for text, turn in self.segments(conv):
            piece = self._ids(text)
            ids += piece
            learned = turn is not None and conv.learns_from(turn)
            labels += piece if learned else [IGNORE] * len(piece)
        if len(ids) > max_len:
            ids, labels = ids[-max_len:], labels[-max_len:]
        return ids, labels

    def prompt_ids(self, conv: Conversation) -> list[int]:
        """The token ids generation sends: the same segments as training, up to the point
        where the model's answer begins."""
        return [i for text, _turn in self.segments(conv) for i in self._ids(text)]

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _render(self, messages, generation_prompt: bool) -> str:
        try:
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt
            )
        except Exception as e:  # jinja's TemplateError: the template refuses this shape
            raise InvalidArgument(
                f"the base model's chat template cannot render this conversation: {e}"
            ) from None

    def _chat_segments(self, conv: Conversation, ask: bool) -> Segments:
        messages = conv.messages()
        offset = len(messages) - len(conv.turns)  # 1 with a system message
        full = self._render(messages, ask)
        specials = sorted(
            {*self.tokenizer.all_special_tokens, *self.tokenizer.get_added_vocab()},
            key=len,
            reverse=True,
        )
        segments: Segments = []
        pos = 0
        for i, turn in enumerate(conv.turns):
            if turn.role != MODEL:
                continue
            before = self._render(messages[: offset + i], True)
            start = full.find(turn.text, len(before)) if full.startswith(before) else -1
            if start < 0:
                raise InvalidArgument(
                    "the base model's chat template renders model turns in a way tunesmith "
                    "cannot follow (a turn's text is not where its generation prompt ends)"
                )
            end = start + len(turn.text)
            eot = next((s for s in specials if s and full.startswith(s, end)), "")
            segments.append((full[pos:start], None))
            segments.append((full[start : end + len(eot)], i))
            pos = end + len(eot)
        if ask:
            segments.append((full[pos:], None))
        return _merged(segments)

    def _plain_segments(self, conv: Conversation, ask: bool) -> Segments:
        prefix, _, suffix = self.template.partition("{input}")
        segments: Segments = []
        if conv.system_instruction:
            segments.append((conv.system_instruction + "\n\n", None))
        for i, turn in enumerate(conv.turns):
            if turn.role == MODEL:
                segments.append((turn.text + self.eos, i))
            else:
                segments.append((prefix + turn.text + suffix, None))
        return _merged(segments)

    def save(self, folder: Path) -> None:
        """Kept beside an adapter so a tuned model is served with the format it learned."""
        (folder / _FORMAT_FILE).write_text(json.dumps({"template": self.template}))

    @classmethod
    def load(cls, folder: Path, tokenizer) -> PromptFormat | None:
        path = folder / _FORMAT_FILE
        if not path.is_file():
            return None
        return cls(json.loads(path.read_text())["template"], tokenizer)


def _merged(segments: Segments) -> Segments:
    """Neighbouring segments between model turns joined into one piece, empty ones dropped."""
    out: Segments = []
    for text, turn in segments:
        if not text:
            continue
        if out and out[-1][1] is None and turn is None:
            out[-1] = (out[-1][0] + text, None)
        else:
            out.append((text, turn))
    return out

"""Training files (OpenAI's ``/files``): upload, list, read, delete, and their examples.

A file belongs to the caller who uploaded it; another caller is told it does not exist. The
bytes live under :attr:`Settings.files_dir` named by the id (never by user text) and are
removed from disk when the file is deleted. A training file is JSONL, each line an OpenAI chat
row (``{"messages": [...]}``) or a prompt/completion row (``{"prompt", "completion"}``): it
is checked as it is uploaded (errors name the line) by :func:`training_examples`, the one
reading of such a file (the fine-tuning service reads it again at job creation).
"""

from __future__ import annotations

import os
import re
import secrets
import string

from .. import data
from ..errors import InvalidArgument
from ..records.conversations import Conversation
from ..settings import Settings
from ..store import Store, utcnow
from ..store.files import FileStore, StoredFile
from ..types import TuningExample
from .access import Caller, as_caller

PURPOSES = ("fine-tune",)
FILE_PREFIX = "file-"
MAX_FILENAME = 256
_ALPHABET = string.ascii_lowercase + string.digits


def training_examples(content: bytes, field: str) -> list[TuningExample | Conversation]:
    """The examples of a JSONL training file (chat rows or prompt/completion rows), validated;
    InvalidArgument naming ``field`` and the line otherwise."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidArgument(f"{field}: not UTF-8 text (byte {e.start})") from None
    # Lines and rows agree when no line is blank; blank lines are skipped in both, so name
    # rows by the line they came from.
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    try:
        examples = data.parse_file_text(text, "jsonl", "prompt", "completion", field=field)
        data.validate_examples(examples, field=field)
    except InvalidArgument as e:
        raise InvalidArgument(_row_to_line(e.message, field, lines)) from None
    return examples


def _row_to_line(message: str, field: str, lines: list[int]) -> str:
    """``FIELD row N: ...`` (the parser counts rows) or ``FIELD line N: ...`` as
    ``FIELD, line L: ...``, L the file's line (OpenAI's errors name the field first)."""
    m = re.match(rf"^{re.escape(field)} (row|line) ([0-9]+)", message)
    if not m:
        return message
    n = int(m.group(2))
    if m.group(1) == "row":
        if not 1 <= n <= len(lines):
            return message
        n = lines[n - 1]
    return f"{field}, line {n}{message[m.end() :]}"


class FileService:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.files = FileStore(store)

    def _who(self, caller: Caller | str | None) -> tuple[str | None, bool]:
        who = as_caller(caller)
        return (None, True) if who is None else (who.user, False)

    def upload(
        self, filename: str, purpose: str, content: bytes, caller: Caller | str | None = None
    ) -> StoredFile:
        if purpose not in PURPOSES:
            raise InvalidArgument(
                f"purpose: {purpose!r} is not supported (tunesmith keeps files for "
                f"{', '.join(PURPOSES)})"
            )
        filename = (filename or "").strip() or "upload.jsonl"
        if len(filename) > MAX_FILENAME:
            raise InvalidArgument(f"file: the name is over {MAX_FILENAME} characters")
        limit = self.settings.max_file_bytes
        if limit and len(content) > limit:
            raise InvalidArgument(f"file: {len(content)} bytes is over the limit of {limit} bytes")
        examples = training_examples(content, "file")
        if self.settings.max_examples and len(examples) > self.settings.max_examples:
            raise InvalidArgument(
                f"file: {len(examples)} examples is over the limit of {self.settings.max_examples}"
            )
        user, _ = self._who(caller)
        record = StoredFile(
            FILE_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(24)),
            user,
            filename,
            purpose,
            len(content),
            utcnow(),
        )
        folder = self.settings.files_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / record.id
        tmp = path.with_suffix(".part")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        try:
            return self.files.add(record, self.settings.max_files_per_user)
        except BaseException:
            path.unlink(missing_ok=True)  # no bytes without a row
            raise

    def list(
        self, caller: Caller | str | None = None, purpose: str | None = None
    ) -> list[StoredFile]:
        user, everyone = self._who(caller)
        return self.files.list(user, everyone, purpose)

    def get(self, file_id: str, caller: Caller | str | None = None) -> StoredFile:
        user, everyone = self._who(caller)
        return self.files.get(file_id, user, everyone)

    def content(self, file_id: str, caller: Caller | str | None = None) -> bytes:
        record = self.get(file_id, caller)
        return (self.settings.files_dir / record.id).read_bytes()

    def examples(
        self, file_id: str, caller: Caller | str | None = None, field: str = "training_file"
    ):
        """The validated examples of a file the caller may see (NotFound for another's)."""
        return training_examples(self.content(file_id, caller), field)

    def delete(self, file_id: str, caller: Caller | str | None = None) -> StoredFile:
        record = self.get(file_id, caller)
        self.files.delete(record.id)
        (self.settings.files_dir / record.id).unlink(missing_ok=True)
        return record

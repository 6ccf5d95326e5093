"""What generation streams back before the whole answer: new text per candidate."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Delta:
    """Text produced since the previous event, by candidate index (only those with new text)."""

    texts: dict[int, str]

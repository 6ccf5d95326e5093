"""What downloading a Hugging Face base model would fetch, asked of the hub first.

:func:`download_size` reads the repository's file list with its sizes
(``HfApi.model_info(repo_id, files_metadata=True)``) and adds up the files that loading it
fetches: the top-level safetensors weights and their index, the configs and the tokenizer.
Nothing is downloaded and no code from the repository runs (tunesmith never sets
``trust_remote_code``). A repository without top-level safetensors is refused here, since
tunesmith loads safetensors only.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import FailedPrecondition

# What ``from_pretrained(repo_id, use_safetensors=True)`` and ``AutoTokenizer`` may fetch
# from a repository's top level (sub-folders and other weight formats are never fetched).
FETCHED_SUFFIXES = (".safetensors", ".json", ".model", ".txt", ".tiktoken", ".jinja")


@dataclasses.dataclass(frozen=True)
class HubDownload:
    repo_id: str
    nbytes: int
    """The bytes a download fetches (all top-level safetensors files count, so a repository
    holding two copies of its weights is counted twice: the estimate errs high)."""
    files: tuple[str, ...]


def offline() -> bool:
    """Whether hub access is turned off (``HF_HUB_OFFLINE``): nothing can be downloaded."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.HF_HUB_OFFLINE or value.strip().upper() in ("1", "ON", "YES", "TRUE")


def download_size(repo_id: str, api=None) -> HubDownload:
    """The files loading ``repo_id`` fetches and their total size, from the hub's metadata.

    ``api`` is an ``HfApi`` (a test passes a fake). Raises FailedPrecondition when the hub
    cannot be asked, does not know the repository, reports no size for a file, or the
    repository has no safetensors weights.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = api.model_info(repo_id, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises OSError and httpx errors alike
        raise FailedPrecondition(
            f"cannot ask the Hugging Face hub about {repo_id} before downloading it: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        ) from None
    fetched = [
        s
        for s in info.siblings or ()
        if "/" not in s.rfilename and s.rfilename.endswith(FETCHED_SUFFIXES)
    ]
    if not any(s.rfilename.endswith(".safetensors") for s in fetched):
        raise FailedPrecondition(
            f"Hugging Face model {repo_id} has no .safetensors weights; tunesmith loads "
            "safetensors only (pickle files can run code when loaded)"
        )
    unsized = [s.rfilename for s in fetched if s.size is None]
    if unsized:
        raise FailedPrecondition(
            f"the Hugging Face hub reports no size for {', '.join(unsized)} in {repo_id}; "
            "its download size cannot be checked"
        )
    return HubDownload(
        repo_id=repo_id,
        nbytes=sum(s.size for s in fetched),
        files=tuple(sorted(s.rfilename for s in fetched)),
    )

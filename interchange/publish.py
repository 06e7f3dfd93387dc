"""``blo-pub alert --from-cap FILE.xml``: a CAP alert written elsewhere as a document.

The document then takes blo-pub's ordinary path (compose, the refusal of what can
never arrive, sign, queue), so a CAP alert is checked exactly like a typed one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from interchange.cap import document_from_cap
from interchange.errors import CapError

__all__ = ["MAX_CAP_BYTES", "cap_document"]

#: A CAP alert is kilobytes; refuse anything larger unread rather than parse it.
MAX_CAP_BYTES = 1 << 20


def cap_document(path: Path, console: Console) -> dict[str, Any]:
    """Read, validate and map the CAP file at ``path``, and show what will be sent.

    Raises ``CapError`` (or a subclass) naming the file.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CAP_BYTES + 1)
    except OSError as exc:
        raise CapError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_CAP_BYTES:
        raise CapError(f"{path}: larger than {MAX_CAP_BYTES} bytes: not a CAP alert")
    found = document_from_cap(data, str(path))
    console.print(
        f"from CAP {path}: {found.identifier} by {found.sender}, sent {found.sent.isoformat()}",
        highlight=False,
    )
    console.print(json.dumps(found.document, ensure_ascii=False, indent=1), highlight=False)
    if found.dropped:
        console.print(f"dropped (not carried): {', '.join(found.dropped)}", highlight=False)
    return found.document

"""`python -m platograph.probe [URL]`: exit 0 when URL (default $PLATOGRAPH_HEALTH_URL) answers 2xx within
three seconds, else 1. The probe Docker's HEALTHCHECK and Kubernetes' exec probes run: the internal
services answer only callers with the internal token, which a kubelet's httpGet probe cannot read from a
Secret, so this sends it (from the environment or PLATOGRAPH_SECRETS_DIR, as the settings read it).

Standard library only, and nothing of the package imported: a run costs about 60 ms of CPU
(measured: 40-50 ms user, 10-20 ms system), most of it starting Python."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

HEADER = "X-Platograph-Internal"  # platograph.internal.HEADER; not imported, to keep the start cheap
TIMEOUT_S = 3.0


def internal_token() -> str | None:
    token = os.environ.get("PLATOGRAPH_INTERNAL_TOKEN")
    directory = os.environ.get("PLATOGRAPH_SECRETS_DIR")
    if token is None and directory:
        path = Path(directory, "PLATOGRAPH_INTERNAL_TOKEN")
        token = path.read_text().strip() if path.is_file() else None
    return token


def probe(url: str) -> str | None:
    """None when the URL answers 2xx, else why not."""
    token = internal_token()
    request = urllib.request.Request(url, headers={HEADER: token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310  # the operator's URL
            return None if 200 <= answer.status < 300 else f"{url}: {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: {exc.code} {exc.read(500).decode(errors='replace')}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("PLATOGRAPH_HEALTH_URL")
    if not url:
        sys.stderr.write("usage: python -m platograph.probe URL (or set PLATOGRAPH_HEALTH_URL)\n")
        return 2
    failure = probe(url)
    if failure:
        sys.stderr.write(failure + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

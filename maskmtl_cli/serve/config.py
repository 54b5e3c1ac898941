"""Options of `maskmtl serve` (imported by the CLI at start-up, so it stays light)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path



def default_workers() -> int:
    """Photos processed side by side: one per CPU core, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class ServeConfig:
    """Options of one `maskmtl serve` run.

    Attributes:
        model: Run folder or ``.keras`` file; None: the pretrained model shipped with maskmtl.
        detector: Face detector; None: the default of `maskmtl predict`.
        engine: Inference engine; None: the default of `maskmtl predict`.
        host: Address to listen on. Only loopback addresses are private to this machine.
        port: TCP port (0: any free port).
        max_upload_mb: Largest photo accepted, in megabytes (10**6 bytes).
        max_megapixels: Largest photo accepted, in millions of pixels, checked from the file's
            header before decoding (so a small file cannot expand into gigabytes).
        min_face: Smallest face to find, in pixels (as `maskmtl predict --min-face`, whose
            default is 20): larger values let RetinaFace search photos at a smaller
            enlargement, which costs less CPU per request. 40 by default: an upload is a photo
            of its sender, and at 20 a 640x480 photo costs 114 ms of CPU instead of about 30,
            which put p99 at 564 ms under 8 clients on 2 cores (docs/serve.md).
        workers: Photos predicted at the same time (threads off the event loop).
        max_connections: Open connections and requests beyond which uvicorn answers 503.
    """

    model: Path | None = None
    detector: str | None = None
    engine: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 20.0
    max_megapixels: float = 25.0
    min_face: int = 40
    workers: int = default_workers()
    max_connections: int = 64

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_pixels(self) -> int:
        """``max_megapixels`` in pixels."""
        return int(self.max_megapixels * 1_000_000)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1,
    localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False

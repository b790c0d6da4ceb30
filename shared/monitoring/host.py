"""What `mlstack agent` reads on a host (psutil) and pushes every 60 s: the host's vector, the
Isolation Forest's input. psutil is imported only by `read_host`, on the host that runs the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOST_METRICS: tuple[str, ...] = (
    "cpu_percent",
    "memory_percent",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "net_sent_bytes_per_s",
    "net_recv_bytes_per_s",
    "process_count",
)


@dataclass
class HostReader:
    """Counters (disk and network bytes) become rates between two readings."""

    previous: dict[str, float] = field(default_factory=dict)
    previous_at: float | None = None

    def read(self, now: float) -> dict[str, float]:
        import psutil

        disk: Any = psutil.disk_io_counters()
        net: Any = psutil.net_io_counters()
        counters = {
            "disk_read_bytes_per_s": float(disk.read_bytes) if disk else 0.0,
            "disk_write_bytes_per_s": float(disk.write_bytes) if disk else 0.0,
            "net_sent_bytes_per_s": float(net.bytes_sent),
            "net_recv_bytes_per_s": float(net.bytes_recv),
        }
        reading = {
            "cpu_percent": float(psutil.cpu_percent(interval=None)),
            "memory_percent": float(psutil.virtual_memory().percent),
            "process_count": float(len(psutil.pids())),
        }
        if self.previous_at is not None and now > self.previous_at:
            elapsed = now - self.previous_at
            for name, value in counters.items():
                # A counter that went backwards (reboot, wrap) gives no rate this time.
                delta = value - self.previous.get(name, value)
                if delta >= 0:
                    reading[name] = delta / elapsed
        self.previous, self.previous_at = counters, now
        return reading

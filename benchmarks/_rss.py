"""The benchmarks' memory measure: a block's time and the process's peak RSS while it ran."""

from __future__ import annotations

import threading
import time


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover


def rss_mb() -> float:
    """The process's resident memory now, MiB."""
    return _status_mb("VmRSS")


def _reset_peak() -> bool:
    """Reset the kernel's peak RSS (``VmHWM``) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:  # pragma: no cover - kernels before 4.0, other systems
        return False


class Peak:
    """``with Peak() as p:`` -- ``p.seconds``, ``p.start`` (RSS before, MiB) and ``p.peak`` (peak RSS while it ran).

    The peak is the kernel's exact high-water mark, reset when the block starts: nothing samples it, so no thread
    competes with the measured code for the GIL (a 5 ms sampling thread slowed ``tl.train``'s Python-heavy loop by
    up to a third). Where the reset is not allowed, a thread samples the RSS every 5 ms instead.
    """

    def __enter__(self) -> Peak:
        self.start = self.peak = rss_mb()
        self._thread = None
        if not _reset_peak():  # pragma: no cover
            self._done = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.t0 = time.perf_counter()
        return self

    def _sample(self) -> None:  # pragma: no cover
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        if self._thread is None:
            self.peak = max(self.peak, _status_mb("VmHWM"))
        else:  # pragma: no cover
            self._done.set()
            self._thread.join()
        self.peak = max(self.peak, rss_mb())

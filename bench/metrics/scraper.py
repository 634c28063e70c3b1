"""A Prometheus-like scraper for the benchmarks: aupgate's /metrics every second, from a thread."""

from __future__ import annotations

import threading
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scraper:
    """Scrapes aupgate's /metrics every second from a thread, as a Prometheus server would."""

    def __init__(self, port: int) -> None:
        self.port, self.scrapes, self.failures, self.last_requests = port, 0, 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                url = f"http://127.0.0.1:{self.port}/metrics"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    text = answer.read().decode()
                self.last_requests = sum(
                    s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "aupgate_requests_total")
                self.scrapes += 1
            except OSError:
                self.failures += 1

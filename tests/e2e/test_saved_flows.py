"""Flows aupgate handled can be saved and read back: `-w FILE`, `save_stream_file`, `mitmdump -nr`.

mitmproxy saves a flow by serialising its state, `flow.metadata` included; when aupgate kept a
live object there (reaching the policy and the memory-mapped category index), saving failed with
"cannot pickle 'mmap.mmap' object". Here a real proxy (both `aupgate run` and a bare
`mitmdump -s .../script.py`) decides allowed, blocked and warned requests over HTTP and HTTPS
while saving its flows; stock mitmdump reads the file back, and each flow carries aupgate's plain
mark of what was decided.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mitmproxy import io as mitm_io
from mitmproxy.http import HTTPFlow

from .conftest import VENV_BIN, Certs, Upstreams, curl, start_proxy, stop_proxy

REQUESTS = [
    ("http://www.example.org/saved-ok", 200),
    ("http://www.bet365.com/saved-blocked", 403),
    ("http://www.facebook.com/saved-warned", 403),
    ("https://www.example.org/saved-tls", 200),
]
EXPECTED = {  # path -> (action, enforced) in the flow's mark
    "/saved-ok": ("allow", "passed"),
    "/saved-blocked": ("block", "blocked"),
    "/saved-warned": ("warn", "warned"),
    "/saved-tls": ("allow", "passed"),
}


def read_flows(path: Path) -> list[HTTPFlow]:
    with path.open("rb") as handle:
        return [f for f in mitm_io.FlowReader(handle).stream() if isinstance(f, HTTPFlow)]


@pytest.mark.parametrize(("how", "save"), [
    ("aupgate run", ("--set", "save_stream_file={file}")),
    ("mitmdump -s", ("-w", "{file}")),
])
def test_handled_flows_are_saved_and_read_back(tmp_path: Path, certs: Certs,
                                               upstreams: Upstreams, how: str,
                                               save: tuple[str, str]) -> None:
    saved = tmp_path / "flows.mitm"
    option, value = save
    proxy = start_proxy(tmp_path / "home", certs, upstreams, option,
                        value.format(file=saved), mitmdump=how == "mitmdump -s")
    try:
        for url, status in REQUESTS:
            result = curl(proxy, url)
            assert result.status == status, result
    finally:
        stop_proxy(proxy)
    assert "pickle" not in proxy.log() and "mmap" not in proxy.log(), proxy.log()
    done = subprocess.run([str(VENV_BIN / "mitmdump"), "-n", "-r", str(saved),
                           "--set", "flow_detail=1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for url, _status in REQUESTS:
        assert url.split("//", 1)[1].split("/", 1)[1] in done.stdout, done.stdout
    flows = {f.request.path: f for f in read_flows(saved)}
    for path, (action, enforced) in EXPECTED.items():
        mark = flows[path].metadata["aupgate"]
        assert (mark["action"], mark["enforced"], mark["agency"]) == (action, enforced, "lab")
    assert flows["/saved-blocked"].metadata.get("aupgate_answered") is True
    assert "aupgate_answered" not in flows["/saved-ok"].metadata

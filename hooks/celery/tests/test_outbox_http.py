"""The outbox and the HTTP ingest transport against a real local HTTP server: wire format and token,
retry after 503 (same event IDs), one bad event dropped on a 400 naming it, drops on a full outbox
counted and reported once as a `collector.gap`, and emit() returning while the transport hangs."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import until
from warden_celery.event import make_event
from warden_celery.outbox import Outbox
from warden_celery.transport import HttpTransport


class Ingest:
    def __init__(self) -> None:
        self.answers: list[tuple[int, dict]] = []  # consumed first, then 200
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        self.gate = threading.Event()
        self.gate.set()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                outer.gate.wait(30)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
                status, detail = outer.answers.pop(0) if outer.answers else (200, {})
                if status == 400:  # name the bad event wherever it sits in this batch
                    idx = next((i for i, e in enumerate(body["events"]) if e.get("job_id") == "bad"), None)
                    if idx is None:
                        outer.answers.insert(0, (status, detail))
                        status, detail = 200, {}
                    else:
                        detail = {"error": f"events[{idx}].kind: bad", "index": idx}
                if status == 200:
                    outer.accepted.extend(body["events"])
                data = json.dumps(detail or {"accepted": len(body["events"])}).encode()
                self.send_response(status)
                if status == 503:
                    self.send_header("retry-after", "0")
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.srv.shutdown()


def test_http_ingest_wire_retry_reject_and_gap_report():
    ing = Ingest()
    try:
        ob = Outbox(HttpTransport(ing.url, "tok-1"), max_events=5, linger_ms=1, min_backoff_ms=10)
        ing.answers = [(503, {"error": "busy"})]
        a = make_event("job.annotated", job_id="a", attrs={"note": "link"})
        ob.emit(a)
        assert ob.flush(20)
        assert ing.requests[0]["path"] == "/v1/events" and ing.requests[0]["auth"] == "Bearer tok-1"
        assert [e["event_id"] for e in ing.requests[0]["body"]["events"]] == [e["event_id"] for e in ing.requests[1]["body"]["events"]] == [a["event_id"]]

        # A 400 naming one event drops only that one (counted and reported as a gap).
        ing.answers = [(400, {})]
        b, bad, c = (make_event("job.annotated", job_id=x) for x in ("b", "bad", "c"))
        ing.gate.clear()
        for ev in (b, bad, c):
            ob.emit(ev)
        ing.gate.set()
        assert ob.flush(20)
        ids = [e["event_id"] for e in ing.accepted]
        assert b["event_id"] in ids and c["event_id"] in ids and bad["event_id"] not in ids
        gaps = [e for e in ing.accepted if e["kind"] == "collector.gap"]
        assert len(gaps) == 1 and gaps[0]["attrs"]["dropped_rejected"] == 1 and gaps[0]["source"] == "celery"

        # The transport hangs: emit() still returns at once; past max_events it drops and counts.
        ing.gate.clear()
        for i in range(20):
            ob.emit(make_event("job.annotated", job_id=f"o{i}"))
        st = ob.stats()
        assert st["dropped_by"]["overflow"] >= 14 and st["buffered"] <= 6
        ing.gate.set()
        assert ob.flush(20)
        gaps = [e for e in ing.accepted if e["kind"] == "collector.gap"]
        assert len(gaps) == 2 and gaps[1]["attrs"]["dropped_overflow"] == st["dropped_by"]["overflow"]
        assert "outbox full" in gaps[1]["reason"]
        assert ob.close(5)
        ob.emit(make_event("job.annotated"))
        assert ob.stats()["dropped_by"]["closed"] == 1
    finally:
        ing.close()


def test_unreachable_sidecar_never_blocks_and_reports_the_outage():
    ing = Ingest()
    port = ing.srv.server_address[1]
    ing.close()  # nothing listens there now
    ob = Outbox(HttpTransport(f"http://127.0.0.1:{port}", "t", timeout=1), max_events=3, linger_ms=1, min_backoff_ms=10, max_backoff_ms=50)
    for i in range(10):
        ob.emit(make_event("job.annotated", job_id=str(i)))
    until(lambda: ob.stats()["failing"] is not None, 10, "the outage to be noticed")
    st = ob.stats()
    assert st["dropped"] == 7 and st["sent"] == 0
    assert not ob.flush(0.3)
    assert ob.close(0.5) is False

"""Hands the correlation ID on to Temporal: a client interceptor for the Temporal Python SDK that
stamps workflow starts (and signal-with-start) with the `warden` header hooks/temporal/headers.ts
reads: a JSON payload `{cid, tp?, tst?, model?, ...}` (encoding `json/plain`, the default converter
of both SDKs). The correlation ID is the scope's (the Celery task being run), else OTel baggage,
else a new `wc_<ULID>`, as the TypeScript client interceptor does.

    from warden_celery.temporal import WardenTemporalInterceptor
    client = await Client.connect(address, interceptors=[WardenTemporalInterceptor()])
"""
from __future__ import annotations

from typing import Any

import temporalio.client
import temporalio.converter

from .context import current_stamp
from .hook import HEADER, read_stamp
from .ids import new_correlation_id


def stamp_payload(stamp: dict[str, Any]) -> Any:
    return temporalio.converter.default().payload_converter.to_payloads([stamp])[0]


def stamp_from_headers(headers: Any) -> dict[str, str] | None:
    """The `warden` stamp in Temporal headers (e.g. a workflow interceptor's input.headers)."""
    p = (headers or {}).get(HEADER)
    if p is None:
        return None
    try:
        return read_stamp(temporalio.converter.default().payload_converter.from_payloads([p])[0])
    except Exception:
        return None


class _Outbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        try:
            headers = dict(input.headers or {})
            if stamp_from_headers(headers) is None:
                headers[HEADER] = stamp_payload(current_stamp() or {"cid": new_correlation_id()})
                input.headers = headers
        except Exception:
            pass  # never fail the start over telemetry
        return await super().start_workflow(input)


class WardenTemporalInterceptor(temporalio.client.Interceptor):
    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        return _Outbound(next)

"""MemometerClient: deadlines, a bearer token, and retries that never start a measurement twice."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Iterator, Optional, TypeVar, cast

import grpc

from memometer.v1 import memometer_pb2 as pb
from memometer.v1 import memometer_pb2_grpc as pb_grpc

T = TypeVar("T")

# Enum settings take the value's name without its prefix, any case: mode="joint", head_sharing="shared".
_ENUM_PREFIXES = {"mode": "MODE_", "head_sharing": "HEAD_SHARING_", "head_init": "HEAD_INIT_", "optimizer": "OPTIMIZER_"}
# The request fields that are arguments of their own rather than settings.
_NOT_SETTINGS = {"model_uri", "dataset_uri", "output_uri", "request_id"}
# round_robin over every address the target resolves to: with a headless Service and a dns:///
# target, one client spreads its measurements over all replicas (as the TypeScript client does).
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


class MemometerError(Exception):
    """A call failed with a status no retry fixes, or with UNAVAILABLE after the last retry.

    ``code`` is the grpc.StatusCode name (``INVALID_ARGUMENT``, ``DEADLINE_EXCEEDED``, ...), so
    pipelines can branch on it without importing grpc; ``message`` names the field or object.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): 0.2, 0.4, 0.8, ... up to 5, like the TS client."""
    return min(5.0, 0.2 * 2**attempt)


def _enum_value(field: str, value: Any) -> Any:
    prefix = _ENUM_PREFIXES.get(field)
    if prefix is None or not isinstance(value, str):
        return value
    enum = pb.MeasureMemorizationRequest.DESCRIPTOR.fields_by_name[field].enum_type
    name = prefix + value.upper().replace("-", "_")
    if name not in enum.values_by_name:
        choices = ", ".join(v.name[len(prefix):].lower() for v in enum.values if not v.name.endswith("UNSPECIFIED"))
        raise ValueError(f"{field}: {value!r} is not one of {choices}")
    return enum.values_by_name[name].number


def _request(model_uri: str, dataset_uri: str, output_uri: Optional[str], request_id: Optional[str], settings: dict[str, Any]) -> pb.MeasureMemorizationRequest:
    """The request, refusing unknown settings here rather than letting a typo fall back to a default."""
    known = set(pb.MeasureMemorizationRequest.DESCRIPTOR.fields_by_name) - _NOT_SETTINGS
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown measurement settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = {field: _enum_value(field, value) for field, value in settings.items() if value is not None}
    # Always a request_id: a retried stream then re-attaches to the same measurement.
    return pb.MeasureMemorizationRequest(
        model_uri=model_uri, dataset_uri=dataset_uri, output_uri=output_uri or "", request_id=request_id or str(uuid.uuid4()), **values
    )


class MemometerClient:
    """A typed client of memometer.v1.MemorizationService.

    ``target`` is host:port, or dns:///name:port to balance over every replica behind a headless
    Service. ``token`` is sent as ``authorization: Bearer <token>``; ``credentials`` (e.g.
    ``grpc.ssl_channel_credentials()``) switch from plaintext to TLS. ``unary_timeout`` is the
    deadline, in seconds, of get/cancel/list calls (None: none). Calls failing with UNAVAILABLE (a
    replica going away) are retried ``retries`` times with exponential backoff.
    """

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        unary_timeout: Optional[float] = 30.0,
        retries: int = 4,
    ) -> None:
        options = [("grpc.service_config", _SERVICE_CONFIG)]
        self._channel = grpc.secure_channel(target, credentials, options) if credentials else grpc.insecure_channel(target, options)
        self._stub = pb_grpc.MemorizationServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._unary_timeout = unary_timeout
        self._retries = retries

    def __enter__(self) -> MemometerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def measure(
        self,
        model_uri: str,
        dataset_uri: str,
        *,
        output_uri: Optional[str] = None,
        request_id: Optional[str] = None,
        timeout: Optional[float] = None,
        **settings: Any,
    ) -> pb.MeasurementResult:
        """Runs a measurement to the end and returns its MeasurementResult.

        ``settings`` are MeasureMemorizationRequest fields (copy_depths=[1, 2], epochs=5,
        mode="joint", input_scaling={"scale": 1 / 255}, baseline_report_uri=..., ...).
        ``timeout`` is the deadline of the whole measurement in seconds, retries included.
        """
        result: Optional[pb.MeasurementResult] = None
        # Read to the end of the stream (its OK status), not just to the result message.
        for message in self.stream(model_uri, dataset_uri, output_uri=output_uri, request_id=request_id, timeout=timeout, **settings):
            if message.HasField("result"):
                result = message.result
        if result is None:
            raise MemometerError("INTERNAL", "the measurement stream ended without a result")
        return result

    def stream(
        self,
        model_uri: str,
        dataset_uri: str,
        *,
        output_uri: Optional[str] = None,
        request_id: Optional[str] = None,
        timeout: Optional[float] = None,
        **settings: Any,
    ) -> Iterator[pb.MeasureMemorizationResponse]:
        """Yields a measurement's MeasureMemorizationResponse messages: started, planned, ..., result.

        After UNAVAILABLE the stream is sent again with the same request_id: the server attaches
        it to the measurement already running, so the messages go on from a second ``started``
        whose ``existing`` is true. Arguments as for ``measure``; they are checked right away.
        """
        request = _request(model_uri, dataset_uri, output_uri, request_id, settings)
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._stream(request, deadline)

    def _stream(self, request: pb.MeasureMemorizationRequest, deadline: Optional[float]) -> Iterator[pb.MeasureMemorizationResponse]:
        attempt = 0
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = self._stub.MeasureMemorization(request, timeout=left, metadata=self._metadata)
            try:
                yield from call
                return
            except grpc.RpcError as error:
                self._raise_unless_retryable(error, attempt)
            finally:
                # Also when the caller stops reading: the server then stops streaming to us.
                call.cancel()
            time.sleep(_backoff(attempt))
            attempt += 1

    def get(self, measurement_id: str) -> pb.Measurement:
        """The measurement's state and, once finished, its result or error (from any replica)."""
        return self._unary(self._stub.GetMeasurement, pb.GetMeasurementRequest(measurement_id=measurement_id))

    def cancel(self, measurement_id: str) -> pb.Measurement:
        """Cancels a queued or running measurement; a finished one is returned unchanged."""
        return self._unary(self._stub.CancelMeasurement, pb.CancelMeasurementRequest(measurement_id=measurement_id))

    def list(self, filter: Optional[str] = None, page_size: Optional[int] = None) -> Iterator[pb.Measurement]:
        """Yields the measurements newest first, fetching the pages of ListMeasurements as needed.

        ``filter`` is the server's AIP-160 subset, e.g. ``'state = SUCCEEDED AND model_uri =
        "s3://models/cnn"'``; ``page_size`` only changes how many come per call.
        """
        request = pb.ListMeasurementsRequest(filter=filter or "", page_size=page_size or 0)
        while True:
            page = self._unary(self._stub.ListMeasurements, request)
            yield from page.measurements
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def _unary(self, method: Callable[..., T], request: Any) -> T:
        attempt = 0
        while True:
            try:
                return method(request, timeout=self._unary_timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                self._raise_unless_retryable(error, attempt)
            time.sleep(_backoff(attempt))
            attempt += 1

    def _raise_unless_retryable(self, error: grpc.RpcError, attempt: int) -> None:
        call = cast(grpc.Call, error)  # the RpcError a call raises is also its grpc.Call
        if call.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self._retries:
            raise MemometerError(call.code().name, call.details() or "") from None

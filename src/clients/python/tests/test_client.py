"""The client's own behaviour (settings, token, retries, pages) against an in-process fake service.

The fake decides when a replica "goes away", which a real server cannot be made to do on cue;
test_live.py covers the real service.
"""

from __future__ import annotations

import unittest
from concurrent import futures
from typing import Any, Iterator

import grpc

from memometer import MemometerClient, MemometerError
from memometer.v1 import memometer_pb2 as pb
from memometer.v1 import memometer_pb2_grpc as pb_grpc

RESULT = pb.MeasurementResult(num_random_labels=10, chance=0.1, depths=[pb.DepthResult(copy_depth=1, random_label_accuracy=0.5)])


class FakeService(pb_grpc.MemorizationServiceServicer):
    """Fails the first ``unavailable`` calls of each method with UNAVAILABLE (streams after their first message)."""

    def __init__(self, unavailable: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.unavailable = unavailable
        self.code = code
        self.requests: list[Any] = []
        self.metadata: list[dict[str, str]] = []

    def _record(self, request: Any, context: grpc.ServicerContext) -> bool:
        """Records the call; True when it is to fail."""
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        return len(self.requests) <= self.unavailable

    def MeasureMemorization(self, request: pb.MeasureMemorizationRequest, context: grpc.ServicerContext) -> Iterator[pb.MeasureMemorizationResponse]:
        fail = self._record(request, context)
        existing = len(self.requests) > 1
        yield pb.MeasureMemorizationResponse(started=pb.MeasurementStarted(measurement_id="m-1", existing=existing))
        if fail:
            context.abort(self.code, "the replica is going away")
        yield pb.MeasureMemorizationResponse(result=RESULT)

    def GetMeasurement(self, request: pb.GetMeasurementRequest, context: grpc.ServicerContext) -> pb.Measurement:
        if self._record(request, context):
            context.abort(self.code, "no replica")
        return pb.Measurement(measurement_id=request.measurement_id, state=pb.MEASUREMENT_STATE_SUCCEEDED)

    def ListMeasurements(self, request: pb.ListMeasurementsRequest, context: grpc.ServicerContext) -> pb.ListMeasurementsResponse:
        self._record(request, context)
        start = int(request.page_token or "0")
        ids = [f"m-{i}" for i in range(5)][start : start + request.page_size]
        next_token = str(start + request.page_size) if start + request.page_size < 5 else ""
        return pb.ListMeasurementsResponse(measurements=[pb.Measurement(measurement_id=i) for i in ids], next_page_token=next_token)


class ClientTest(unittest.TestCase):
    def serve(self, service: FakeService, **client_options: Any) -> MemometerClient:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_MemorizationServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, None)
        client = MemometerClient(f"127.0.0.1:{port}", **client_options)
        self.addCleanup(client.close)
        return client

    def test_a_retried_stream_reattaches_with_the_same_generated_request_id(self) -> None:
        service = FakeService(unavailable=1)
        client = self.serve(service, token="secret")
        events = list(client.stream("s3://b/model", "s3://b/data.npz", copy_depths=[1]))
        self.assertEqual([e.WhichOneof("event") for e in events], ["started", "started", "result"])
        self.assertEqual([e.started.existing for e in events[:2]], [False, True])
        request_ids = {r.request_id for r in service.requests}
        self.assertEqual(len(service.requests), 2)
        self.assertEqual(len(request_ids), 1)
        self.assertRegex(request_ids.pop(), r"^[0-9a-f-]{36}$")
        self.assertEqual([m["authorization"] for m in service.metadata], ["Bearer secret"] * 2)

    def test_measure_returns_the_result_after_retries(self) -> None:
        service = FakeService(unavailable=2)
        result = self.serve(service).measure("s3://b/model", "s3://b/data.npz", request_id="mine")
        self.assertEqual(result, RESULT)
        self.assertEqual([r.request_id for r in service.requests], ["mine"] * 3)

    def test_unavailable_after_the_last_retry_raises(self) -> None:
        service = FakeService(unavailable=5)
        with self.assertRaises(MemometerError) as raised:
            self.serve(service, retries=1).get("m-1")
        self.assertEqual(raised.exception.code, "UNAVAILABLE")
        self.assertEqual(len(service.requests), 2)

    def test_other_statuses_are_not_retried(self) -> None:
        service = FakeService(unavailable=1, code=grpc.StatusCode.FAILED_PRECONDITION)
        with self.assertRaises(MemometerError) as raised:
            self.serve(service).measure("s3://b/model", "s3://b/data.npz")
        self.assertEqual((raised.exception.code, raised.exception.message), ("FAILED_PRECONDITION", "the replica is going away"))
        self.assertEqual(len(service.requests), 1)

    def test_unary_calls_retry_unavailable(self) -> None:
        service = FakeService(unavailable=2)
        self.assertEqual(self.serve(service).get("m-7").measurement_id, "m-7")
        self.assertEqual(len(service.requests), 3)

    def test_list_reads_every_page(self) -> None:
        service = FakeService()
        ids = [m.measurement_id for m in self.serve(service).list(filter="state = SUCCEEDED", page_size=2)]
        self.assertEqual(ids, [f"m-{i}" for i in range(5)])
        self.assertEqual([r.page_token for r in service.requests], ["", "2", "4"])
        self.assertEqual({r.filter for r in service.requests}, {"state = SUCCEEDED"})

    def test_settings_map_to_request_fields(self) -> None:
        service = FakeService()
        self.serve(service).measure(
            "s3://b/model", "s3://b/data.npz", output_uri="s3://b/out", copy_depths=[1, 2], mode="joint", head_sharing="shared",
            optimizer="SGD", epochs=3, input_scaling={"scale": 1 / 255}, baseline_report_uri="s3://b/old/report.json",
            allow_different_settings=True, max_samples=None,
        )
        request = service.requests[0]
        self.assertEqual(request, pb.MeasureMemorizationRequest(
            model_uri="s3://b/model", dataset_uri="s3://b/data.npz", output_uri="s3://b/out", request_id=request.request_id,
            copy_depths=[1, 2], mode=pb.MODE_JOINT, head_sharing=pb.HEAD_SHARING_SHARED, optimizer=pb.OPTIMIZER_SGD, epochs=3,
            input_scaling=pb.InputScaling(scale=1 / 255), baseline_report_uri="s3://b/old/report.json", allow_different_settings=True,
        ))

    def test_bad_settings_are_refused_before_any_call(self) -> None:
        client = MemometerClient("127.0.0.1:1", retries=0)
        self.addCleanup(client.close)
        with self.assertRaisesRegex(TypeError, "unknown measurement settings: epoch "):
            client.stream("m", "d", epoch=3)
        with self.assertRaisesRegex(ValueError, "mode: 'fast' is not one of frozen, joint"):
            client.measure("m", "d", mode="fast")


if __name__ == "__main__":
    unittest.main()

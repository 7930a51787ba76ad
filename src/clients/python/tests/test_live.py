"""The client against a real memometer server with real S3 (started by test/clients/python-client.test.ts).

The server requires MEMOMETER_TEST_TOKEN; MEMOMETER_TEST_MODEL_URI and MEMOMETER_TEST_DATASET_URI
name the example model and data set in its S3, MEMOMETER_TEST_OUTPUT_URI a prefix to write to.
"""

from __future__ import annotations

import os
import unittest
import uuid
from typing import Any

from memometer import MemometerClient, MemometerError
from memometer.v1 import memometer_pb2 as pb

ENV = {name: os.environ.get(f"MEMOMETER_TEST_{name}", "") for name in ("TARGET", "TOKEN", "MODEL_URI", "DATASET_URI", "OUTPUT_URI")}
# Small and quick: 200 training samples, the example's 8-bit images scaled to [0, 1].
SETTINGS: dict[str, Any] = {"max_samples": 200, "input_scaling": {"scale": 1 / 255}}
# Minutes of work (all 2,000 samples, three depths, the server's most epochs): a cancel or a
# deadline of seconds always stops it half-way.
LONG: dict[str, Any] = {"input_scaling": {"scale": 1 / 255}, "copy_depths": [1, 2, 3], "epochs": 1000}


@unittest.skipUnless(ENV["TARGET"], "no server: set MEMOMETER_TEST_TARGET (test/clients/python-client.test.ts does)")
class LiveTest(unittest.TestCase):
    client: MemometerClient
    request_id: str
    events: list[pb.MeasureMemorizationResponse]

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = MemometerClient(ENV["TARGET"], ENV["TOKEN"], retries=0)
        cls.request_id = str(uuid.uuid4())
        # One measurement that several tests look at.
        cls.events = list(cls.client.stream(ENV["MODEL_URI"], ENV["DATASET_URI"], request_id=cls.request_id, copy_depths=[1], epochs=2, **SETTINGS))

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()

    @property
    def measurement_id(self) -> str:
        return self.events[0].started.measurement_id

    def test_measure_end_to_end(self) -> None:
        output = f"{ENV['OUTPUT_URI']}/e2e"
        result = self.client.measure(ENV["MODEL_URI"], ENV["DATASET_URI"], output_uri=output, copy_depths=[1, 2], epochs=2, mode="frozen", **SETTINGS)
        self.assertEqual([d.copy_depth for d in result.depths], [1, 2])
        self.assertEqual(result.report_uri, f"{output}/report.json")
        self.assertAlmostEqual(result.chance, 0.1)
        for depth in result.depths:
            for accuracy in (depth.random_label_accuracy, depth.held_out_random_label_accuracy, depth.class_train_accuracy):
                self.assertTrue(0 <= accuracy <= 1, accuracy)
            # Chance-corrected: 0 at chance, 1 when every label is learned, -1/(n-1) at worst.
            self.assertAlmostEqual(depth.memorization_score, (depth.random_label_accuracy - 0.1) / 0.9)
            self.assertTrue(-1 / 9 <= depth.memorization_score <= 1, depth.memorization_score)

    def test_stream_events_come_in_order(self) -> None:
        kinds = [e.WhichOneof("event") for e in self.events]
        self.assertEqual(kinds, ["started", "planned", "features", "epoch", "epoch", "depth_result", "result"])
        self.assertFalse(self.events[0].started.existing)
        self.assertEqual([e.epoch.epoch for e in self.events if e.HasField("epoch")], [1, 2])
        self.assertEqual(list(self.events[-1].result.depths), [self.events[-2].depth_result])

    def test_the_same_request_id_reattaches_to_the_measurement(self) -> None:
        again = list(self.client.stream(ENV["MODEL_URI"], ENV["DATASET_URI"], request_id=self.request_id, copy_depths=[1], epochs=2, **SETTINGS))
        self.assertEqual(again[0].started.measurement_id, self.measurement_id)
        self.assertTrue(again[0].started.existing)
        self.assertEqual(again[-1].result, self.events[-1].result)

    def test_get(self) -> None:
        measurement = self.client.get(self.measurement_id)
        self.assertEqual(measurement.state, pb.MEASUREMENT_STATE_SUCCEEDED)
        self.assertEqual(measurement.request_id, self.request_id)
        self.assertEqual(measurement.result, self.events[-1].result)
        with self.assertRaises(MemometerError) as raised:
            self.client.get("no-such-measurement")
        self.assertEqual(raised.exception.code, "NOT_FOUND")

    def test_cancel(self) -> None:
        stream = self.client.stream(ENV["MODEL_URI"], ENV["DATASET_URI"], **LONG)
        measurement_id = next(stream).started.measurement_id
        # Cancel once it runs: a cancel between `started` and the run's start can be lost on the
        # server (it answers CANCELLED, then the run succeeds), which is not the client's to test.
        self.assertTrue(next(stream).HasField("planned"))
        self.assertEqual(self.client.cancel(measurement_id).state, pb.MEASUREMENT_STATE_CANCELLED)
        with self.assertRaises(MemometerError) as raised:
            list(stream)
        self.assertEqual(raised.exception.code, "CANCELLED")
        self.assertEqual(self.client.get(measurement_id).error.code, "CANCELLED")

    def test_a_deadline_that_passes(self) -> None:
        with self.assertRaises(MemometerError) as raised:
            self.client.measure(ENV["MODEL_URI"], ENV["DATASET_URI"], timeout=2, **LONG)
        self.assertEqual(raised.exception.code, "DEADLINE_EXCEEDED")

    def test_a_token_is_required(self) -> None:
        for token in (None, "wrong"):
            with MemometerClient(ENV["TARGET"], token, retries=0) as client, self.assertRaises(MemometerError) as raised:
                client.measure(ENV["MODEL_URI"], ENV["DATASET_URI"], **SETTINGS)
            self.assertEqual(raised.exception.code, "UNAUTHENTICATED")

    def test_list(self) -> None:
        everything = list(self.client.list(page_size=1))
        self.assertIn(self.measurement_id, [m.measurement_id for m in everything])
        times = [m.create_time.ToNanoseconds() for m in everything]
        self.assertEqual(times, sorted(times, reverse=True))
        succeeded = list(self.client.list(filter="state = SUCCEEDED"))
        self.assertIn(self.measurement_id, [m.measurement_id for m in succeeded])
        self.assertEqual({m.state for m in succeeded}, {pb.MEASUREMENT_STATE_SUCCEEDED})


if __name__ == "__main__":
    unittest.main()

"""A Python client of the memometer gRPC service (memometer.v1.MemorizationService).

The generated stubs are imported as ``memometer.v1`` (that is the proto package), so they share
this package's name. ``extend_path`` lets them live in a second folder: in the repository they stay
where ``npm run generate`` writes them (``PYTHONPATH=src/clients/python:src/gen/python``), while
an installed wheel carries them inside this package (see pyproject.toml).
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

from memometer.client import MemometerClient, MemometerError  # noqa: E402 (after __path__ is extended)

__all__ = ["MemometerClient", "MemometerError"]

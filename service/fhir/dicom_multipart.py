"""One DICOM Part 10 object out of a WADO-RS `multipart/related` answer, parsed as it streams
by python-multipart (the streaming parser Starlette uses, already a dependency) and bounded:
the part may not exceed the instance byte limit, nor the whole body that plus a margin for
boundaries and part headers. The connection is dropped by the caller as soon as a limit trips.
"""

from __future__ import annotations

from email.message import Message

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from service.errors import DicomTooLarge, DicomWebRejected, DicomWebUnavailable

BODY_OVERHEAD_BYTES = 64 * 1024  # boundaries + part headers around one instance
MAX_PART_HEADERS = 16
MAX_PART_HEADER_BYTES = 8 * 1024


def content_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters, quotes removed."""
    msg = Message()
    msg["Content-Type"] = content_type
    params = {k.lower(): v for k, v in msg.get_params(failobj=[])[1:]}
    return msg.get_content_type(), params


class SinglePartReader:
    """Feed the body in chunks, then `result()`: the one part's bytes."""

    def __init__(self, content_type: str, max_part_bytes: int) -> None:
        media_type, params = content_type_params(content_type)
        boundary = params.get("boundary")
        if media_type != "multipart/related" or not boundary:
            raise DicomWebRejected("PACS answer is not multipart/related with a boundary")
        self.max_part_bytes = max_part_bytes
        self.max_body_bytes = max_part_bytes + BODY_OVERHEAD_BYTES
        self._received = 0
        self._parts: list[bytearray] = []
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_end": self._end,
            },
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )

    def _begin(self) -> None:
        if self._parts:
            raise DicomWebRejected("PACS answered more than one part for one instance")
        self._parts.append(bytearray())

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self._parts[-1]
        if len(part) + (end - start) > self.max_part_bytes:
            raise DicomTooLarge(f"instance over the {self.max_part_bytes}-byte limit")
        part += data[start:end]

    def _end(self) -> None:
        self._ended = True

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk of the body (DicomTooLarge past a limit)."""
        self._received += len(chunk)
        if self._received > self.max_body_bytes:
            raise DicomTooLarge(f"instance over the {self.max_part_bytes}-byte limit")
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise DicomWebRejected("PACS answer is not a well-formed multipart body") from None

    def result(self) -> bytes:
        """The part, once the closing boundary was seen; a cut-off body is retryable."""
        if not self._ended:
            raise DicomWebUnavailable("PACS answer ended before its closing boundary")
        if not self._parts:
            raise DicomWebRejected("PACS answered no part for the instance")
        return bytes(self._parts[0])

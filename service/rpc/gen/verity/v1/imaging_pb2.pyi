from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchImagingVerificationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ImagingProgress(_message.Message):
    __slots__ = ("series_expected", "instances_expected", "series_found", "instances_found", "instances_fetched", "instances_checked")
    SERIES_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SERIES_FOUND_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FOUND_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FETCHED_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_CHECKED_FIELD_NUMBER: _ClassVar[int]
    series_expected: int
    instances_expected: int
    series_found: int
    instances_found: int
    instances_fetched: int
    instances_checked: int
    def __init__(self, series_expected: _Optional[int] = ..., instances_expected: _Optional[int] = ..., series_found: _Optional[int] = ..., instances_found: _Optional[int] = ..., instances_fetched: _Optional[int] = ..., instances_checked: _Optional[int] = ...) -> None: ...

class ImagingJobError(_message.Message):
    __slots__ = ("code", "title", "detail", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    title: str
    detail: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., title: _Optional[str] = ..., detail: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class ImagingVerificationUpdate(_message.Message):
    __slots__ = ("id", "state", "attempts", "progress", "outcome", "findings", "error", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: str
    attempts: int
    progress: ImagingProgress
    outcome: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    error: ImagingJobError
    result: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., progress: _Optional[_Union[ImagingProgress, _Mapping]] = ..., outcome: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ..., error: _Optional[_Union[ImagingJobError, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

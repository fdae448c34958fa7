from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Band(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BAND_UNSPECIFIED: _ClassVar[Band]
    MATCH: _ClassVar[Band]
    UNCERTAIN: _ClassVar[Band]
    MISMATCH: _ClassVar[Band]
BAND_UNSPECIFIED: Band
MATCH: Band
UNCERTAIN: Band
MISMATCH: Band

class Image(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: str
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[str] = ...) -> None: ...

class ExtractEmbeddingRequest(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class ExtractEmbeddingResponse(_message.Message):
    __slots__ = ("vector", "dimension", "model", "model_version")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    dimension: int
    model: str
    model_version: str
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., dimension: _Optional[int] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("image", "reference_image", "product_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    image: Image
    reference_image: Image
    product_id: str
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., reference_image: _Optional[_Union[Image, _Mapping]] = ..., product_id: _Optional[str] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("model_version", "cosine_similarity", "euclidean_distance", "combined_score", "band", "evidence")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COSINE_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    EUCLIDEAN_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    COMBINED_SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    cosine_similarity: float
    euclidean_distance: float
    combined_score: float
    band: Band
    evidence: _struct_pb2.Struct
    def __init__(self, model_version: _Optional[str] = ..., cosine_similarity: _Optional[float] = ..., euclidean_distance: _Optional[float] = ..., combined_score: _Optional[float] = ..., band: _Optional[_Union[Band, str]] = ..., evidence: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("image",)
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    image: Image
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    width: int
    height: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("product_id", "name", "score", "band", "evidence")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BAND_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    name: str
    score: float
    band: Band
    evidence: _struct_pb2.Struct
    def __init__(self, product_id: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ..., band: _Optional[_Union[Band, str]] = ..., evidence: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IdentifiedPill(_message.Message):
    __slots__ = ("index", "bbox", "imprint_read", "imprint_confidence", "features", "candidates")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    IMPRINT_READ_FIELD_NUMBER: _ClassVar[int]
    IMPRINT_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    index: int
    bbox: BoundingBox
    imprint_read: str
    imprint_confidence: float
    features: _struct_pb2.Struct
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    def __init__(self, index: _Optional[int] = ..., bbox: _Optional[_Union[BoundingBox, _Mapping]] = ..., imprint_read: _Optional[str] = ..., imprint_confidence: _Optional[float] = ..., features: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("model_version", "pill_count", "timings_ms", "pills")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PILL_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    PILLS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    pill_count: int
    timings_ms: _containers.ScalarMap[str, float]
    pills: _containers.RepeatedCompositeFieldContainer[IdentifiedPill]
    def __init__(self, model_version: _Optional[str] = ..., pill_count: _Optional[int] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., pills: _Optional[_Iterable[_Union[IdentifiedPill, _Mapping]]] = ...) -> None: ...

class VerifyMedicationRequest(_message.Message):
    __slots__ = ("photos", "medication_request", "medication_dispense", "patient", "idempotency_key")
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MEDICATION_DISPENSE_FIELD_NUMBER: _ClassVar[int]
    PATIENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    photos: _containers.RepeatedCompositeFieldContainer[Image]
    medication_request: str
    medication_dispense: str
    patient: str
    idempotency_key: str
    def __init__(self, photos: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., medication_request: _Optional[str] = ..., medication_dispense: _Optional[str] = ..., patient: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class VerifyMedicationResponse(_message.Message):
    __slots__ = ("id", "verdict", "needs_attention", "findings", "created", "verification")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    NEEDS_ATTENTION_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    verdict: str
    needs_attention: bool
    findings: _containers.RepeatedScalarFieldContainer[str]
    created: bool
    verification: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., verdict: _Optional[str] = ..., needs_attention: _Optional[bool] = ..., findings: _Optional[_Iterable[str]] = ..., created: _Optional[bool] = ..., verification: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

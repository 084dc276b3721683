"""Request and response bodies of the /v1 API (the contract the web page codes against)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

CaptionMode = Literal["auto", "generate", "retrieve"]  # auto: the method that knows the image's domain

Media = Literal["image", "video"]


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class ErrorResponse(BaseModel):
    """Every error answers this shape (app.main.error_response); 422 included, in place of FastAPI's list."""

    model_config = _example(detail="k: 0 is out of range; must be between 1 and 100")
    detail: str = Field(description="what is wrong and what to fix, naming the field")


def _error(description: str) -> dict:
    return {"model": ErrorResponse, "description": description}


# Statuses any route may answer with, documented on every operation with their real body.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("a malformed body (invalid JSON, a body that is not an object), or a fetch that failed"),
    401: _error("an API key (or the admin token) is required or wrong"),
    404: _error("unknown index, item or route"),
    409: _error("the model cannot serve this (an index it did not embed, a head it does not have)"),
    413: _error("the body, an upload or an image's pixel count is over its limit (the message names it)"),
    415: _error("an upload that is not one of the accepted image formats"),
    422: _error("a field breaks its documented type or limit (the message names it)"),
    503: _error("busy (queue full) or not ready yet; retry after the Retry-After seconds"),
    504: _error("no result within the batch timeout"),
}

# The admin routes' own: disabled (no XMODAL_ADMIN_TOKEN), or a model reference outside XMODAL_HOME/models
ADMIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: _error("admin routes are disabled, or the model named lies outside XMODAL_HOME/models"),
}


# A text field as check_text accepts it: some non-space character, no control characters.
_CONTROL = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/gif, image/bmp, image/tiff"
VIDEO_TYPES = "video/mp4, video/webm, video/x-msvideo, video/quicktime, video/x-matroska"
TEXT_PATTERN = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"
# /v1/classify's labels: such a text with at least two non-blank parts between commas and newlines
_PART, _LABEL = rf"[^,\n{_CONTROL}]*", rf"[^,\n{_CONTROL}]*[^\s,{_CONTROL}][^,\n{_CONTROL}]*"
LABELS_PATTERN = rf"^({_PART}[,\n])*{_LABEL}[,\n]({_PART}[,\n])*{_LABEL}([,\n]{_PART})*$"


def _is_file(prop: dict) -> bool:
    """A file part: OpenAPI 3.0's `format: binary`, or 3.1's `contentMediaType` (what FastAPI writes)."""
    return prop.get("format") == "binary" or "contentMediaType" in prop


def _move_beside_ref(body: dict, schema: dict) -> None:
    """Keywords beside a form body's $ref (a route's openapi_extra, e.g. "one of image, video, id")
    move into the form's schema: tools that follow a $ref read nothing beside it. Upload parts get
    their media types."""
    schema.update({k: v for k, v in body["schema"].items() if k != "$ref"})
    body["schema"] = {"$ref": body["schema"]["$ref"]}
    types = {"image": IMAGE_TYPES, "video": VIDEO_TYPES}  # the shared image input, a video upload
    if encoding := {f: {"contentType": t} for f, t in types.items() if f in schema.get("properties", {})}:
        body["encoding"] = encoding


def _form_parts(schema: dict) -> None:
    """A multipart form's fields as the wire has them: a part is text or a file, there or not (an
    optional field is never null), and an empty text part of an optional field reads as absent (FastAPI
    gives the default). A file part is `format: binary`, the file itself (its media type in `encoding`:
    what the bytes must be is for the route to check, 415/422, not for a schema)."""
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        if "anyOf" in prop:
            options = [p for p in prop.pop("anyOf") if p.get("type") != "null"]
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
        if _is_file(prop):
            prop["format"] = "binary"
        elif field not in required:
            meta = ("title", "description", "default", "examples")
            value = {k: v for k, v in prop.items() if k not in meta}
            if value.get("type") == "string" and not value.keys() & {"enum", "minLength", "pattern"}:
                continue  # "" is one of its values already
            absent = {"type": "string", "maxLength": 0}
            schema["properties"][field] = {
                **{k: prop[k] for k in meta if k in prop},
                "anyOf": [value, absent],
            }


def _knn_body(openapi: dict) -> dict:
    """/knn-service's JSON body schema (inline: the route parses its body itself, app/routes/compat.py)."""
    return openapi["paths"]["/knn-service"]["post"]["requestBody"]["content"]["application/json"]["schema"]


def document_model(openapi: dict, dim: int, fetch: bool) -> dict:
    """The OpenAPI document with what the active model and the fetch setting decide for /knn-service:
    embedding_input holds exactly `dim` numbers, not all zero, and image_url is accepted only when
    `fetch` (re-applied on every read, so a hot-swap to another dimension shows)."""
    body = _knn_body(openapi)
    vector = {"type": "array", "items": {"type": "number"}, "minItems": dim, "maxItems": dim}
    body["properties"]["embedding_input"] = {
        "anyOf": [{**vector, "contains": {"not": {"const": 0}}}, {"enum": KNN_QUERIES["embedding_input"]}],
        "description": f"a query vector of the active model's {dim} dimensions",
    }
    if not fetch:
        off = "fetching is off here (XMODAL_FETCH__ENABLED)"
        body["properties"]["image_url"] = {"enum": KNN_QUERIES["image_url"], "description": off}
    return openapi


def document_limits(openapi: dict, limits, filter_fields: dict) -> dict:
    """The OpenAPI document with the limits the service enforces (from Settings) on the request fields
    of its own models and forms: texts, k, `where`, uploads. A field may name the LimitSettings field that
    bounds it, `Form(json_schema_extra={"x-limit": "max_caption_k"})`: its maximum (an integer) or
    maxLength (a string). Of the hand-written inline schemas, /knn-service's text and num_images get
    the same bounds; the others are left as they are."""
    text = {"type": "string", "minLength": 1, "maxLength": limits.max_text_chars, "pattern": TEXT_PATTERN}
    by_name = {
        "query": text,
        "question": text,
        "labels": {**text, "minLength": 3, "pattern": LABELS_PATTERN},
        "k": {"type": "integer", "minimum": 1, "maximum": limits.max_k},
        "texts": {"type": "array", "items": text, "minItems": 1, "maxItems": limits.max_texts},
        "where": {"anyOf": [{**filter_fields, "type": "object"}, {"type": "null"}]},
    }
    knn = _knn_body(openapi)
    knn["properties"]["text"] = {
        "anyOf": [text, {"enum": KNN_QUERIES["text"]}],
        "description": "a text query",
    }
    knn["properties"]["num_images"] = {**by_name["k"], "default": 40, "description": "how many results"}
    schemas = openapi.get("components", {}).get("schemas", {})
    requests, forms = set(), set()  # the request bodies' schemas (responses keep theirs), and the forms
    for path in openapi.get("paths", {}).values():
        for op in path.values():
            for ctype, body in op.get("requestBody", {}).get("content", {}).items():
                ref = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                requests.add(ref)
                if ctype == "multipart/form-data" and ref in schemas:
                    forms.add(ref)
                    _move_beside_ref(body, schemas[ref])
    for name in requests & set(schemas):
        schema = schemas[name]
        for field, prop in schema.get("properties", {}).items():
            if "x-limit" in prop:
                bound = getattr(limits, prop.pop("x-limit"))
                prop["maximum" if prop.get("type") == "integer" else "maxLength"] = bound
            if field == "texts" and prop.get("type") != "array":  # a form's, one text per line
                prop.update(pattern=rf"^[^{_CONTROL}]*$")
            elif field in by_name:
                # a bound the route declares itself (Form(le=...)) stays
                kept = ("title", "description", "default", "examples", "maximum", "maxLength")
                keep = {k: v for k, v in prop.items() if k in kept}
                schema["properties"][field] = {**by_name[field], **keep}
        if name in forms:
            _form_parts(schema)
    return openapi


class TextSearchRequest(BaseModel):
    model_config = _example(query="a red bicycle", k=12, index="demo", media="image", where={"split": "test"})
    query: str = Field(description="what to look for, in words")
    k: int = Field(12, description="how many hits")
    index: str | None = Field(None, description="index name; default: the service's default index")
    media: Media | None = Field(None, description="only images or only videos")
    where: dict[str, Any] | None = Field(
        None, description="metadata equality filters, e.g. {'split': 'test'}"
    )


class SearchHit(BaseModel):
    id: str = Field(description="item id in the index")
    score: float = Field(description="cosine similarity")
    caption: str | None = None
    media: Media
    url: str = Field(description="the full media file, /media/<index>/<id>")
    thumbnail_url: str
    start: float | None = Field(None, description="best segment start (s), videos only")
    end: float | None = Field(None, description="best segment end (s), videos only")
    meta: dict[str, Any] = {}


class SearchResponse(BaseModel):
    model_config = _example(
        index="demo",
        version="v1",
        took_ms=4.2,
        hits=[
            {
                "id": "openclipart/cow-1",
                "score": 0.31,
                "caption": "cartoon cow",
                "media": "image",
                "url": "/media/demo/openclipart%2Fcow-1",
                "thumbnail_url": "/media/demo/openclipart%2Fcow-1?thumb=1",
                "start": None,
                "end": None,
                "meta": {"split": "test"},
            }
        ],
    )
    index: str
    version: str
    took_ms: float
    hits: list[SearchHit]


class ScoredText(BaseModel):
    text: str
    score: float


class CaptionsResponse(BaseModel):
    model_config = _example(captions=[{"text": "a cartoon cow", "score": 0.42}])
    captions: list[ScoredText]


class Caption(ScoredText):
    method: Literal["decoder", "colour", "bank", "concept"]  # what produced this caption
    unsure: bool = False


class CaptionResponse(BaseModel):
    model_config = _example(
        mode="auto", captions=[{"text": "a tabby, a kind of cat", "score": 0.4, "method": "concept"}]
    )
    mode: CaptionMode
    captions: list[Caption]


class Answer(BaseModel):
    answer: str
    probability: float


class VqaResponse(BaseModel):
    model_config = _example(
        question="what color is the circle?", answers=[{"answer": "red", "probability": 0.9}]
    )
    question: str
    answers: list[Answer]
    solver: str = ""  # easy-vqa head | kind | colour | classes | zero-shot | none
    unsure: bool = False  # the model cannot answer this question about this image


class LabelProbability(BaseModel):
    label: str
    probability: float


class ClassifyResponse(BaseModel):
    model_config = _example(
        labels=[{"label": "cat", "probability": 0.8}, {"label": "dog", "probability": 0.2}]
    )
    labels: list[LabelProbability]


class EmbedTextRequest(BaseModel):
    model_config = _example(texts=["a red bicycle", "a cow"])
    texts: list[str]


class EmbedResponse(BaseModel):
    model_config = _example(model="default", dim=3, vectors=[[0.6, 0.0, 0.8]])
    model: str
    dim: int
    vectors: list[list[float]]


def _integral(value):
    """JSON Schema's integer: a number without a fraction (26.0 is one) within 64 bits, as validators
    count it; anything else is left for the strict int check to refuse (true, "26", 2.5, 1e57)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral)]  # an integer as JSON Schema has it, in strict models


# The query fields, each with the values that count as absent (ClipClient sends every field, unused ones
# null); any other value is a query, and a wrong type is a 422 rather than "absent".
KNN_QUERIES = {
    "text": [None, ""],
    "image": [None, ""],
    "image_url": [None, ""],
    "embedding_input": [None, []],
}


class KnnRequest(BaseModel):
    """clip-retrieval's /knn-service body: exactly one of text, image, image_url, embedding_input."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "oneOf": [
                {"required": [f], "properties": {f: {"not": {"enum": absent}}}}
                for f, absent in KNN_QUERIES.items()
            ]
        },
    )
    text: str | None = None
    image: str | None = Field(
        None, description="base64 image bytes", json_schema_extra={"contentEncoding": "base64"}
    )
    image_url: str | None = Field(None, description="fetched only when XMODAL_FETCH__ENABLED")
    embedding_input: list[float] | None = None
    modality: Literal["image", "text"] = "image"
    num_images: JsonInt = Field(40, description="how many results")
    num_result_ids: JsonInt | None = None
    indice_name: str | None = None
    deduplicate: bool = True


class MetadataRequest(BaseModel):
    ids: list[str | int] = Field(max_length=1000)
    indice_name: str | None = None


class ModelsResponse(BaseModel):
    active: dict[str, Any] = Field(description="the active model's card, plus its id")
    available: list[dict[str, Any]] = Field(description="model dirs under <home>/models: id and card")


class IndexInfo(BaseModel):
    name: str
    version: str
    count: int
    model_fingerprint: str | None
    media: dict[str, int]


class IndexesResponse(BaseModel):
    indexes: list[IndexInfo]
    default: str | None


class ActivateModelRequest(BaseModel):
    model_config = _example(model="default-v2", indexes={"demo": "v2"})
    model: str = Field(
        description="a model id or dir under <home>/models, a registry name, openclip:ARCH@TAG, hf-hub:REPO",
        pattern=TEXT_PATTERN,
    )
    indexes: dict[str, str] | None = Field(
        None, description="index versions to serve with it (default: each index's CURRENT)"
    )


class ReloadIndexRequest(BaseModel):
    version: str | None = Field(None, description="version to load; default: the one CURRENT names")


class SwapResponse(BaseModel):
    model: str
    model_fingerprint: str | None
    indexes: dict[str, str] = Field(description="index name -> version now serving")
    took_ms: float

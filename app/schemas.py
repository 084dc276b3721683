"""Request and response bodies of the /v1 API (the contract the web page codes against)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Media = Literal["image", "video"]


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class TextSearchRequest(BaseModel):
    model_config = _example(query="a red bicycle", k=12, index="demo", media="image", where={"split": "test"})
    query: str = Field(description="what to look for, in words")
    k: int = Field(12, description="how many hits")
    index: str | None = Field(None, description="index name; default: the service's default index")
    media: Media | None = Field(None, description="only images or only videos")
    where: dict[str, Any] | None = Field(
        None, description="metadata equality filters, e.g. {'split': 'test'}"
    )


class ImageSearchRequest(BaseModel):
    model_config = _example(image_b64="iVBORw0KGgo...", k=12, index="demo", media=None)
    image_b64: str = Field(description="base64 image bytes (a data: URL prefix is allowed)")
    k: int = 12
    index: str | None = None
    media: Media | None = None


class Hit(BaseModel):
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
    hits: list[Hit]


class ScoredText(BaseModel):
    text: str
    score: float


class CaptionsResponse(BaseModel):
    model_config = _example(captions=[{"text": "a cartoon cow", "score": 0.42}])
    captions: list[ScoredText]


class Caption(ScoredText):
    method: Literal["decoder", "bank", "concept", "none"]  # what produced this caption
    unsure: bool = False


class CaptionResponse(BaseModel):
    model_config = _example(
        mode="auto", captions=[{"text": "a tabby, a kind of cat", "score": 0.4, "method": "concept"}]
    )
    mode: Literal["auto", "generate", "retrieve"]
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
    solver: str = ""  # easy-vqa head | kind | colour | zero-shot | none
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
    model: str = Field(description="a model dir or a model id under <home>/models")
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

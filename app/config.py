"""The service's one settings class: XMODAL_* environment variables (and .env), `__` for nesting.

XMODAL_MODEL=var/models/default          XMODAL_BATCH__MAX_BATCH_SIZE=32
XMODAL_ADMIN_TOKEN=...                    XMODAL_LIMITS__MAX_K=100
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.home import xmodal_home


class DeviceBatchSizes(BaseModel):
    """Items per forward pass on each kind of device: a GPU keeps gaining up to hundreds, a CPU core
    little past a few dozen. One number (XMODAL_BATCH__MAX_BATCH_SIZE=16) sets both kinds."""

    cpu: int
    cuda: int

    @model_validator(mode="before")
    @classmethod
    def _one_for_both(cls, v):
        return {"cpu": v, "cuda": v} if isinstance(v, int | str) else v

    def for_device(self, device) -> int:
        """The batch size for a torch.device: the one place serve and index pick it."""
        return self.cuda if device.type == "cuda" else self.cpu


class ServeBatchSizes(DeviceBatchSizes):
    cpu: int = Field(32, ge=1)
    cuda: int = Field(128, ge=1)


class IndexBatchSizes(DeviceBatchSizes):
    cpu: int = Field(64, ge=1)
    cuda: int = Field(256, ge=1)


class BatchSettings(BaseModel):
    enabled: bool = True  # False: every request runs its own forward pass (batch size 1)
    # XMODAL_BATCH__MAX_BATCH_SIZE__CPU / __CUDA, by the device the model serves on (XMODAL_DEVICE)
    max_batch_size: ServeBatchSizes = ServeBatchSizes()
    max_wait_ms: float = Field(5.0, ge=0)  # how long the first request of a batch waits for company
    max_queue: int = Field(1024, ge=1)  # requests waiting beyond this answer 503 with Retry-After
    timeout_s: float = Field(30.0, gt=0)  # a request waiting longer answers 504


class LimitSettings(BaseModel):
    max_json_bytes: int = Field(64 * 1024, ge=1)  # body of a route without uploads, counted as it arrives
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)  # one image upload
    max_image_pixels: int = Field(40_000_000, ge=1)  # width * height; larger is a decompression bomb
    max_text_chars: int = Field(1000, ge=1)  # a search query, a label, an embedded text
    max_question_chars: int = Field(200, ge=1)
    max_k: int = Field(100, ge=1)
    max_texts: int = Field(256, ge=1)  # texts per /v1/embed/text or image-to-text call, labels per classify
    max_caption_k: int = Field(10, ge=1)
    decode_workers: int = Field(2, ge=1)  # threads decoding uploaded images (off the event loop)
    decode_queue: int = Field(128, ge=1)  # uploads decoding or waiting beyond this: 503 with Retry-After
    # decoded images are shrunk (JPEG DCT scaling, then reduce) to at most this side: far above any
    # model's input size, and a 40-megapixel photo costs a 1-megapixel one from there on
    decode_max_side: int = Field(1024, ge=64)

    @property
    def upload_body_bytes(self) -> int:
        """Body limit of an upload route: the image as base64 plus room for the other fields."""
        return self.max_upload_bytes * 4 // 3 + self.max_json_bytes


class VideoLimitSettings(BaseModel):
    """Uploaded videos (/v1/caption, /v1/vqa, /v1/search/video*): checked before any frame is decoded."""

    max_bytes: int = Field(32 * 1024 * 1024, ge=1)
    max_seconds: float = Field(300.0, gt=0)  # duration
    max_frames: int = Field(9000, ge=1)  # frames in the file (5 min at 30 fps); a decode may read all


class FetchSettings(BaseModel):
    # clip-retrieval's image_url: off unless enabled, and then only hosts on the allow-list
    enabled: bool = False
    allow_hosts: list[str] = []
    timeout_s: float = Field(10.0, gt=0)


class Settings(BaseSettings):
    """Everything the service reads from the environment; see .env.example for each variable."""

    model_config = SettingsConfigDict(
        env_prefix="XMODAL_",
        env_nested_delimiter="__",
        env_file=".env",
        env_ignore_empty=True,  # `XMODAL_MODEL=` in .env means "the default", not ""
        extra="ignore",
    )

    home: Path = Field(default_factory=xmodal_home)  # artifacts root: models/, indexes/
    model: str | None = None  # any model reference (training/factory.py load_model); None: newest dir
    indexes: list[str] | None = None  # index names to load; None: every index under <home>/indexes
    default_index: str | None = None  # None: the first loaded index
    device: str = "auto"  # auto (CUDA when available), cpu, cuda or cuda:N (index and eval: --device)
    # inference dtype on CUDA: auto (bf16, fp16 without bf16 support) or forced fp32/bf16/fp16; CPU: fp32
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    # items per forward pass of `xmodal index build/add` by device kind (XMODAL_INDEX_BATCH_SIZE__CUDA=512);
    # their --batch-size overrides it
    index_batch_size: IndexBatchSizes = IndexBatchSizes()
    # torch and FAISS (OpenMP) threads for inference; None keeps their default (all cores). 1 is often
    # faster on a busy shared host, where OpenMP threads wait on each other
    torch_threads: int | None = Field(None, ge=1)
    # Python's GIL switch interval while serving. The default 5 ms makes each op of a forward pass in the
    # batcher thread wait behind the busy event loop (measured: a tiny forward 3x slower; 0.2 ms: 1.7x)
    switch_interval_ms: float | None = Field(0.5, gt=0)
    admin_token: str | None = None  # bearer token for /v1/admin/*; unset: admin routes are disabled
    api_keys: list[str] = []  # if set, query routes need `Authorization: Bearer <key>` or `X-API-Key`
    watch: bool = False  # poll every index's CURRENT file and reload a newly published version
    watch_interval_s: float = Field(2.0, gt=0)
    warmup: bool = True  # run one forward pass on a model before it starts serving
    classify_template: str = "a photo of a {}."  # prompt for zero-shot labels
    cors_origins: list[str] = []
    # Host header names served (DNS rebinding: a web page must not reach a local corpus by another name);
    # ["*"] serves any. Behind a proxy or in a container, add the public name.
    allowed_hosts: list[str] = ["localhost", "127.0.0.1"]
    # With XMODAL_API_KEYS set: False (default) turns /docs, /redoc and /openapi.json off and puts
    # /metrics behind a key; True serves them to anyone, as without keys
    public_docs: bool = False
    batch: BatchSettings = BatchSettings()
    limits: LimitSettings = LimitSettings()
    fetch: FetchSettings = FetchSettings()
    video: VideoLimitSettings = VideoLimitSettings()  # XMODAL_VIDEO__MAX_BYTES etc.

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, v: str | None) -> str | None:
        if v is not None and len(v) < 16:
            raise ValueError("XMODAL_ADMIN_TOKEN must be at least 16 characters (or unset to disable admin)")
        return v or None

    @field_validator("api_keys")
    @classmethod
    def _no_empty_keys(cls, v: list[str]) -> list[str]:
        if any(not k.strip() for k in v):
            raise ValueError("XMODAL_API_KEYS must not contain an empty key (it would match an empty header)")
        return v

    @field_validator("classify_template")
    @classmethod
    def _has_slot(cls, v: str) -> str:
        if "{}" not in v:
            raise ValueError("XMODAL_CLASSIFY_TEMPLATE must contain '{}' where the label goes")
        return v

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

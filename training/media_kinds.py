"""The one table of media file extensions, used by every reader (data import, index --dir and --shards),
so a format indexed by one is never skipped by another."""

from pathlib import Path

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".ogv"})


def media_kind(path: str | Path) -> str | None:
    """"image", "video", or None for any other file, by extension (case-insensitive)."""
    ext = Path(path).suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None

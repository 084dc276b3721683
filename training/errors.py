"""Errors that reach the user. The CLI prints them without a traceback; the service maps them to 4xx."""


class XModalError(Exception):
    """A problem the user can fix: bad input, a missing corpus, an unknown model."""


class InputFileError(XModalError):
    """A bad line or item in a user's file; names the file and the 1-based line."""

    def __init__(self, path, line: int | None, message: str):
        self.path, self.line = str(path), line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class BrokenArtifactError(XModalError):
    """A file on disk (index.faiss, meta.sqlite, vectors.npy, model.safetensors ...) that is missing,
    truncated or corrupted; names the file."""

    def __init__(self, path, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")
